// What happens to a volume when its claim goes: Retain, Delete, Recycle, and their failures.
#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <set>
#include <string>

#include "unit/controller/harness.h"

namespace claimfs::controller::testing {
namespace {

PersistentVolume WithPolicy(PersistentVolume pv, ReclaimPolicy policy) {
  pv.spec.reclaim_policy = policy;
  return pv;
}

// A world with `pv` bound to claim "c", mounted, then the claim deleted (and unused). claimfsd
// made `pv`'s directory (it was missing at the mount) unless `created` says otherwise.
World BoundThenDeleted(const PersistentVolume& pv, bool created = true) {
  World w;
  w.snap.allowed_host_path_prefixes = {"/tmp"};
  if (created) w.snap.created_directories.insert(pv.metadata.name);
  w.snap.volumes = {pv};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
  EXPECT_TRUE(w.snap.mounted.count(pv.metadata.name));
  w.DeleteClaim("c");
  return w;
}

TEST(ReclaimTest, RetainReleasesAndKeepsTheClaimRef) {
  World w = BoundThenDeleted(Pv("pv", "1Gi", {kRWO}, ""));
  Plan plan = w.Step();
  EXPECT_EQ(w.ClaimNamed("c"), nullptr);
  const PersistentVolume& pv = *w.Volume("pv");
  EXPECT_EQ(pv.status.phase, VolumePhase::kReleased);
  ASSERT_TRUE(pv.spec.claim_ref);
  EXPECT_EQ(pv.spec.claim_ref->uid, "uid-claim-c");
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].type, ActionType::kUnmount);
  EXPECT_TRUE(w.snap.mounted.empty());
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ReclaimTest, RetainedVolumeIsNeverReboundUntilAnAdminClearsTheClaimRef) {
  World w = BoundThenDeleted(Pv("pv", "1Gi", {kRWO}, ""));
  w.Settle();
  w.snap.claims.push_back(Claim("c", "1Gi", {kRWO}, ""));  // same name, new uid
  w.ClaimNamed("c")->metadata.uid = "uid-claim-c-again";
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kReleased);

  w.Volume("pv")->spec.claim_ref.reset();
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kBound);
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "pv");
}

TEST(ReclaimTest, DeleteUnmountsThenRemovesDataThenTheVolume) {
  World w;
  w.snap.classes = {DefaultClass("local")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, std::nullopt)};
  w.Settle();
  ASSERT_NE(w.Volume("pvc-uid-claim-c"), nullptr);
  w.DeleteClaim("c");
  Plan plan = w.Step();
  ASSERT_EQ(plan.actions.size(), 2u);
  EXPECT_EQ(plan.actions[0].type, ActionType::kUnmount);
  EXPECT_EQ(plan.actions[1].type, ActionType::kDeleteVolumeData);
  EXPECT_EQ(plan.actions[1].path, "/pools/default/pvc-uid-claim-c");
  EXPECT_EQ(plan.actions[1].pool, "default");
  EXPECT_EQ(plan.actions[1].guard, std::optional<size_t>(0));
  EXPECT_EQ(w.Volume("pvc-uid-claim-c"), nullptr);
  EXPECT_EQ(w.ClaimNamed("c"), nullptr);
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ReclaimTest, DeleteOfAStaticHostPathUnderAnAllowedPrefix) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kDelete));
  Plan plan = w.Step();
  ASSERT_EQ(plan.actions.size(), 2u);
  EXPECT_EQ(plan.actions[1].type, ActionType::kDeleteVolumeData);
  EXPECT_EQ(plan.actions[1].path, "/tmp/k8s-pv");
  EXPECT_EQ(plan.actions[1].pool, "");
  EXPECT_EQ(w.Volume("pv"), nullptr);
}

struct RefusedCase {
  const char* path;
};

void PrintTo(const RefusedCase& c, std::ostream* os) { *os << c.path; }

class RefusedDeleteTest : public ::testing::TestWithParam<RefusedCase> {};

TEST_P(RefusedDeleteTest, FailsWithTheHostPathDeletersReason) {
  const char* path = GetParam().path;
  World w = BoundThenDeleted(WithPolicy(Pv("pv", "1Gi", {kRWO}, "", path), ReclaimPolicy::kDelete));
  w.Settle();
  const PersistentVolume& pv = *w.Volume("pv");
  std::string expected = std::string(
                             "host_path deleter only supports /pools/default/.+, /tmp/.+ "
                             "but received provided ") +
                         path;
  EXPECT_EQ(pv.status.phase, VolumePhase::kFailed);
  EXPECT_EQ(pv.status.message, expected);
  const model::Event* e = w.Event("pv", "VolumeFailedDelete");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "Warning");
  EXPECT_EQ(e->message, expected);
  EXPECT_EQ(e->count, 1);
  for (const Action& a : w.last_plan.actions) EXPECT_NE(a.type, ActionType::kDeleteVolumeData);
  EXPECT_TRUE(w.Peek().empty());
}

INSTANTIATE_TEST_SUITE_P(Table, RefusedDeleteTest,
                         ::testing::Values(RefusedCase{"/foo"}, RefusedCase{"/tmp"},
                                           RefusedCase{"/pools/default"},
                                           RefusedCase{"/pools/default/../../etc"},
                                           RefusedCase{"/tmpfoo/x"},
                                           RefusedCase{"relative/tmp/x"}));

// "/tmp/./x" is the directory /tmp/x (the one its mount served), so its Delete goes ahead; a
// path whose NUL would make the deleter see a shorter path than the check is refused.
TEST(ReclaimTest, DeleteComparesTheNormalFormAndRefusesANul) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/./x"), ReclaimPolicy::kDelete));
  w.Settle();
  EXPECT_EQ(w.Volume("pv"), nullptr);

  World nul = BoundThenDeleted(WithPolicy(
      Pv("pv", "1Gi", {kRWO}, "", std::string("/tmp/x\0", 7)), ReclaimPolicy::kDelete));
  nul.Settle();
  ASSERT_NE(nul.Volume("pv"), nullptr);
  EXPECT_EQ(nul.Volume("pv")->status.phase, VolumePhase::kFailed);
  EXPECT_EQ(nul.Volume("pv")->status.message,
            "host_path deleter only supports /pools/default/.+, /tmp/.+ but received provided "
            "/tmp/x\\x00");
  for (const Action& a : nul.last_plan.actions) EXPECT_NE(a.type, ActionType::kDeleteVolumeData);
}

TEST(ReclaimTest, FailedDeleteMarksTheVolumeFailedAndIsRetried) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kDelete));
  w.failures[{ActionType::kDeleteVolumeData, "pv"}] =
      "cannot remove /tmp/k8s-pv/locked: Permission denied";
  w.Step();
  const PersistentVolume* pv = w.Volume("pv");
  ASSERT_NE(pv, nullptr);
  EXPECT_EQ(pv->status.phase, VolumePhase::kFailed);
  EXPECT_EQ(pv->status.message, "cannot remove /tmp/k8s-pv/locked: Permission denied");
  EXPECT_EQ(w.Event("pv", "VolumeFailedDelete")->message,
            "cannot remove /tmp/k8s-pv/locked: Permission denied");

  Plan retry = w.Step();
  ASSERT_EQ(retry.actions.size(), 1u);
  EXPECT_EQ(retry.actions[0].type, ActionType::kDeleteVolumeData);
  EXPECT_EQ(w.Event("pv", "VolumeFailedDelete")->count, 2);

  w.failures.clear();
  w.Settle();
  EXPECT_EQ(w.Volume("pv"), nullptr);
}

TEST(ReclaimTest, FailedUnmountHoldsTheDeleteBack) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kDelete));
  w.failures[{ActionType::kUnmount, "pv"}] = "Device or resource busy";
  w.Step();
  ASSERT_NE(w.Volume("pv"), nullptr);
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kReleased);
  const model::Event* e = w.Event("pv", "FailedUnMount");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message,
            "UnmountVolume.TearDown failed for volume \"pv\" : Device or resource busy");
  w.failures.clear();
  w.Settle();
  EXPECT_EQ(w.Volume("pv"), nullptr);
}

TEST(ReclaimTest, RecycleScrubsAndMakesTheVolumeAvailableWithAWarning) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kRecycle));
  Plan plan = w.Step();
  ASSERT_EQ(plan.actions.size(), 2u);
  EXPECT_EQ(plan.actions[1].type, ActionType::kRecycle);
  EXPECT_EQ(plan.actions[1].path, "/tmp/k8s-pv");
  const PersistentVolume& pv = *w.Volume("pv");
  EXPECT_EQ(pv.status.phase, VolumePhase::kAvailable);
  EXPECT_FALSE(pv.spec.claim_ref);
  EXPECT_EQ(pv.metadata.annotations.count(model::kBoundByControllerAnnotation), 0u);
  const model::Event* warning = w.Event("pv", "RecyclerPod");
  ASSERT_NE(warning, nullptr);
  EXPECT_EQ(warning->type, "Warning");
  EXPECT_EQ(warning->message,
            "Recycler pod: The Recycle reclaim policy is deprecated. Instead, the recommended "
            "approach is to use dynamic provisioning.");
  const model::Event* done = w.Event("pv", "VolumeRecycled");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->message, "Volume recycled");
  EXPECT_TRUE(w.Peek().empty());

  w.snap.claims.push_back(Claim("next", "1Gi", {kRWO}, ""));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("next")->spec.volume_name, "pv");
}

TEST(ReclaimTest, RecycleKeepsAUsersPreBinding) {
  PersistentVolume pv =
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kRecycle);
  pv.spec.claim_ref = model::ObjectReference{"PersistentVolumeClaim", "v1", "default", "c", "", ""};
  World w = BoundThenDeleted(pv);
  w.Settle();
  ASSERT_TRUE(w.Volume("pv")->spec.claim_ref);
  EXPECT_EQ(w.Volume("pv")->spec.claim_ref->name, "c");
  EXPECT_EQ(w.Volume("pv")->spec.claim_ref->uid, "");
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kAvailable);
}

TEST(ReclaimTest, FailedRecycleMarksTheVolumeFailed) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kRecycle));
  w.failures[{ActionType::kRecycle, "pv"}] = "cannot remove /tmp/k8s-pv/x: Read-only file system";
  w.Step();
  const PersistentVolume& pv = *w.Volume("pv");
  EXPECT_EQ(pv.status.phase, VolumePhase::kFailed);
  EXPECT_EQ(pv.status.message,
            "Recycle failed: cannot remove /tmp/k8s-pv/x: Read-only file system");
  ASSERT_NE(w.Event("pv", "VolumeFailedRecycle"), nullptr);
  EXPECT_EQ(w.Event("pv", "VolumeRecycled"), nullptr);
  EXPECT_TRUE(pv.spec.claim_ref);
  w.failures.clear();
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kAvailable);
  EXPECT_EQ(w.Volume("pv")->status.message, "");
}

TEST(ReclaimTest, RecycleOutsideThePoolsIsRefused) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/srv/data"), ReclaimPolicy::kRecycle));
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kFailed);
  EXPECT_EQ(w.Event("pv", "VolumeFailedRecycle")->message,
            "Recycle failed: host_path recycler only supports /pools/default/.+, /tmp/.+ but "
            "received provided /srv/data");
}

TEST(ReclaimTest, VolumeOfAnotherProvisionerIsLeftToItsDeleter) {
  PersistentVolume pv = WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/x"), ReclaimPolicy::kDelete);
  pv.metadata.annotations[model::kProvisionedByAnnotation] = "ebs.csi.aws.com";
  World w = BoundThenDeleted(pv);
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kReleased);
}

TEST(ReclaimTest, ProvisionedVolumeWhoseClaimBoundElsewhereIsDeleted) {
  World w;
  w.snap.classes = {DefaultClass("local")};
  PersistentVolume orphan =
      Pv("pvc-uid-claim-c", "1Gi", {kRWO}, "local", "/pools/default/pvc-uid-claim-c");
  orphan.spec.reclaim_policy = ReclaimPolicy::kDelete;
  orphan.metadata.annotations[model::kProvisionedByAnnotation] = "claimfs.io/local";
  orphan.metadata.annotations[kPoolAnnotation] = "default";
  orphan.spec.claim_ref =
      model::ObjectReference{"PersistentVolumeClaim", "v1", "default", "c", "uid-claim-c", ""};
  orphan.status.phase = VolumePhase::kBound;
  PersistentVolume other = Pv("other", "1Gi", {kRWO}, "local");
  other.spec.claim_ref = orphan.spec.claim_ref;
  other.status.phase = VolumePhase::kBound;
  PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, "local");
  c.spec.volume_name = "other";
  c.metadata.annotations[model::kBindCompletedAnnotation] = "yes";
  c.status.phase = ClaimPhase::kBound;
  w.snap.volumes = {orphan, other};
  w.snap.claims = {c};
  w.snap.created_directories = {"pvc-uid-claim-c"};
  w.Settle();
  EXPECT_EQ(w.Volume("pvc-uid-claim-c"), nullptr);
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "other");
}

// Regression: a claim deleted right after it was created leaked its volume directory. The plan
// that provisioned the volume also wrote the claim; the client's delete made that commit fail,
// and with it the only record of the new directory, the PV. claimfsd now commits
// ProvisionedVolumes() alone when the commit fails, and the next plans reclaim the volume.
World ProvisionRacedBy(std::function<void(World&)> client, const char* reclaim_policy = "") {
  World w;
  w.snap.classes = {DefaultClass("local")};
  PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, std::nullopt);
  if (*reclaim_policy) c.metadata.annotations[kReclaimPolicyAnnotation] = reclaim_policy;
  w.snap.claims = {c};
  w.race = [client](World& world) {
    client(world);
    return true;  // the claim's resourceVersion moved: the commit fails
  };
  Plan plan = w.Step();
  bool provisioned = false;
  for (const Action& a : plan.actions) provisioned |= a.type == ActionType::kProvision;
  EXPECT_TRUE(provisioned);
  EXPECT_EQ(w.directories, std::set<std::string>{"/pools/default/pvc-uid-claim-c"});
  EXPECT_NE(w.Volume("pvc-uid-claim-c"), nullptr) << "the new directory is named by no PV";
  return w;
}

TEST(ReclaimTest, ClaimDeletedWhileItsVolumeIsProvisionedStillHasItsDataDeleted) {
  // No finalizer yet (the racing plan adds it): the delete removes the claim at once.
  World w = ProvisionRacedBy([](World& world) { world.snap.claims.clear(); });
  EXPECT_TRUE(w.snap.mounted.count("pvc-uid-claim-c"));
  w.Settle();
  EXPECT_TRUE(w.directories.empty());
  EXPECT_TRUE(w.snap.mounted.empty());
  EXPECT_TRUE(w.snap.volumes.empty());
  EXPECT_TRUE(w.snap.claims.empty());
}

TEST(ReclaimTest, ClaimMarkedForDeletionWhileItsVolumeIsProvisionedStillHasItsDataDeleted) {
  World w = ProvisionRacedBy([](World& world) {
    PersistentVolumeClaim& c = *world.ClaimNamed("c");
    c.metadata.finalizers = {model::kPvcProtectionFinalizer};
    c.metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
    c.metadata.resource_version = "2";
  });
  w.Settle();
  EXPECT_TRUE(w.directories.empty());
  EXPECT_TRUE(w.snap.mounted.empty());
  EXPECT_TRUE(w.snap.volumes.empty());
  EXPECT_TRUE(w.snap.claims.empty());
}

TEST(ReclaimTest, ClaimChangedWhileItsVolumeIsProvisionedBindsThatVolume) {
  World w = ProvisionRacedBy([](World& world) {
    PersistentVolumeClaim& c = *world.ClaimNamed("c");
    c.metadata.labels["team"] = "a";
    c.metadata.resource_version = "2";
  });
  for (const Action& a : w.Peek().actions) {
    EXPECT_NE(a.type, ActionType::kProvision);
    EXPECT_NE(a.type, ActionType::kMount);
  }
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "pvc-uid-claim-c");
  EXPECT_EQ(w.ClaimNamed("c")->metadata.labels.at("team"), "a");
  EXPECT_EQ(w.Volume("pvc-uid-claim-c")->status.phase, VolumePhase::kBound);
  EXPECT_EQ(w.snap.mounted, std::set<std::string>{"pvc-uid-claim-c"});
  EXPECT_EQ(w.directories, std::set<std::string>{"/pools/default/pvc-uid-claim-c"});
}

TEST(ReclaimTest, ClaimDeletedWhileItsRetainVolumeIsProvisionedLeavesItReleased) {
  World w = ProvisionRacedBy([](World& world) { world.snap.claims.clear(); }, "Retain");
  w.Settle();
  ASSERT_NE(w.Volume("pvc-uid-claim-c"), nullptr);
  EXPECT_EQ(w.Volume("pvc-uid-claim-c")->status.phase, VolumePhase::kReleased);
  EXPECT_EQ(w.directories, std::set<std::string>{"/pools/default/pvc-uid-claim-c"});
  EXPECT_TRUE(w.snap.mounted.empty());
}

TEST(ReclaimTest, FailedProvisionRecordsNoVolume) {
  World w;
  w.snap.classes = {DefaultClass("local")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, std::nullopt)};
  w.failures[{ActionType::kProvision, "pvc-uid-claim-c"}] = "No space left on device";
  w.race = [](World& world) {
    world.snap.claims.clear();
    return true;
  };
  w.Step();
  EXPECT_TRUE(w.last_commit.empty());
  EXPECT_TRUE(w.snap.volumes.empty());
}

// Regression (issue 9, defect 3): a Delete-policy hostPath PV over a directory claimfsd never
// made (a root-owned 0700 directory under /tmp) had that directory removed.
TEST(ReclaimTest, DeleteOfADirectoryClaimfsdDidNotCreateFailsAndKeepsTheData) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/victim"), ReclaimPolicy::kDelete),
      /*created=*/false);
  w.Settle();
  const std::string expected =
      "host_path deleter only removes directories claimfsd created but received provided "
      "/tmp/victim, which it did not create; the data is kept";
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kFailed);
  EXPECT_EQ(w.Volume("pv")->status.message, expected);
  ASSERT_NE(w.Event("pv", "VolumeFailedDelete"), nullptr);
  EXPECT_EQ(w.Event("pv", "VolumeFailedDelete")->message, expected);
  for (const Action& a : w.last_plan.actions) EXPECT_NE(a.type, ActionType::kDeleteVolumeData);
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ReclaimTest, RecycleOfADirectoryClaimfsdDidNotCreateFailsAndKeepsTheData) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/victim"), ReclaimPolicy::kRecycle),
      /*created=*/false);
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kFailed);
  ASSERT_NE(w.Event("pv", "VolumeFailedRecycle"), nullptr);
  EXPECT_EQ(w.Event("pv", "VolumeFailedRecycle")->message,
            "Recycle failed: host_path recycler only removes directories claimfsd created but "
            "received provided /tmp/victim, which it did not create; the data is kept");
  for (const Action& a : w.last_plan.actions) EXPECT_NE(a.type, ActionType::kRecycle);
}

// The provisioned-by annotation is anyone's to write: it no longer makes a directory claimfsd's.
TEST(ReclaimTest, ForgedProvisionedByAnnotationDoesNotMakeADirectoryDeletable) {
  PersistentVolume pv =
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/victim"), ReclaimPolicy::kDelete);
  pv.metadata.annotations[model::kProvisionedByAnnotation] = model::kProvisionerName;
  World w = BoundThenDeleted(pv, /*created=*/false);
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kFailed);
  // Deleting the PV object then drops it and leaves the directory.
  w.Volume("pv")->metadata.deletion_timestamp = "2026-01-04T00:00:00Z";
  w.Settle();
  EXPECT_EQ(w.Volume("pv"), nullptr);
  for (const Action& a : w.last_plan.actions) EXPECT_NE(a.type, ActionType::kDeleteVolumeData);
}

// Regression (issue 9, defect 2): deleting one of two claims whose PVs share a directory removed
// the other claim's data. The reclaimer now refuses a path another volume overlaps, even when
// claimfsd made the directory and the overlap appeared after admission.
TEST(ReclaimTest, DeleteOfAVolumeAnotherVolumeOverlapsFailsAndKeepsTheData) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kDelete));
  w.snap.overlaps["pv"] = "PersistentVolume \"pv-other\" (/tmp/k8s-pv/inner)";
  w.Settle();
  const std::string expected =
      "host_path deleter refuses /tmp/k8s-pv: it overlaps PersistentVolume \"pv-other\" "
      "(/tmp/k8s-pv/inner); the data is kept";
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kFailed);
  EXPECT_EQ(w.Volume("pv")->status.message, expected);
  ASSERT_NE(w.Event("pv", "VolumeFailedDelete"), nullptr);
  EXPECT_EQ(w.Event("pv", "VolumeFailedDelete")->message, expected);
  for (const Action& a : w.last_plan.actions) EXPECT_NE(a.type, ActionType::kDeleteVolumeData);

  // Once the other volume is gone the retry deletes it.
  w.snap.overlaps.clear();
  w.Settle();
  EXPECT_EQ(w.Volume("pv"), nullptr);
}

TEST(ReclaimTest, RecycleOfAVolumeAnotherVolumeOverlapsFails) {
  World w = BoundThenDeleted(
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kRecycle));
  w.snap.overlaps["pv"] = "the mount root (/tmp)";
  w.Settle();
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kFailed);
  EXPECT_EQ(w.Event("pv", "VolumeFailedRecycle")->message,
            "Recycle failed: host_path recycler refuses /tmp/k8s-pv: it overlaps the mount root "
            "(/tmp); the data is kept");
  for (const Action& a : w.last_plan.actions) EXPECT_NE(a.type, ActionType::kRecycle);
}

TEST(ReclaimTest, DeletedVolumeObjectWithAnOverlapLeavesItsData) {
  PersistentVolume pv =
      WithPolicy(Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv"), ReclaimPolicy::kDelete);
  World w;
  w.snap.allowed_host_path_prefixes = {"/tmp"};
  w.snap.created_directories = {"pv"};
  w.snap.overlaps["pv"] = "PersistentVolume \"pv-other\" (/tmp/k8s-pv)";
  pv.metadata.annotations[model::kProvisionedByAnnotation] = model::kProvisionerName;
  pv.metadata.deletion_timestamp = "2026-01-04T00:00:00Z";
  w.snap.volumes = {pv};
  w.Settle();
  EXPECT_EQ(w.Volume("pv"), nullptr);
  for (const Action& a : w.last_plan.actions) EXPECT_NE(a.type, ActionType::kDeleteVolumeData);
}

TEST(ReclaimTest, VolumeWhosePathAnotherVolumeOverlapsIsNotMounted) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "", "/tmp/k8s-pv")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.snap.overlaps["pv"] = "PersistentVolume \"pv-hostpath\" (/tmp/k8s-pv)";
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
  EXPECT_FALSE(w.snap.mounted.count("pv"));
  const model::Event* e = w.Event("c", "FailedMount");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "Warning");
  EXPECT_EQ(e->message,
            "MountVolume.SetUp failed for volume \"pv\" : its path /tmp/k8s-pv overlaps "
            "PersistentVolume \"pv-hostpath\" (/tmp/k8s-pv)");
  EXPECT_EQ(e->count, 1);
  w.snap.overlaps.clear();
  w.Settle();
  EXPECT_TRUE(w.snap.mounted.count("pv"));
}

}  // namespace
}  // namespace claimfs::controller::testing
