// Growing a bound claim: the external resizer's rules and events, within the pool.
#include <gtest/gtest.h>

#include "unit/controller/harness.h"

namespace claimfs::controller::testing {
namespace {

constexpr char kVolume[] = "pvc-uid-claim-data";

World Provisioned(bool allow_expansion = true, const char* pool = "4Gi") {
  World w;
  w.snap.pools = {{"default", "/pools/default", Bytes(pool)}};
  StorageClass local = DefaultClass("local");
  local.allow_volume_expansion = allow_expansion;
  w.snap.classes = {local};
  w.snap.claims = {Claim("data", "1Gi", {kRWO}, std::nullopt)};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("data")->status.phase, ClaimPhase::kBound);
  return w;
}

TEST(ExpansionTest, GrowsTheVolumeLiveAndReportsAsTheResizer) {
  World w = Provisioned();
  w.ClaimNamed("data")->spec.request = Q("3Gi");
  Plan plan = w.Step();
  ASSERT_EQ(plan.actions.size(), 1u);
  const Action& expand = plan.actions[0];
  EXPECT_EQ(expand.type, ActionType::kExpand);
  EXPECT_EQ(expand.volume, kVolume);
  EXPECT_EQ(expand.claim, "default/data");
  EXPECT_EQ(expand.pool, "default");
  EXPECT_EQ(expand.old_size_bytes, Bytes("1Gi"));
  EXPECT_EQ(expand.size_bytes, Bytes("3Gi"));
  EXPECT_EQ(w.Volume(kVolume)->spec.capacity->ToString(), "3Gi");
  EXPECT_EQ(w.ClaimNamed("data")->status.capacity->ToString(), "3Gi");
  const model::Event* resizing = w.Event("data", "Resizing");
  ASSERT_NE(resizing, nullptr);
  EXPECT_EQ(resizing->message, std::string("External resizer is resizing volume ") + kVolume);
  EXPECT_EQ(resizing->source_component, "external-resizer claimfs.io/local");
  const model::Event* done = w.Event("data", "VolumeResizeSuccessful");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->message, "Resize volume succeeded");
  EXPECT_TRUE(w.Peek().empty());

  // A second expansion is a second occurrence of the same events.
  w.ClaimNamed("data")->spec.request = Q("4Gi");
  w.Step();
  EXPECT_EQ(w.Event("data", "Resizing")->count, 2);
  EXPECT_EQ(w.Event("data", "VolumeResizeSuccessful")->count, 2);
}

// `apply` of pv-hostpath at 3Gi while bound printed `configured`, the mount kept 2Gi and the claim
// said 2Gi until a restart remounted at 3Gi: the quota now follows at once, and the claim says so.
TEST(ExpansionTest, BoundVolumeCapacityEditedLeftMountAndClaimBehind) {
  World w;
  w.snap.volumes = {Pv("pv-hostpath", "2Gi", {kRWO}, "manual")};
  w.snap.claims = {Claim("pvc-hostpath", "1Gi", {kRWO}, "manual")};
  w.Settle();
  ASSERT_EQ(w.ClaimNamed("pvc-hostpath")->status.phase, ClaimPhase::kBound);
  ASSERT_EQ(w.ClaimNamed("pvc-hostpath")->status.capacity->ToString(), "2Gi");

  w.Volume("pv-hostpath")->spec.capacity = Q("3Gi");
  Plan plan = w.Step();
  ASSERT_EQ(plan.actions.size(), 1u);
  const Action& expand = plan.actions[0];
  EXPECT_EQ(expand.type, ActionType::kExpand);
  EXPECT_EQ(expand.volume, "pv-hostpath");
  EXPECT_EQ(expand.claim, "default/pvc-hostpath");
  EXPECT_EQ(expand.old_size_bytes, Bytes("2Gi"));
  EXPECT_EQ(expand.size_bytes, Bytes("3Gi"));
  EXPECT_EQ(w.ClaimNamed("pvc-hostpath")->status.capacity->ToString(), "3Gi");
  EXPECT_EQ(w.ClaimNamed("pvc-hostpath")->spec.request->ToString(), "1Gi");
  const model::Event* done = w.Event("pvc-hostpath", "FileSystemResizeSuccessful");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->message, "MountVolume.NodeExpandVolume succeeded for volume \"pv-hostpath\"");
  EXPECT_EQ(done->source_component, "kubelet");
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ExpansionTest, FailedLiveResizeOfAnEditedVolumeLeavesTheClaimAsMounted) {
  World w;
  w.snap.volumes = {Pv("pv-hostpath", "2Gi", {kRWO}, "manual")};
  w.snap.claims = {Claim("pvc-hostpath", "1Gi", {kRWO}, "manual")};
  w.Settle();
  w.Volume("pv-hostpath")->spec.capacity = Q("3Gi");
  w.failures[{ActionType::kExpand, "pv-hostpath"}] = "quota refused";
  w.Step();
  EXPECT_EQ(w.ClaimNamed("pvc-hostpath")->status.capacity->ToString(), "2Gi");
  EXPECT_NE(w.Event("pvc-hostpath", "VolumeResizeFailed"), nullptr);
}

TEST(ExpansionTest, ClassThatForbidsExpansionIsIgnored) {
  World w = Provisioned(/*allow_expansion=*/false);
  w.ClaimNamed("data")->spec.request = Q("3Gi");
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ExpansionTest, SmallerRequestIsIgnored) {
  World w = Provisioned();
  w.ClaimNamed("data")->spec.request = Q("512Mi");
  EXPECT_TRUE(w.Peek().empty());
  EXPECT_EQ(w.Volume(kVolume)->spec.capacity->ToString(), "1Gi");
}

TEST(ExpansionTest, StaticVolumeIsNotExpanded) {
  World w;
  StorageClass manual = Class("manual");
  manual.allow_volume_expansion = true;
  w.snap.classes = {manual};
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "manual")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "manual")};
  w.Settle();
  w.ClaimNamed("c")->spec.request = Q("2Gi");
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ExpansionTest, PoolWithoutRoomRefusesWithTheFigures) {
  World w = Provisioned(true, "4Gi");
  w.ClaimNamed("data")->spec.request = Q("5Gi");
  Plan plan = w.Step();
  EXPECT_TRUE(plan.actions.empty());
  EXPECT_EQ(w.Volume(kVolume)->spec.capacity->ToString(), "1Gi");
  const model::Event* e = w.Event("data", "VolumeResizeFailed");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "Warning");
  EXPECT_EQ(e->message,
            std::string("resize volume \"") + kVolume +
                "\" by resizer \"claimfs.io/local\" failed: insufficient capacity in pool "
                "\"default\": requested 4Gi more (1Gi to 5Gi), pool capacity 4Gi, already "
                "provisioned 1Gi");
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ExpansionTest, FailedExpandKeepsTheOldSizeAndIsRetried) {
  World w = Provisioned();
  w.ClaimNamed("data")->spec.request = Q("2Gi");
  w.failures[{ActionType::kExpand, kVolume}] = "quota update refused";
  w.Step();
  EXPECT_EQ(w.Volume(kVolume)->spec.capacity->ToString(), "1Gi");
  EXPECT_EQ(w.ClaimNamed("data")->status.capacity->ToString(), "1Gi");
  EXPECT_EQ(w.Event("data", "VolumeResizeSuccessful"), nullptr);
  const model::Event* e = w.Event("data", "VolumeResizeFailed");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message, std::string("resize volume \"") + kVolume +
                            "\" by resizer \"claimfs.io/local\" failed: quota update refused");
  w.failures.clear();
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("data")->status.capacity->ToString(), "2Gi");
}

TEST(ExpansionTest, GrownVolumeCountsAgainstThePool) {
  World w = Provisioned(true, "4Gi");
  w.ClaimNamed("data")->spec.request = Q("3Gi");
  w.Settle();
  w.snap.claims.push_back(Claim("more", "2Gi", {kRWO}, "local"));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("more")->status.phase, ClaimPhase::kPending);
  EXPECT_NE(w.Event("more", "ProvisioningFailed"), nullptr);
}

}  // namespace
}  // namespace claimfs::controller::testing
