#include "claimfs/limits/resource_cap.h"

#include <gtest/gtest.h>
#include <linux/capability.h>

#include <thread>

namespace claimfs::limits {
namespace {

constexpr uint64_t kResource = uint64_t{1} << CAP_SYS_RESOURCE;
constexpr uint64_t kAdmin = uint64_t{1} << CAP_SYS_ADMIN;
constexpr uint64_t kFowner = uint64_t{1} << CAP_FOWNER;

TEST(DecideResourceCap, DropsOrLowersCapSysResourceOnlyInKernelMode) {
  struct Case {
    const char* name;
    CapabilitySets caps;
    bool kernel_mode;
    bool sole_thread;
    ResourceCapAction want;
  } cases[] = {
      {"root with it, kernel mode, at start", {kAdmin | kResource, kAdmin | kResource}, true, true,
       ResourceCapAction::kDrop},
      {"root with it, kernel mode, threads running", {kAdmin | kResource, kAdmin | kResource},
       true, false, ResourceCapAction::kLower},
      {"permitted only (could be raised later)", {kAdmin, kAdmin | kResource}, true, true,
       ResourceCapAction::kDrop},
      {"effective only", {kResource, 0}, true, false, ResourceCapAction::kLower},
      {"without it (this machine's root)", {kAdmin | kFowner, kAdmin | kFowner}, true, true,
       ResourceCapAction::kNone},
      {"no capabilities at all", {0, 0}, true, true, ResourceCapAction::kNone},
      {"accounted volume keeps it", {kAdmin | kResource, kAdmin | kResource}, false, true,
       ResourceCapAction::kNone},
      {"every capability", {~uint64_t{0}, ~uint64_t{0}}, true, true, ResourceCapAction::kDrop},
  };
  for (const Case& c : cases) {
    ResourceCapDecision d = DecideResourceCap(c.caps, c.kernel_mode, c.sole_thread);
    EXPECT_EQ(d.action, c.want) << c.name << ": " << d.why;
    EXPECT_FALSE(d.why.empty()) << c.name;
  }
}

// The real calls, on a thread of its own (capabilities are per thread). Root here lacks
// CAP_SYS_RESOURCE (not even in the bounding set), so this shows the calls work and leave a
// thread without it, not the removal itself.
TEST(ResourceCap, RealThreadEndsWithoutItAndKeepsTheRest) {
  std::thread t([] {
    auto before = ReadCapabilities();
    ASSERT_TRUE(before.ok()) << before.status().ToString();
    {
      ResourceCapLowered lowered;
      auto during = ReadCapabilities();
      ASSERT_TRUE(during.ok());
      EXPECT_EQ(during->effective & kResource, 0u);
      EXPECT_EQ(during->effective | (before->effective & kResource), before->effective);
      EXPECT_EQ(lowered.lowered(), (before->effective & kResource) != 0);
    }
    auto restored = ReadCapabilities();
    ASSERT_TRUE(restored.ok());
    EXPECT_EQ(restored->effective, before->effective);

    Status s = DropResourceCap();
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto after = ReadCapabilities();
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->effective, before->effective & ~kResource);
    EXPECT_EQ(after->permitted, before->permitted & ~kResource);
    EXPECT_EQ(DecideResourceCap(*after, true, true).action, ResourceCapAction::kNone);
  });
  t.join();
}

}  // namespace
}  // namespace claimfs::limits
