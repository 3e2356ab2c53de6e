// Go's text/tabwriter as kubectl configures it, so claimctl's tables and describe output line up
// exactly like kubectl's.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace claimfs::claimctl {

// Collects text whose cells are tab-terminated and aligns them in columns on Flush(), with Go's
// rules: a column block is a run of consecutive lines that have a cell in that column; each
// column of a block is as wide as its widest cell plus `padding`, at least `min_width`; the last
// cell of a line (the text after its last tab) is not part of any column and is not padded.
// Widths count UTF-8 code points. Not thread-safe.
class TabWriter {
 public:
  TabWriter(int min_width, int padding) : min_width_(min_width), padding_(padding) {}

  // kubectl get's table writer (minwidth 6, padding 3: columns are widest cell + 3 spaces).
  static TabWriter ForTables() { return TabWriter(6, 3); }
  // kubectl describe's writer (minwidth 0, padding 2).
  static TabWriter ForDescribe() { return TabWriter(0, 2); }

  void Write(std::string_view text) { pending_.append(text); }
  // Formats and returns everything written since the last Flush; later text starts new blocks.
  std::string Flush();

 private:
  struct Cell {
    std::string text;
    int width = 0;
  };
  using Line = std::vector<Cell>;

  void Format(std::string* out, const std::vector<Line>& lines, size_t line0, size_t line1,
              std::vector<int>* widths) const;
  void WriteLines(std::string* out, const std::vector<Line>& lines, size_t line0, size_t line1,
                  const std::vector<int>& widths) const;

  int min_width_;
  int padding_;
  std::string pending_;
};

// Rows of cells as kubectl get prints them (TabWriter::ForTables, one line per row).
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace claimfs::claimctl
