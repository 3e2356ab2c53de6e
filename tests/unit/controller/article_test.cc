// The scenarios of the article claimfs grew from (shared/reference/000_c820dc5d093c2fff.txt).
#include <gtest/gtest.h>

#include "unit/controller/harness.h"

namespace claimfs::controller::testing {
namespace {

// pv-hostpath.yaml: 2Gi, RWO, manual, Delete, hostPath /tmp/k8s-pv.
PersistentVolume PvHostpath(const std::string& name = "pv-hostpath") {
  PersistentVolume pv = Pv(name, "2Gi", {kRWO}, "manual", "/tmp/k8s-pv");
  pv.spec.reclaim_policy = ReclaimPolicy::kDelete;
  return pv;
}

// pvc-hostpath.yaml: 1Gi, RWO, Filesystem, manual.
PersistentVolumeClaim PvcHostpath(const std::string& name = "pvc-hostpath",
                                  const char* request = "1Gi") {
  return Claim(name, request, {kRWO}, "manual");
}

TEST(ArticleTest, SmallClaimBindsTheTwoGiVolumeAndShowsItsCapacity) {
  World w;
  w.snap.volumes.push_back(PvHostpath());
  w.Step();
  EXPECT_EQ(w.Volume("pv-hostpath")->status.phase, VolumePhase::kAvailable);

  w.snap.claims.push_back(PvcHostpath());
  w.Step();
  // One plan binds both sides.
  const PersistentVolumeClaim& pvc = *w.ClaimNamed("pvc-hostpath");
  const PersistentVolume& pv = *w.Volume("pv-hostpath");
  EXPECT_EQ(pvc.status.phase, ClaimPhase::kBound);
  EXPECT_EQ(pvc.spec.volume_name, "pv-hostpath");
  ASSERT_TRUE(pvc.status.capacity);
  EXPECT_EQ(pvc.status.capacity->ToString(), "2Gi");
  EXPECT_EQ(pvc.status.access_modes, std::vector<AccessMode>{kRWO});
  EXPECT_EQ(pvc.metadata.annotations.at(model::kBindCompletedAnnotation), "yes");
  EXPECT_EQ(pvc.metadata.annotations.at(model::kBoundByControllerAnnotation), "yes");
  EXPECT_EQ(pv.status.phase, VolumePhase::kBound);
  ASSERT_TRUE(pv.spec.claim_ref);
  EXPECT_EQ(pv.spec.claim_ref->kind, "PersistentVolumeClaim");
  EXPECT_EQ(pv.spec.claim_ref->api_version, "v1");
  EXPECT_EQ(pv.spec.claim_ref->namespace_, "default");
  EXPECT_EQ(pv.spec.claim_ref->name, "pvc-hostpath");
  EXPECT_EQ(pv.spec.claim_ref->uid, "uid-claim-pvc-hostpath");
  EXPECT_EQ(pv.spec.claim_ref->resource_version, "1");
  EXPECT_EQ(pv.metadata.annotations.at(model::kBoundByControllerAnnotation), "yes");
  EXPECT_EQ(pv.spec.capacity->ToString(), "2Gi");  // the PV keeps its own size
  // The bound volume is served.
  ASSERT_EQ(w.last_plan.actions.size(), 1u);
  EXPECT_EQ(w.last_plan.actions[0].type, ActionType::kMount);
  EXPECT_EQ(w.last_plan.actions[0].path, "/tmp/k8s-pv");
  EXPECT_TRUE(w.Peek().empty());
}

TEST(ArticleTest, ThreeGiClaimWithoutClassStaysPendingWithFailedBinding) {
  World w;
  w.snap.volumes.push_back(PvHostpath());
  PersistentVolume classless = Pv("pv-classless", "2Gi", {kRWO}, "");
  w.snap.volumes.push_back(classless);
  w.snap.claims.push_back(Claim("big", "3Gi", {kRWO}, ""));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("big")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("big", "FailedBinding");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "Normal");
  EXPECT_EQ(e->message,
            "no persistent volumes available for this claim and no storage class is set");
  EXPECT_EQ(e->source_component, "persistentvolume-controller");
  EXPECT_EQ(w.Volume("pv-hostpath")->status.phase, VolumePhase::kAvailable);
}

// kubectl describe shows "(x3 over 30s)": the PV controller's 15 s resync re-emits FailedBinding
// for a claim that stays Pending, and the API server folds the repeats into one counted event.
TEST(ArticleTest, FailedBindingWasNotRepeatedAtEachResync) {
  World w;
  w.snap.claims.push_back(Claim("big", "3Gi", {kRWO}, ""));
  w.Settle();
  const model::Event* e = w.Event("big", "FailedBinding");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->count, 1);
  const std::string first = e->first_timestamp;
  w.Wait(5);  // within the resync period: nothing new
  EXPECT_TRUE(w.Step().empty());
  w.Wait(15);
  w.Step();
  e = w.Event("big", "FailedBinding");
  EXPECT_EQ(e->count, 2);
  EXPECT_EQ(e->first_timestamp, first);
  EXPECT_NE(e->last_timestamp, first);
  w.Wait(15);
  w.Step();
  EXPECT_EQ(w.Event("big", "FailedBinding")->count, 3);
  EXPECT_EQ(w.EventsFor("big").size(), 1u);
  EXPECT_EQ(w.ClaimNamed("big")->status.phase, ClaimPhase::kPending);
}

// A claim deleted and created again under the same name is a new object: the old claim's events
// are not counted on it.
TEST(ArticleTest, EventsOfADeletedClaimWereCountedOnItsNamesake) {
  World w;
  w.snap.claims.push_back(Claim("big", "3Gi", {kRWO}, ""));
  w.Settle();
  PersistentVolumeClaim again = *w.ClaimNamed("big");
  again.metadata.uid = "uid-claim-big-2";
  again.status = {};
  w.snap.claims = {again};
  w.Wait(20);
  w.Step();
  std::vector<const model::Event*> events = w.EventsFor("big");
  ASSERT_EQ(events.size(), 2u);
  for (const model::Event* e : events) EXPECT_EQ(e->count, 1);
  EXPECT_NE(events[0]->involved_object.uid, events[1]->involved_object.uid);
}

// The article's class "manual" names no StorageClass object; Kubernetes then reports the missing
// class (ProvisioningFailed) rather than FailedBinding, and so does claimfs.
TEST(ArticleTest, ThreeGiClaimOfClassManualStaysPendingAndNamesTheMissingClass) {
  World w;
  w.snap.volumes.push_back(PvHostpath());
  w.snap.claims.push_back(PvcHostpath("pvc-3gi", "3Gi"));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("pvc-3gi")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("pvc-3gi", "ProvisioningFailed");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "Warning");
  EXPECT_EQ(e->message, "storageclass.storage.k8s.io \"manual\" not found");
  // Space appears: the claim binds on the next reconcile.
  w.snap.volumes.push_back(Pv("pv-5gi", "5Gi", {kRWO}, "manual"));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("pvc-3gi")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.ClaimNamed("pvc-3gi")->spec.volume_name, "pv-5gi");
}

TEST(ArticleTest, HundredFiftyGRequestAgainstHundredGOfVolumesFails) {
  World w;
  w.snap.volumes.push_back(Pv("pv-a", "50G", {kRWO}, ""));
  w.snap.volumes.push_back(Pv("pv-b", "50G", {kRWO}, ""));
  w.snap.claims.push_back(Claim("claim-150g", "150G", {kRWO}, ""));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("claim-150g")->status.phase, ClaimPhase::kPending);
  EXPECT_NE(w.Event("claim-150g", "FailedBinding"), nullptr);
  EXPECT_EQ(w.Volume("pv-a")->status.phase, VolumePhase::kAvailable);
  EXPECT_EQ(w.Volume("pv-b")->status.phase, VolumePhase::kAvailable);
}

TEST(ArticleTest, HundredFiftyGRequestAgainstAHundredGPoolFailsWithTheFigures) {
  World w;
  w.snap.pools = {{"default", "/pools/default", Bytes("100G")}};
  w.snap.classes.push_back(DefaultClass("local"));
  w.snap.claims.push_back(Claim("claim-150g", "150G", {kRWO}, std::nullopt));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("claim-150g")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("claim-150g", "ProvisioningFailed");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message,
            "failed to provision volume with StorageClass \"local\": insufficient capacity in "
            "pool \"default\": requested 150G, pool capacity 100G, already provisioned 0");
  EXPECT_TRUE(w.snap.volumes.empty());
}

TEST(ArticleTest, LabelSelectorBindsOnlyTheLabelledVolume) {
  World w;
  w.snap.volumes.push_back(PvHostpath("pv-hostpath"));
  PersistentVolume labelled = PvHostpath("pv-hostpath-label");
  labelled.metadata.labels["location"] = "local";
  w.snap.volumes.push_back(labelled);
  PersistentVolumeClaim pvc = PvcHostpath("pvc-hostpath-label");
  pvc.spec.selector = model::LabelSelector{{{"location", "local"}}, {}};
  w.snap.claims.push_back(pvc);
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("pvc-hostpath-label")->spec.volume_name, "pv-hostpath-label");
  EXPECT_EQ(w.Volume("pv-hostpath")->status.phase, VolumePhase::kAvailable);
}

TEST(ArticleTest, LabelSelectorWaitsWhenOnlyUnlabelledVolumesExist) {
  World w;
  w.snap.volumes.push_back(PvHostpath("pv-hostpath"));
  PersistentVolumeClaim pvc = PvcHostpath("pvc-hostpath-label");
  pvc.spec.selector = model::LabelSelector{{{"location", "local"}}, {}};
  w.snap.claims.push_back(pvc);
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("pvc-hostpath-label")->status.phase, ClaimPhase::kPending);
  EXPECT_EQ(w.Volume("pv-hostpath")->status.phase, VolumePhase::kAvailable);
}

TEST(ArticleTest, MatchExpressionsStageInDevelopment) {
  World w;
  PersistentVolume prod = Pv("pv-prod", "1Gi", {kRWO}, "manual");
  prod.metadata.labels["stage"] = "production";
  PersistentVolume dev = Pv("pv-dev", "2Gi", {kRWO}, "manual");
  dev.metadata.labels["stage"] = "development";
  w.snap.volumes = {prod, dev};
  PersistentVolumeClaim pvc = PvcHostpath("pvc-dev");
  model::LabelSelector selector;
  selector.match_expressions.push_back(
      {"stage", model::LabelSelectorRequirement::Operator::kIn, {"development"}});
  pvc.spec.selector = selector;
  w.snap.claims.push_back(pvc);
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("pvc-dev")->spec.volume_name, "pv-dev");
  EXPECT_EQ(w.Volume("pv-prod")->status.phase, VolumePhase::kAvailable);
}

TEST(ArticleTest, ClaimInUseStaysTerminatingWithItsFinalizer) {
  World w;
  w.snap.volumes.push_back(PvHostpath());
  w.snap.claims.push_back(PvcHostpath());
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("pvc-hostpath")->metadata.finalizers,
            std::vector<std::string>{"kubernetes.io/pvc-protection"});
  w.snap.in_use.insert("default/pvc-hostpath");
  w.DeleteClaim("pvc-hostpath");
  EXPECT_TRUE(w.Peek().empty());
  ASSERT_NE(w.ClaimNamed("pvc-hostpath"), nullptr);
  w.snap.in_use.clear();
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("pvc-hostpath"), nullptr);
}

}  // namespace
}  // namespace claimfs::controller::testing
