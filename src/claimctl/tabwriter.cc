// A port of the column algorithm of Go's text/tabwriter (left-aligned, space padding).
#include "claimctl/tabwriter.h"

#include <algorithm>

namespace claimfs::claimctl {
namespace {

int DisplayWidth(std::string_view text) {
  int width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;  // count code points, not continuation bytes
  }
  return width;
}

}  // namespace

std::string TabWriter::Flush() {
  std::vector<Line> lines;
  bool last_terminated = true;
  size_t start = 0;
  while (start < pending_.size()) {
    size_t end = pending_.find('\n', start);
    last_terminated = end != std::string::npos;
    if (!last_terminated) end = pending_.size();
    Line line;
    std::string_view text(pending_.data() + start, end - start);
    size_t cell_start = 0;
    while (true) {
      size_t tab = text.find('\t', cell_start);
      std::string_view cell = text.substr(
          cell_start, tab == std::string_view::npos ? std::string_view::npos : tab - cell_start);
      line.push_back({std::string(cell), DisplayWidth(cell)});
      if (tab == std::string_view::npos) break;
      cell_start = tab + 1;
    }
    lines.push_back(std::move(line));
    start = end + 1;
  }
  pending_.clear();

  std::string out;
  std::vector<int> widths;
  Format(&out, lines, 0, lines.size(), &widths);
  if (!last_terminated && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void TabWriter::Format(std::string* out, const std::vector<Line>& lines, size_t line0, size_t line1,
                       std::vector<int>* widths) const {
  const size_t column = widths->size();
  for (size_t current = line0; current < line1; ++current) {
    if (column + 1 >= lines[current].size()) continue;  // no cell in this column
    // A block of lines that all have a cell in this column starts here.
    WriteLines(out, lines, line0, current, *widths);
    line0 = current;
    int width = min_width_;
    for (; current < line1; ++current) {
      if (column + 1 >= lines[current].size()) break;
      width = std::max(width, lines[current][column].width + padding_);
    }
    widths->push_back(width);
    Format(out, lines, line0, current, widths);
    widths->pop_back();
    line0 = current;
    if (current == line1) break;
  }
  WriteLines(out, lines, line0, line1, *widths);
}

void TabWriter::WriteLines(std::string* out, const std::vector<Line>& lines, size_t line0,
                           size_t line1, const std::vector<int>& widths) const {
  for (size_t i = line0; i < line1; ++i) {
    const Line& line = lines[i];
    for (size_t j = 0; j < line.size(); ++j) {
      out->append(line[j].text);
      if (j < widths.size()) out->append(static_cast<size_t>(widths[j] - line[j].width), ' ');
    }
    out->push_back('\n');
  }
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  TabWriter writer = TabWriter::ForTables();
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i != 0) line.push_back('\t');
      line.append(row[i]);
    }
    line.push_back('\n');
    writer.Write(line);
  }
  return writer.Flush();
}

}  // namespace claimfs::claimctl
