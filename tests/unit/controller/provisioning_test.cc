// Dynamic provisioning from claimfs pools, its limits, and other provisioners' classes.
#include <gtest/gtest.h>

#include <ostream>

#include "unit/controller/harness.h"

namespace claimfs::controller::testing {
namespace {

World LocalWorld(const char* pool_capacity = "100Gi") {
  World w;
  w.snap.pools = {{"default", "/pools/default", Bytes(pool_capacity)},
                  {"fast", "/pools/fast/", Bytes("10Gi")}};
  StorageClass local = DefaultClass("local");
  local.mount_options = {"noatime"};
  w.snap.classes = {local};
  return w;
}

TEST(ProvisioningTest, ProvisionsAVolumeOfExactlyTheRequestAndBindsIt) {
  World w = LocalWorld();
  w.snap.claims = {Claim("data", "1536Mi", {kRWO}, std::nullopt)};
  Plan plan = w.Step();

  ASSERT_EQ(plan.actions.size(), 2u);
  const Action& provision = plan.actions[0];
  EXPECT_EQ(provision.type, ActionType::kProvision);
  EXPECT_EQ(provision.volume, "pvc-uid-claim-data");
  EXPECT_EQ(provision.claim, "default/data");
  EXPECT_EQ(provision.pool, "default");
  EXPECT_EQ(provision.path, "/pools/default/pvc-uid-claim-data");
  EXPECT_EQ(provision.size_bytes, Bytes("1536Mi"));
  const Action& mount = plan.actions[1];
  EXPECT_EQ(mount.type, ActionType::kMount);
  EXPECT_EQ(mount.guard, std::optional<size_t>(0));

  const PersistentVolume& pv = *w.Volume("pvc-uid-claim-data");
  EXPECT_EQ(pv.spec.capacity->ToString(), "1536Mi");
  EXPECT_EQ(pv.spec.access_modes, std::vector<AccessMode>{kRWO});
  EXPECT_EQ(pv.spec.storage_class_name, "local");
  EXPECT_EQ(pv.spec.reclaim_policy, ReclaimPolicy::kDelete);  // the class is silent
  EXPECT_EQ(pv.spec.mount_options, std::vector<std::string>{"noatime"});
  ASSERT_TRUE(pv.spec.host_path);
  EXPECT_EQ(pv.spec.host_path->path, "/pools/default/pvc-uid-claim-data");
  EXPECT_EQ(pv.metadata.annotations.at(model::kProvisionedByAnnotation), "claimfs.io/local");
  EXPECT_EQ(pv.metadata.annotations.at(kPoolAnnotation), "default");
  EXPECT_EQ(pv.metadata.annotations.at(model::kBoundByControllerAnnotation), "yes");
  EXPECT_EQ(pv.metadata.finalizers, std::vector<std::string>{"kubernetes.io/pv-protection"});
  EXPECT_FALSE(pv.metadata.uid.empty());
  EXPECT_EQ(pv.status.phase, VolumePhase::kBound);
  EXPECT_EQ(pv.spec.claim_ref->uid, "uid-claim-data");

  const PersistentVolumeClaim& claim = *w.ClaimNamed("data");
  EXPECT_EQ(claim.spec.storage_class_name, std::optional<std::string>("local"));
  EXPECT_EQ(claim.status.phase, ClaimPhase::kBound);
  EXPECT_EQ(claim.spec.volume_name, "pvc-uid-claim-data");
  EXPECT_EQ(claim.status.capacity->ToString(), "1536Mi");
  EXPECT_EQ(claim.metadata.annotations.at(kStorageProvisionerAnnotation), "claimfs.io/local");

  const model::Event* started = w.Event("data", "Provisioning");
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->message,
            "External provisioner is provisioning volume for claim \"default/data\"");
  const model::Event* done = w.Event("data", "ProvisioningSucceeded");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->type, "Normal");
  EXPECT_EQ(done->message, "Successfully provisioned volume pvc-uid-claim-data");
  EXPECT_EQ(done->source_component, "claimfs.io/local");

  EXPECT_TRUE(w.snap.mounted.count("pvc-uid-claim-data"));
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ProvisioningTest, ClassChoosesPoolAndReclaimPolicy) {
  World w = LocalWorld();
  StorageClass fast = Class("fast");
  fast.parameters["pool"] = "fast";
  fast.reclaim_policy = ReclaimPolicy::kRetain;
  w.snap.classes.push_back(fast);
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "fast")};
  w.Settle();
  const PersistentVolume& pv = *w.Volume("pvc-uid-claim-c");
  EXPECT_EQ(pv.spec.host_path->path, "/pools/fast/pvc-uid-claim-c");
  EXPECT_EQ(pv.metadata.annotations.at(kPoolAnnotation), "fast");
  EXPECT_EQ(pv.spec.reclaim_policy, ReclaimPolicy::kRetain);
}

// A Docker volume's reclaimPolicy option reaches the provisioned PV through the claim.
TEST(ProvisioningTest, ClaimAnnotationChoosesTheReclaimPolicy) {
  World w = LocalWorld();
  PersistentVolumeClaim retained = Claim("kept", "1Gi", {kRWO}, std::nullopt);
  retained.metadata.annotations[kReclaimPolicyAnnotation] = "Retain";
  PersistentVolumeClaim odd = Claim("odd", "1Gi", {kRWO}, std::nullopt);
  odd.metadata.annotations[kReclaimPolicyAnnotation] = "Recycle";  // not offered: ignored
  w.snap.claims = {retained, odd};
  w.Settle();
  EXPECT_EQ(w.Volume("pvc-uid-claim-kept")->spec.reclaim_policy, ReclaimPolicy::kRetain);
  EXPECT_EQ(w.Volume("pvc-uid-claim-odd")->spec.reclaim_policy, ReclaimPolicy::kDelete);
}

TEST(ProvisioningTest, StaticVolumeOfTheClassIsPreferredToProvisioning) {
  World w = LocalWorld();
  w.snap.volumes = {Pv("static", "2Gi", {kRWO}, "local")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "local")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "static");
  EXPECT_EQ(w.snap.volumes.size(), 1u);
}

struct FailCase {
  const char* name;
  StorageClass cls;
  PersistentVolumeClaim claim;
  const char* message;
};

void PrintTo(const FailCase& c, std::ostream* os) { *os << c.name; }

class ProvisioningFailedTest : public ::testing::TestWithParam<FailCase> {};

TEST_P(ProvisioningFailedTest, ClaimStaysPendingWithTheReason) {
  const FailCase& c = GetParam();
  World w = LocalWorld();
  w.snap.classes.push_back(c.cls);
  w.snap.claims = {c.claim};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed(c.claim.metadata.name)->status.phase, ClaimPhase::kPending) << c.name;
  EXPECT_TRUE(w.snap.volumes.empty()) << c.name;
  const model::Event* e = w.Event(c.claim.metadata.name, "ProvisioningFailed");
  ASSERT_NE(e, nullptr) << c.name;
  EXPECT_EQ(e->type, "Warning");
  EXPECT_EQ(e->message, c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ProvisioningFailedTest,
    ::testing::Values(
        FailCase{"selector", Class("sel"),
                 [] {
                   PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, "sel");
                   c.spec.selector = model::LabelSelector{{{"location", "local"}}, {}};
                   return c;
                 }(),
                 "failed to provision volume with StorageClass \"sel\": claim Selector is not "
                 "supported"},
        FailCase{"unknown pool",
                 [] {
                   StorageClass c = Class("nowhere");
                   c.parameters["pool"] = "missing";
                   return c;
                 }(),
                 Claim("c", "1Gi", {kRWO}, "nowhere"),
                 "failed to provision volume with StorageClass \"nowhere\": pool \"missing\" is "
                 "not configured"},
        FailCase{"block", Class("blk"),
                 [] {
                   PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, "blk");
                   c.spec.volume_mode = model::VolumeMode::kBlock;
                   return c;
                 }(),
                 "failed to provision volume with StorageClass \"blk\": volumeMode Block is not "
                 "supported: claimfs volumes are filesystems"},
        FailCase{"pool too small", Class("big"), Claim("c", "200Gi", {kRWO}, "big"),
                 "failed to provision volume with StorageClass \"big\": insufficient capacity in "
                 "pool \"default\": requested 200Gi, pool capacity 100Gi, already provisioned "
                 "0"}));

TEST(ProvisioningTest, MissingClassIsReported) {
  World w = LocalWorld();
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "gold")};
  w.Settle();
  EXPECT_EQ(w.Event("c", "ProvisioningFailed")->message,
            "storageclass.storage.k8s.io \"gold\" not found");
}

TEST(ProvisioningTest, NoOvercommitAndTheWaitingClaimBindsWhenSpaceFrees) {
  World w = LocalWorld("10Gi");
  w.snap.claims = {Claim("first", "6Gi", {kRWO}, "local", "2026-01-01T00:00:01Z"),
                   Claim("second", "6Gi", {kRWO}, "local", "2026-01-01T00:00:02Z")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("first")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.ClaimNamed("second")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("second", "ProvisioningFailed");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message,
            "failed to provision volume with StorageClass \"local\": insufficient capacity in pool "
            "\"default\": requested 6Gi, pool capacity 10Gi, already provisioned 6Gi");

  w.DeleteClaim("first");
  w.Settle();
  EXPECT_EQ(w.Volume("pvc-uid-claim-first"), nullptr);
  EXPECT_EQ(w.ClaimNamed("second")->status.phase, ClaimPhase::kBound);
}

TEST(ProvisioningTest, RetainedVolumesStillCountAgainstThePool) {
  World w = LocalWorld("10Gi");
  StorageClass keep = Class("keep");
  keep.reclaim_policy = ReclaimPolicy::kRetain;
  w.snap.classes.push_back(keep);
  w.snap.claims = {Claim("first", "6Gi", {kRWO}, "keep")};
  w.Settle();
  w.DeleteClaim("first");
  w.Settle();
  EXPECT_EQ(w.Volume("pvc-uid-claim-first")->status.phase, VolumePhase::kReleased);
  w.snap.claims.push_back(Claim("second", "6Gi", {kRWO}, "local"));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("second")->status.phase, ClaimPhase::kPending);
}

TEST(ProvisioningTest, MaxVolumesHoldsForProvisioning) {
  World w = LocalWorld();
  w.snap.max_volumes = 1;
  w.snap.claims = {Claim("first", "1Gi", {kRWO}, "local", "2026-01-01T00:00:01Z"),
                   Claim("second", "1Gi", {kRWO}, "local", "2026-01-01T00:00:02Z")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("first")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.ClaimNamed("second")->status.phase, ClaimPhase::kPending);
  EXPECT_EQ(w.Event("second", "ProvisioningFailed")->message,
            "failed to provision volume with StorageClass \"local\": 0/1 nodes are available: 1 "
            "node(s) exceed max volume count (1 volumes bound, maxVolumes 1)");
  EXPECT_EQ(w.snap.volumes.size(), 1u);
}

TEST(ProvisioningTest, WaitForFirstConsumerProvisionsOnlyOnceTheClaimHasOne) {
  World w = LocalWorld();
  StorageClass lazy = Class("lazy");
  lazy.volume_binding_mode = model::VolumeBindingMode::kWaitForFirstConsumer;
  w.snap.classes.push_back(lazy);
  w.snap.volumes = {Pv("static-lazy", "5Gi", {kRWO}, "lazy")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "lazy")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("c", "WaitForFirstConsumer");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "Normal");
  EXPECT_EQ(e->message, "waiting for first consumer to be created before binding");
  EXPECT_EQ(w.Volume("static-lazy")->status.phase, VolumePhase::kAvailable);

  w.snap.consumers.insert("default/c");
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "static-lazy");
}

TEST(ProvisioningTest, WaitForFirstConsumerThenProvisions) {
  World w = LocalWorld();
  StorageClass lazy = Class("lazy");
  lazy.volume_binding_mode = model::VolumeBindingMode::kWaitForFirstConsumer;
  w.snap.classes.push_back(lazy);
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "lazy")};
  w.Settle();
  EXPECT_TRUE(w.snap.volumes.empty());
  w.snap.consumers.insert("default/c");
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "pvc-uid-claim-c");
}

TEST(ProvisioningTest, ExternalProvisionerIsWaitedFor) {
  World w = LocalWorld();
  w.snap.classes.push_back(Class("ebs", "ebs.csi.aws.com"));
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "ebs")};
  w.Settle();
  const PersistentVolumeClaim& claim = *w.ClaimNamed("c");
  EXPECT_EQ(claim.status.phase, ClaimPhase::kPending);
  EXPECT_EQ(claim.metadata.annotations.at(kStorageProvisionerAnnotation), "ebs.csi.aws.com");
  EXPECT_EQ(claim.metadata.annotations.at(kBetaStorageProvisionerAnnotation), "ebs.csi.aws.com");
  const model::Event* e = w.Event("c", "ExternalProvisioning");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message,
            "Waiting for a volume to be created either by the external provisioner "
            "'ebs.csi.aws.com' or manually by the system administrator. If volume creation is "
            "delayed, please verify that the provisioner is running and correctly registered.");
  EXPECT_TRUE(w.snap.volumes.empty());

  // The external provisioner's PV, pre-bound to the claim, is bound.
  PersistentVolume pv = Pv("pvc-ext", "1Gi", {kRWO}, "ebs");
  pv.spec.claim_ref =
      model::ObjectReference{"PersistentVolumeClaim", "v1", "default", "c", "uid-claim-c", ""};
  pv.metadata.annotations[model::kProvisionedByAnnotation] = "ebs.csi.aws.com";
  w.snap.volumes.push_back(pv);
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "pvc-ext");
}

TEST(ProvisioningTest, FailedProvisioningIsReportedAndRetried) {
  World w = LocalWorld();
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "local")};
  w.failures[{ActionType::kProvision, "pvc-uid-claim-c"}] =
      "cannot create volume directory /pools/default/pvc-uid-claim-c: No space left on device";
  w.Step();
  EXPECT_TRUE(w.snap.volumes.empty());
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  EXPECT_TRUE(w.snap.mounted.empty());  // the mount waited on the provisioning
  const model::Event* e = w.Event("c", "ProvisioningFailed");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message,
            "failed to provision volume with StorageClass \"local\": cannot create volume "
            "directory /pools/default/pvc-uid-claim-c: No space left on device");
  EXPECT_EQ(w.Event("c", "ProvisioningSucceeded"), nullptr);

  w.Step();
  EXPECT_EQ(w.Event("c", "ProvisioningFailed")->count, 2);
  w.failures.clear();
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.Event("c", "Provisioning")->count, 3);
}

TEST(ProvisioningTest, ProvisioningInOnePlanNeverOvercommits) {
  World w = LocalWorld("10Gi");
  for (int i = 0; i < 4; ++i) {
    w.snap.claims.push_back(Claim("c" + std::to_string(i), "3Gi", {kRWO}, "local"));
  }
  Plan plan = w.Peek();
  int provisions = 0;
  for (const Action& a : plan.actions) provisions += a.type == ActionType::kProvision;
  EXPECT_EQ(provisions, 3);
}

}  // namespace
}  // namespace claimfs::controller::testing
