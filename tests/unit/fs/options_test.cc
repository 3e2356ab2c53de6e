#include <gtest/gtest.h>

#include "claimfs/fs/volume.h"

namespace claimfs::fs {
namespace {

TEST(MountOptionsTest, ParsesQuotaOptions) {
  VolumeOptions o;
  ASSERT_TRUE(ParseMountOptions("capacity=64Mi,inodes=1000,quota_errno=EDQUOT", &o).ok());
  EXPECT_EQ(o.capacity_bytes, 64u << 20);
  EXPECT_EQ(o.inode_limit, 1000u);
  EXPECT_EQ(o.quota_errno, EDQUOT);
}

TEST(MountOptionsTest, AcceptsKubernetesQuantities) {
  struct Case {
    const char* option;
    uint64_t bytes;
  } cases[] = {{"capacity=1Gi", 1ull << 30},   {"capacity=1.5G", 1500000000},
               {"capacity=500M", 500000000},   {"capacity=4096", 4096},
               {"capacity=1.5Gi", 1536ull << 20}};
  for (const auto& c : cases) {
    VolumeOptions o;
    ASSERT_TRUE(ParseMountOptions(c.option, &o).ok()) << c.option;
    EXPECT_EQ(o.capacity_bytes, c.bytes) << c.option;
  }
}

TEST(MountOptionsTest, PassesKernelOptionsThrough) {
  VolumeOptions o;
  ASSERT_TRUE(ParseMountOptions("ro,noexec,nosuid,nodev,noatime,fsname=data,allow_other", &o).ok());
  EXPECT_TRUE(o.read_only);
  EXPECT_TRUE(o.allow_other);
  EXPECT_EQ(o.kernel_options,
            (std::vector<std::string>{"ro", "noexec", "nosuid", "nodev", "noatime", "fsname=data"}));
}

TEST(MountOptionsTest, IgnoresWhatMountAndFstabAdd) {
  VolumeOptions o;
  EXPECT_TRUE(ParseMountOptions("defaults,nofail,_netdev,rw,,dev,suid", &o).ok());
  EXPECT_FALSE(o.read_only);
}

TEST(MountOptionsTest, RefusesBadOptionsNamingThem) {
  struct Case {
    const char* list;
    const char* named;
  } cases[] = {
      {"capacity=1GB", "capacity=1GB"},
      {"capacity=", "capacity="},
      {"capacity", "capacity"},
      {"capacity=-1Gi", "capacity=-1Gi"},
      {"capacity=0", "capacity=0"},
      {"inodes=lots", "inodes=lots"},
      {"inodes=0", "inodes=0"},
      {"quota_errno=EIO", "quota_errno=EIO"},
      {"ro,bogus", "bogus"},
      {"fsname=", "fsname="},
      {"noexec=1", "noexec=1"},
      {"threads=0", "threads=0"},
      {"cache_timeout=soon", "cache_timeout=soon"},
      // Hostile capacities: each refused with the option named, none overflowing.
      {"capacity=1e999999", "capacity=1e999999"},
      {"capacity=-1e999999", "capacity=-1e999999"},
      {"capacity=Infinity", "capacity=Infinity"},
      {"capacity=NaN", "capacity=NaN"},
      {"capacity=-0", "capacity=-0"},
      {"capacity=99999999999999999999", "capacity=99999999999999999999"},
      {"capacity=9223372036854775808", "capacity=9223372036854775808"},
      {"capacity=1.5.5Gi", "capacity=1.5.5Gi"},
      {"capacity=1Gi ", "capacity=1Gi "},
      {"capacity= 1Gi", "capacity= 1Gi"},
      {"capacity=.", "capacity=."},
      {"capacity=+", "capacity=+"},
      {"capacity=1e", "capacity=1e"},
      {"capacity=0x10", "capacity=0x10"},
      {"capacity=1Ki1", "capacity=1Ki1"},
      {"capacity=8Ei", "capacity=8Ei"},
      {"capacity=-1", "capacity=-1"},
  };
  for (const auto& c : cases) {
    VolumeOptions o;
    Status s = ParseMountOptions(c.list, &o);
    ASSERT_FALSE(s.ok()) << c.list;
    EXPECT_EQ(s.code(), StatusCode::kInvalid);
    EXPECT_NE(s.message().find(std::string("\"") + c.named + "\""), std::string::npos)
        << c.list << ": " << s.message();
  }
}

}  // namespace
}  // namespace claimfs::fs
