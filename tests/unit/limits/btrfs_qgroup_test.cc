#include "limits/btrfs_qgroup.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>

namespace claimfs::limits {
namespace {

TEST(ParseSysfsNumber, AcceptsOnlyOneDecimalNumberWithItsNewline) {
  struct Case {
    const char* text;
    std::optional<uint64_t> want;
  } cases[] = {
      {"16384\n", 16384},
      {"0\n", 0},
      {"67108864", 67108864},
      {"18446744073709551615\n", UINT64_MAX},
      {"18446744073709551616\n", std::nullopt},  // overflow
      {"", std::nullopt},
      {"\n", std::nullopt},
      {"-1\n", std::nullopt},
      {"12 34\n", std::nullopt},
      {"12\n\n", std::nullopt},
      {"0x10\n", std::nullopt},
      {"none\n", std::nullopt},
  };
  for (const Case& c : cases) {
    uint64_t got = 7;
    bool ok = ParseSysfsNumber(c.text, std::strlen(c.text), &got);
    EXPECT_EQ(ok, c.want.has_value()) << '"' << c.text << '"';
    if (ok && c.want) {
      EXPECT_EQ(got, *c.want) << c.text;
    }
  }
}

TEST(FormatFsid, IsTheUuidSysfsNamesTheFileSystemBy) {
  const uint8_t fsid[16] = {0xf6, 0x66, 0x73, 0x83, 0x24, 0x13, 0x4f, 0xe9,
                            0xba, 0xea, 0x70, 0x88, 0xad, 0x18, 0x6f, 0x23};
  EXPECT_EQ(FormatFsid(fsid), "f6667383-2413-4fe9-baea-7088ad186f23");
}

}  // namespace
}  // namespace claimfs::limits
