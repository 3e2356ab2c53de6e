// Go text/tabwriter's column rules, as kubectl's tables and describe pages depend on them.
#include "claimctl/tabwriter.h"

#include <gtest/gtest.h>

namespace claimfs::claimctl {
namespace {

TEST(TabWriterTest, ColumnsAreWidestCellPlusThree) {
  EXPECT_EQ(FormatTable({{"NAME", "STATUS", "AGE"},
                         {"data", "Bound", "5s"},
                         {"a-longer-name", "Pending", "10m"}}),
            "NAME            STATUS    AGE\n"
            "data            Bound     5s\n"
            "a-longer-name   Pending   10m\n");
}

TEST(TabWriterTest, EmptyCellsArePaddedAndLastCellIsNot) {
  EXPECT_EQ(FormatTable({{"A", "B", "C"}, {"", "", ""}}), "A     B     C\n            \n");
}

TEST(TabWriterTest, MinimumWidthIsSix) {
  EXPECT_EQ(FormatTable({{"A", "B"}, {"x", "y"}}), "A     B\nx     y\n");
}

TEST(TabWriterTest, CountsCodePointsNotBytes) {
  EXPECT_EQ(FormatTable({{"NAME", "X"}, {"h\xC3\xA9llo-w\xC3\xB6rld", "1"}}),
            "NAME          X\n"
            "h\xC3\xA9llo-w\xC3\xB6rld   1\n");
}

TEST(TabWriterTest, LineWithoutTabEndsAColumnBlock) {
  TabWriter w = TabWriter::ForDescribe();
  w.Write("Name:\tdata\nLonger Label:\tx\nSource:\n    Type:\tHostPath\nEvents:\t<none>\n");
  EXPECT_EQ(w.Flush(),
            "Name:          data\n"
            "Longer Label:  x\n"
            "Source:\n"
            "    Type:  HostPath\n"
            "Events:    <none>\n");
}

TEST(TabWriterTest, FlushStartsNewBlocks) {
  TabWriter w = TabWriter::ForDescribe();
  w.Write("Very long label:\tx\n");
  std::string first = w.Flush();
  w.Write("A:\ty\n");
  EXPECT_EQ(first + w.Flush(), "Very long label:  x\nA:  y\n");
}

TEST(TabWriterTest, NestedColumnsAlignWithinTheirBlock) {
  TabWriter w(0, 1);
  w.Write("a\tb\tc\naa\tbbb\tc\nx\ny\tz\n");
  EXPECT_EQ(w.Flush(), "a  b   c\naa bbb c\nx\ny z\n");
}

}  // namespace
}  // namespace claimfs::claimctl
