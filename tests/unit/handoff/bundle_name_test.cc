#include "claimfs/handoff/bundle_name.h"

#include <gtest/gtest.h>

#include <string>

namespace claimfs::handoff {
namespace {

struct ParseCase {
  std::string name;
  bool ok;
  std::string pv;
  BundlePart part = BundlePart::kConnection;
  uint32_t slot = 0;
  uint32_t generation = 0;
};

TEST(BundleName, ParsesFromBothEnds) {
  const ParseCase cases[] = {
      {"claimfs.1.pvc-1.conn", true, "pvc-1", BundlePart::kConnection},
      {"claimfs.1.pvc-1.arena", true, "pvc-1", BundlePart::kArena},
      {"claimfs.1.pvc-1.orphan.7.3", true, "pvc-1", BundlePart::kOrphan, 7, 3},
      {"claimfs.1.a.conn", true, "a", BundlePart::kConnection},
      // Dots in a PV name, even ones that look like our suffixes.
      {"claimfs.1.my.pv.conn", true, "my.pv", BundlePart::kConnection},
      {"claimfs.1.x.conn.arena", true, "x.conn", BundlePart::kArena},
      {"claimfs.1.x.orphan.1.2.conn", true, "x.orphan.1.2", BundlePart::kConnection},
      {"claimfs.1.pv.orphan.1.orphan.4294967295.0", true, "pv.orphan.1", BundlePart::kOrphan,
       4294967295u, 0},
      {"claimfs.1.0.arena", true, "0", BundlePart::kArena},
      // Not ours, or broken.
      {"", false, ""},
      {"claimfs.2.pvc-1.conn", false, ""},
      {"claimfs.1..conn", false, ""},
      {"claimfs.1.conn", false, ""},
      {"claimfs.1.pvc-1.socket", false, ""},
      {"claimfs.1.pvc-1", false, ""},
      {"claimfs.1.Pvc.conn", false, ""},
      {"claimfs.1.-pv.conn", false, ""},
      {"claimfs.1.pv-.conn", false, ""},
      {"claimfs.1.pv/../x.conn", false, ""},
      {"claimfs.1.pv:x.conn", false, ""},
      {std::string("claimfs.1.pv\0x.conn", 19), false, ""},
      {"claimfs.1.pv\n.conn", false, ""},
      {"claimfs.1.p\xc3\xa9.conn", false, ""},
      {"claimfs.1.pv.orphan.1", false, ""},
      {"claimfs.1.pv.orphan..1", false, ""},
      {"claimfs.1.pv.orphan.01.1", false, ""},
      {"claimfs.1.pv.orphan.1.-1", false, ""},
      {"claimfs.1.pv.orphan.4294967296.1", false, ""},
      {"claimfs.1.pv.orphan.1.1x", false, ""},
      {"claimfs.1..orphan.1.1", false, ""},
      {".orphan.1.1", false, ""},
      {"claimfs.1." + std::string(241, 'a') + ".conn", false, ""},  // 256 characters
  };
  for (const ParseCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto parsed = ParseBundleName(c.name);
    ASSERT_EQ(parsed.ok(), c.ok) << (parsed.ok() ? "parsed" : parsed.status().message());
    if (!c.ok) {
      EXPECT_FALSE(parsed.status().message().empty());
      continue;
    }
    EXPECT_EQ(parsed->pv, c.pv);
    EXPECT_EQ(parsed->part, c.part);
    EXPECT_EQ(parsed->orphan_slot, c.slot);
    EXPECT_EQ(parsed->orphan_generation, c.generation);
    // And back: one spelling per name.
    auto formatted = parsed->Format();
    ASSERT_TRUE(formatted.ok()) << formatted.status().message();
    EXPECT_EQ(*formatted, c.name);
  }
}

TEST(BundleName, HelpersMakeNamesThatParseBack) {
  EXPECT_EQ(*ConnectionName("pvc-1"), "claimfs.1.pvc-1.conn");
  EXPECT_EQ(*ArenaName("pvc-1"), "claimfs.1.pvc-1.arena");
  EXPECT_EQ(*OrphanName("pvc-1", 12, 5), "claimfs.1.pvc-1.orphan.12.5");
  EXPECT_EQ(*VolumePrefix("a.b"), "claimfs.1.a.b.");
  for (const char* bad : {"", "UPPER", "a/b", "a:b", "-a", "a..", "with space"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ConnectionName(bad).ok());
    EXPECT_FALSE(VolumePrefix(bad).ok());
  }
}

TEST(BundleName, LongestPvNameThatFitsSystemdsLimit) {
  // 10 + pv + 6 (".arena") <= 255.
  std::string longest(239, 'a');
  EXPECT_TRUE(ArenaName(longest).ok());
  EXPECT_TRUE(VolumePrefix(longest).ok());
  auto too_long = ArenaName(longest + "a");
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("at most 255"), std::string::npos)
      << too_long.status().message();
  EXPECT_FALSE(VolumePrefix(longest + "a").ok());
  // A DNS subdomain may be 253 characters: such a PV has no bundle name.
  EXPECT_FALSE(ConnectionName(std::string(253, 'a')).ok());
}

TEST(FdName, FollowsSystemdsRules) {
  struct Case {
    std::string name;
    bool ok;
  };
  const Case cases[] = {
      {"stored", true},
      {"a b~!", true},
      {std::string(255, 'x'), true},
      {"", false},
      {std::string(256, 'x'), false},
      {"a:b", false},
      {"tab\there", false},
      {"del\x7f", false},
      {"nul" + std::string(1, '\0'), false},
      {"\xff", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(ValidateFdName(c.name).ok(), c.ok);
  }
}

}  // namespace
}  // namespace claimfs::handoff
