// pvc-protection and pv-protection, Lost claims, and deletion of objects.
#include <gtest/gtest.h>

#include "unit/controller/harness.h"

namespace claimfs::controller::testing {
namespace {

TEST(ProtectionTest, NewObjectsGetTheirFinalizers) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "x")};
  w.snap.claims = {Claim("c", "5Gi", {kRWO}, "")};
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->metadata.finalizers,
            std::vector<std::string>{"kubernetes.io/pv-protection"});
  EXPECT_EQ(w.ClaimNamed("c")->metadata.finalizers,
            std::vector<std::string>{"kubernetes.io/pvc-protection"});
}

TEST(ProtectionTest, ClaimInUseIsNotRemovedAndKeepsItsVolume) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  w.snap.in_use.insert("default/c");
  w.DeleteClaim("c");
  EXPECT_EQ(w.Settle(), 1);
  EXPECT_NE(w.ClaimNamed("c"), nullptr);
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kBound);
  EXPECT_TRUE(w.snap.mounted.count("pv"));

  // The last user leaves: the claim goes and its volume is released in the same plan.
  w.snap.in_use.clear();
  Plan plan = w.Step();
  EXPECT_EQ(w.ClaimNamed("c"), nullptr);
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kReleased);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].type, ActionType::kUnmount);
}

TEST(ProtectionTest, AnotherFinalizerKeepsTheClaimObject) {
  World w;
  PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, "");
  c.metadata.finalizers = {"kubernetes.io/pvc-protection", "example.com/backup"};
  c.metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
  w.snap.claims = {c};
  w.Settle();
  ASSERT_NE(w.ClaimNamed("c"), nullptr);
  EXPECT_EQ(w.ClaimNamed("c")->metadata.finalizers, std::vector<std::string>{"example.com/backup"});
}

TEST(ProtectionTest, BoundVolumeStaysUntilItsClaimIsGone) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  w.Volume("pv")->metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
  w.Settle();
  ASSERT_NE(w.Volume("pv"), nullptr);
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kBound);
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);

  w.DeleteClaim("c");
  w.Settle();
  EXPECT_EQ(w.Volume("pv"), nullptr);  // Retain: the object goes, the data stays
  EXPECT_EQ(w.ClaimNamed("c"), nullptr);
}

TEST(ProtectionTest, DeletedAvailableVolumeGoesWithoutTouchingStaticData) {
  World w;
  w.snap.allowed_host_path_prefixes = {"/tmp"};
  PersistentVolume pv = Pv("pv", "1Gi", {kRWO}, "");
  pv.spec.reclaim_policy = ReclaimPolicy::kDelete;
  w.snap.volumes = {pv};
  w.Settle();
  w.Volume("pv")->metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
  Plan plan = w.Step();
  EXPECT_TRUE(plan.actions.empty());
  EXPECT_EQ(w.Volume("pv"), nullptr);
}

TEST(ProtectionTest, DeletedProvisionedVolumeHasItsDataRemoved) {
  World w;
  w.snap.classes = {DefaultClass("local")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, std::nullopt)};
  w.Settle();
  // The admin deletes both; the claim goes first, then the volume with its data.
  w.DeleteClaim("c");
  w.Volume("pvc-uid-claim-c")->metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
  Plan plan = w.Step();
  bool deleted_data = false;
  for (const Action& a : plan.actions) deleted_data |= a.type == ActionType::kDeleteVolumeData;
  EXPECT_TRUE(deleted_data);
  EXPECT_EQ(w.Volume("pvc-uid-claim-c"), nullptr);
}

TEST(ProtectionTest, BoundClaimWhoseVolumeVanishedIsLost) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  w.snap.volumes.clear();
  Plan plan = w.Step();
  const PersistentVolumeClaim& c = *w.ClaimNamed("c");
  EXPECT_EQ(c.status.phase, ClaimPhase::kLost);
  EXPECT_FALSE(c.status.capacity);
  EXPECT_TRUE(c.status.access_modes.empty());
  EXPECT_EQ(c.spec.volume_name, "pv");
  const model::Event* e = w.Event("c", "ClaimLost");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "Warning");
  EXPECT_EQ(e->message, "Bound claim has lost its PersistentVolume. Data on the volume is lost!");
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].type, ActionType::kUnmount);
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ProtectionTest, BoundClaimThatLostItsVolumeNameIsLost) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  w.ClaimNamed("c")->spec.volume_name.clear();
  w.Step();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kLost);
  EXPECT_EQ(w.Event("c", "ClaimLost")->message,
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!");
}

TEST(ProtectionTest, BoundVolumeWhoseClaimVanishedIsReleased) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  w.snap.claims.clear();  // gone without a deletion (e.g. restored state)
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kReleased);
  EXPECT_TRUE(w.snap.mounted.empty());
}

TEST(ProtectionTest, UnboundClaimBeingDeletedIsNeverBound) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, "");
  c.metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
  c.metadata.finalizers = {"kubernetes.io/pvc-protection"};
  w.snap.claims = {c};
  w.snap.in_use.insert("default/c");
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kAvailable);
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
}

}  // namespace
}  // namespace claimfs::controller::testing
