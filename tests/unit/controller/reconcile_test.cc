// Properties of Reconcile as a whole: determinism, idempotence, event deduplication, and the
// binding invariants over a long run of changes.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>

#include "unit/controller/harness.h"

namespace claimfs::controller::testing {
namespace {

World Busy() {
  World w;
  w.snap.pools = {{"default", "/pools/default", Bytes("10Gi")}};
  w.snap.allowed_host_path_prefixes = {"/tmp"};
  w.snap.classes = {DefaultClass("local"), Class("manual")};
  w.snap.volumes = {Pv("pv-a", "2Gi", {kRWO}, "manual"), Pv("pv-b", "5Gi", {kRWO, kRWX}, "")};
  w.snap.claims = {Claim("dyn", "1Gi", {kRWO}, std::nullopt, "2026-01-01T00:00:01Z"),
                   Claim("static", "1Gi", {kRWO}, "manual", "2026-01-01T00:00:02Z"),
                   Claim("shared", "3Gi", {kRWX}, "", "2026-01-01T00:00:03Z"),
                   Claim("nothing", "50Gi", {kRWO}, "", "2026-01-01T00:00:04Z")};
  return w;
}

TEST(ReconcileTest, IsDeterministic) {
  World a = Busy();
  World b = Busy();
  EXPECT_EQ(a.Peek(), b.Peek());
  EXPECT_FALSE(a.Peek().empty());
}

TEST(ReconcileTest, ApplyingAPlanLeavesNothingToDo) {
  World w = Busy();
  w.Step();
  EXPECT_TRUE(w.Peek().empty());
  EXPECT_EQ(w.ClaimNamed("dyn")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.ClaimNamed("static")->spec.volume_name, "pv-a");
  EXPECT_EQ(w.ClaimNamed("shared")->spec.volume_name, "pv-b");
  EXPECT_EQ(w.ClaimNamed("nothing")->status.phase, ClaimPhase::kPending);
}

TEST(ReconcileTest, PendingClaimEventsAreNotRepeated) {
  World w;
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Step();
  ASSERT_EQ(w.EventsFor("c").size(), 1u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(w.Step().empty());
  ASSERT_EQ(w.EventsFor("c").size(), 1u);
  EXPECT_EQ(w.EventsFor("c")[0]->count, 1);
}

TEST(ReconcileTest, EventsNameTheirObjectAsKubernetes) {
  World w;
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Step();
  const model::Event& e = *w.EventsFor("c")[0];
  EXPECT_EQ(e.metadata.name.rfind("c.", 0), 0u) << e.metadata.name;
  EXPECT_EQ(e.metadata.name.size(), 2u + 16u);
  EXPECT_EQ(e.metadata.namespace_, "default");
  EXPECT_FALSE(e.metadata.uid.empty());
  EXPECT_EQ(e.involved_object.kind, "PersistentVolumeClaim");
  EXPECT_EQ(e.involved_object.api_version, "v1");
  EXPECT_EQ(e.involved_object.namespace_, "default");
  EXPECT_EQ(e.involved_object.uid, "uid-claim-c");
  EXPECT_EQ(e.first_timestamp, "2026-01-02T00:00:01Z");
  EXPECT_EQ(e.last_timestamp, e.first_timestamp);
  EXPECT_EQ(e.count, 1);
}

TEST(ReconcileTest, VolumeEventsLiveInTheDefaultNamespace) {
  World w = [] {
    World w;
    PersistentVolume pv = Pv("pv", "1Gi", {kRWO}, "", "/srv/x");
    pv.spec.reclaim_policy = ReclaimPolicy::kDelete;
    pv.spec.claim_ref =
        model::ObjectReference{"PersistentVolumeClaim", "v1", "default", "gone", "uid-gone", ""};
    w.snap.volumes = {pv};
    return w;
  }();
  w.Settle();
  const model::Event* e = w.Event("pv", "VolumeFailedDelete");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->metadata.namespace_, "default");
  EXPECT_EQ(e->involved_object.kind, "PersistentVolume");
  EXPECT_EQ(e->involved_object.namespace_, "");
}

TEST(ReconcileTest, WritesToCommitDropsGuardedWritesOfSkippedActions) {
  World w;
  w.snap.classes = {DefaultClass("local")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, std::nullopt)};
  Inputs in = w.MakeInputs();
  Plan plan = Reconcile(w.snap, in);
  ASSERT_EQ(plan.actions.size(), 2u);  // Provision, Mount guarded by it
  std::vector<Write> commit = WritesToCommit(w.snap, plan, {std::nullopt, std::nullopt}, in);
  for (const Write& write : commit) {
    EXPECT_FALSE(write.guard);
    EXPECT_FALSE(std::holds_alternative<PersistentVolume>(write.object));
  }
  EXPECT_LT(commit.size(), plan.writes.size());
}

TEST(ReconcileTest, CommitWritesEachObjectOnce) {
  World w = Busy();
  Plan plan = w.Step();
  std::set<std::string> seen;
  for (const Write& write : w.last_commit) {
    std::string key = std::visit(
        [](const auto& o) { return o.metadata.namespace_ + "/" + o.metadata.name; }, write.object);
    if (std::holds_alternative<PersistentVolume>(write.object)) key = "pv:" + key;
    EXPECT_TRUE(seen.insert(key).second) << key;
  }
  // The plan itself wrote some claims more than once (finalizer, class, binding).
  EXPECT_GT(plan.writes.size(), w.last_commit.size());
  EXPECT_EQ(w.ClaimNamed("dyn")->metadata.finalizers,
            std::vector<std::string>{"kubernetes.io/pvc-protection"});
  EXPECT_EQ(w.ClaimNamed("dyn")->status.phase, ClaimPhase::kBound);
}

// A long run of random changes; after every change the world settles and stays consistent.
TEST(ReconcileTest, InvariantsHoldOverRandomChanges) {
  World w;
  w.snap.pools = {{"default", "/pools/default", Bytes("8Gi")}};
  w.snap.allowed_host_path_prefixes = {"/tmp"};
  StorageClass local = DefaultClass("local");
  local.allow_volume_expansion = true;
  StorageClass keep = Class("keep");
  keep.reclaim_policy = ReclaimPolicy::kRetain;
  w.snap.classes = {local, keep};
  w.snap.max_volumes = 10;
  uint64_t seed = 42;
  auto next = [&seed](int n) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>((seed >> 33) % n);
  };
  const char* sizes[] = {"512Mi", "1Gi", "2Gi", "3Gi"};
  const char* classes[] = {"local", "keep", "", "manual"};
  for (int round = 0; round < 300; ++round) {
    std::string id = std::to_string(round);
    switch (next(7)) {
      case 0: {
        PersistentVolume pv = Pv("pv-" + id, sizes[next(4)], {kRWO}, classes[2 + next(2)],
                                 (next(2) ? "/tmp/pv-" : "/srv/pv-") + id);
        pv.spec.reclaim_policy = static_cast<ReclaimPolicy>(next(3));
        w.snap.volumes.push_back(pv);
        break;
      }
      case 1:
      case 2:
        w.snap.claims.push_back(Claim("c-" + id, sizes[next(4)], {kRWO}, classes[next(4)]));
        break;
      case 3:
      case 6:
        if (!w.snap.claims.empty()) {
          auto& c = w.snap.claims[next(static_cast<int>(w.snap.claims.size()))];
          c.metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
          if (next(3) == 0) w.snap.in_use.insert("default/" + c.metadata.name);
        }
        break;
      case 4:
        w.snap.in_use.clear();
        break;
      case 5:
        if (!w.snap.claims.empty()) {
          auto& c = w.snap.claims[next(static_cast<int>(w.snap.claims.size()))];
          c.spec.request = Q(sizes[next(4)]);
        }
        break;
    }
    int steps = w.Settle(4);
    ASSERT_LE(steps, 4) << "round " << round;

    int64_t provisioned = 0;
    int bound = 0;
    for (const PersistentVolume& pv : w.snap.volumes) {
      if (pv.metadata.annotations.count(kPoolAnnotation)) provisioned += pv.spec.capacity->value();
      if (pv.status.phase == VolumePhase::kBound) ++bound;
    }
    ASSERT_LE(provisioned, Bytes("8Gi")) << "round " << round;
    ASSERT_LE(bound, 10) << "round " << round;
    std::set<std::string> used;
    for (const PersistentVolumeClaim& c : w.snap.claims) {
      if (c.status.phase != ClaimPhase::kBound) continue;
      ASSERT_TRUE(used.insert(c.spec.volume_name).second) << "two claims on " << c.spec.volume_name;
      const PersistentVolume* pv = w.Volume(c.spec.volume_name);
      ASSERT_NE(pv, nullptr) << c.metadata.name;
      ASSERT_TRUE(pv->spec.claim_ref);
      ASSERT_EQ(pv->spec.claim_ref->uid, c.metadata.uid);
      ASSERT_EQ(pv->status.phase, VolumePhase::kBound);
      ASSERT_GE(pv->spec.capacity->value(), 0);
      ASSERT_TRUE(w.snap.mounted.count(pv->metadata.name));
    }
    for (const std::string& name : w.snap.mounted) ASSERT_TRUE(used.count(name)) << name;
  }
}

}  // namespace
}  // namespace claimfs::controller::testing
