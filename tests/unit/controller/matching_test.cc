// The controller's path and size helpers, where a mistake would delete the wrong data.
#include "controller/matching.h"

#include <gtest/gtest.h>

#include <limits>
#include <ostream>

namespace claimfs::controller::internal {
namespace {

using namespace std::string_literals;

struct UnderCase {
  std::string path;  // may hold NUL
  std::string root;
  bool under;
};

void PrintTo(const UnderCase& c, std::ostream* os) { *os << ::testing::PrintToString(c.path); }

class IsStrictlyUnderTest : public ::testing::TestWithParam<UnderCase> {};

TEST_P(IsStrictlyUnderTest, ComparesWholeComponents) {
  const UnderCase& c = GetParam();
  EXPECT_EQ(IsStrictlyUnder(c.path, c.root), c.under) << c.path << " under " << c.root;
}

INSTANTIATE_TEST_SUITE_P(
    Table, IsStrictlyUnderTest,
    ::testing::Values(UnderCase{"/tmp/x", "/tmp", true}, UnderCase{"/tmp/x/y", "/tmp/", true},
                      UnderCase{"/tmp//x", "/tmp", true}, UnderCase{"/tmp/x/", "/tmp", true},
                      UnderCase{"/tmp", "/tmp", false}, UnderCase{"/tmp/", "/tmp", false},
                      UnderCase{"/tmpx/y", "/tmp", false}, UnderCase{"/var/tmp/x", "/tmp", false},
                      UnderCase{"/tmp/../etc", "/tmp", false}, UnderCase{"/tmp/./x", "/tmp", true},
                      UnderCase{"/tmp/x\0"s, "/tmp", false}, UnderCase{"/tmp/\0x"s, "/tmp", false},
                      UnderCase{"/tmp/x", "/tmp\0"s, false},
                      UnderCase{"/tmp/\t", "/tmp", false}, UnderCase{"/tmp/\xff", "/tmp", false},
                      UnderCase{"tmp/x", "/tmp", false}, UnderCase{"", "/tmp", false},
                      UnderCase{"/x", "", false}, UnderCase{"/x", "/", true}));

TEST(ReclaimPathRefusalTest, ListsWhatIsSupported) {
  std::vector<Pool> pools = {{"default", "/var/lib/claimfs/pools/default/", 0}};
  EXPECT_EQ(ReclaimPathRefusal("/var/lib/claimfs/pools/default/pvc-1", "deleter", pools, {}),
            std::nullopt);
  EXPECT_EQ(ReclaimPathRefusal("/foo", "deleter", pools, {"/tmp"}),
            "host_path deleter only supports /var/lib/claimfs/pools/default/.+, /tmp/.+ but "
            "received provided /foo");
  EXPECT_EQ(ReclaimPathRefusal("/foo", "deleter", {}, {}),
            "host_path deleter only supports no path (no managed pool or allowed prefix is "
            "configured) but received provided /foo");
}

TEST(HumanBytesTest, PicksTheShorterSpelling) {
  EXPECT_EQ(HumanBytes(0), "0");
  EXPECT_EQ(HumanBytes(2LL << 30), "2Gi");
  EXPECT_EQ(HumanBytes(100000000000LL), "100G");
  EXPECT_EQ(HumanBytes(1536LL << 20), "1536Mi");
  EXPECT_EQ(HumanBytes(1001), "1001");
}

// Issue 12: a disk's free space read "264212084Ki" in ProvisioningFailed.
TEST(HumanBytesTest, MeasuredSizesAreRoundedToATenthOfTheirUnit) {
  EXPECT_EQ(HumanBytes(264212084LL * 1024), "252.0Gi");
  EXPECT_EQ(HumanBytes(12345LL << 20), "12.1Gi");
  EXPECT_EQ(HumanBytes(12345), "12.1Ki");
  EXPECT_EQ(HumanBytes(9999), "9999");
  EXPECT_EQ(HumanBytes(9999LL << 20), "9999Mi");
  EXPECT_EQ(HumanBytes(3LL << 60), "3Ei");
  EXPECT_EQ(HumanBytes(std::numeric_limits<int64_t>::max()), "8.0Ei");
}

}  // namespace
}  // namespace claimfs::controller::internal
