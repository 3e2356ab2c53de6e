// Static binding: which PV a claim gets, pre-binding, and the claim/PV pair's state.
#include <gtest/gtest.h>

#include <ostream>

#include "unit/controller/harness.h"

namespace claimfs::controller::testing {
namespace {

struct MatchCase {
  const char* name;
  std::vector<PersistentVolume> volumes;
  PersistentVolumeClaim claim;
  const char* expected;  // PV name, or "" for none
};

void PrintTo(const MatchCase& c, std::ostream* os) { *os << c.name; }

PersistentVolume WithMode(PersistentVolume pv, model::VolumeMode mode) {
  pv.spec.volume_mode = mode;
  return pv;
}

PersistentVolume WithPhase(PersistentVolume pv, VolumePhase phase) {
  pv.status.phase = phase;
  return pv;
}

PersistentVolumeClaim WithSelector(PersistentVolumeClaim c, model::LabelSelector s) {
  c.spec.selector = std::move(s);
  return c;
}

PersistentVolume CreatedBy(PersistentVolume pv, const char* uid) {
  pv.metadata.annotations[kCreatorUidAnnotation] = uid;
  return pv;
}

PersistentVolumeClaim OwnedBy(PersistentVolumeClaim c, const char* uid) {
  c.metadata.annotations[kOwnerUidAnnotation] = uid;
  return c;
}

PersistentVolume Labelled(PersistentVolume pv, std::string key, std::string value) {
  pv.metadata.labels[key] = value;
  return pv;
}

class BestMatchTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(BestMatchTest, PicksAsKubernetes) {
  const MatchCase& c = GetParam();
  World w;
  w.snap.volumes = c.volumes;
  w.snap.claims = {c.claim};
  w.Settle();
  const PersistentVolumeClaim& claim = *w.ClaimNamed(c.claim.metadata.name);
  EXPECT_EQ(claim.spec.volume_name, c.expected) << c.name;
  EXPECT_EQ(claim.status.phase, *c.expected ? ClaimPhase::kBound : ClaimPhase::kPending) << c.name;
}

using LSR = model::LabelSelectorRequirement;

INSTANTIATE_TEST_SUITE_P(
    Table, BestMatchTest,
    ::testing::Values(
        MatchCase{"smallest that fits",
                  {Pv("pv-10", "10Gi", {kRWO}, ""), Pv("pv-5", "5Gi", {kRWO}, ""),
                   Pv("pv-1", "1Gi", {kRWO}, "")},
                  Claim("c", "3Gi", {kRWO}, ""),
                  "pv-5"},
        MatchCase{"exact size fits", {Pv("pv-3", "3Gi", {kRWO}, "")},
                  Claim("c", "3Gi", {kRWO}, ""), "pv-3"},
        MatchCase{"too small for all", {Pv("pv-1", "1Gi", {kRWO}, "")},
                  Claim("c", "3Gi", {kRWO}, ""), ""},
        MatchCase{"fewest extra modes beat smaller size",
                  {Pv("pv-many", "1Gi", {kRWO, kROX, kRWX}, ""), Pv("pv-rwo", "2Gi", {kRWO}, "")},
                  Claim("c", "1Gi", {kRWO}, ""),
                  "pv-rwo"},
        MatchCase{"modes must be a superset",
                  {Pv("pv-rwo", "2Gi", {kRWO}, ""), Pv("pv-many", "5Gi", {kRWO, kRWX}, "")},
                  Claim("c", "1Gi", {kRWX}, ""),
                  "pv-many"},
        MatchCase{"no PV offers the modes", {Pv("pv-rwo", "2Gi", {kRWO}, "")},
                  Claim("c", "1Gi", {kROX}, ""), ""},
        MatchCase{"class must match", {Pv("pv-slow", "2Gi", {kRWO}, "slow")},
                  Claim("c", "1Gi", {kRWO}, "fast"), ""},
        // A directory one user controls is never handed to another user's claim.
        MatchCase{"a volume a user created serves only that user's claims",
                  {CreatedBy(Pv("pv-alice", "1Gi", {kRWO}, ""), "1001"),
                   Pv("pv-root", "2Gi", {kRWO}, "")},
                  OwnedBy(Claim("c", "1Gi", {kRWO}, ""), "1002"),
                  "pv-root"},
        MatchCase{"a user's own volume serves its claim",
                  {CreatedBy(Pv("pv-alice", "1Gi", {kRWO}, ""), "1001"),
                   Pv("pv-root", "2Gi", {kRWO}, "")},
                  OwnedBy(Claim("c", "1Gi", {kRWO}, ""), "1001"),
                  "pv-alice"},
        MatchCase{"a claim with no recorded owner gets no user's volume",
                  {CreatedBy(Pv("pv-alice", "1Gi", {kRWO}, ""), "1001")},
                  Claim("c", "1Gi", {kRWO}, ""),
                  ""},
        MatchCase{"empty class binds only classless",
                  {Pv("pv-a-manual", "1Gi", {kRWO}, "manual"), Pv("pv-z", "2Gi", {kRWO}, "")},
                  Claim("c", "1Gi", {kRWO}, ""),
                  "pv-z"},
        MatchCase{"absent class without default binds only classless",
                  {Pv("pv-a-manual", "1Gi", {kRWO}, "manual"), Pv("pv-z", "2Gi", {kRWO}, "")},
                  Claim("c", "1Gi", {kRWO}, std::nullopt),
                  "pv-z"},
        MatchCase{"volumeMode must match",
                  {WithMode(Pv("pv-block", "1Gi", {kRWO}, ""), model::VolumeMode::kBlock)},
                  Claim("c", "1Gi", {kRWO}, ""),
                  ""},
        MatchCase{"absent volumeMode is Filesystem",
                  {[] {
                    PersistentVolume pv = Pv("pv", "1Gi", {kRWO}, "");
                    pv.spec.volume_mode.reset();
                    return pv;
                  }()},
                  Claim("c", "1Gi", {kRWO}, ""),
                  "pv"},
        MatchCase{"Released volumes are not offered",
                  {WithPhase(
                      [] {
                        PersistentVolume pv = Pv("pv", "1Gi", {kRWO}, "");
                        pv.spec.claim_ref = model::ObjectReference{
                            "PersistentVolumeClaim", "v1", "default", "gone", "uid-gone", ""};
                        return pv;
                      }(),
                      VolumePhase::kReleased)},
                  Claim("c", "1Gi", {kRWO}, ""),
                  ""},
        MatchCase{"selector NotIn matches an absent key",
                  {Labelled(Pv("pv-prod", "1Gi", {kRWO}, ""), "stage", "production"),
                   Pv("pv-plain", "2Gi", {kRWO}, "")},
                  WithSelector(Claim("c", "1Gi", {kRWO}, ""),
                               {{}, {LSR{"stage", LSR::Operator::kNotIn, {"production"}}}}),
                  "pv-plain"},
        MatchCase{"selector Exists",
                  {Pv("pv-plain", "1Gi", {kRWO}, ""),
                   Labelled(Pv("pv-ssd", "2Gi", {kRWO}, ""), "ssd", "")},
                  WithSelector(Claim("c", "1Gi", {kRWO}, ""),
                               {{}, {LSR{"ssd", LSR::Operator::kExists, {}}}}),
                  "pv-ssd"},
        MatchCase{"selector DoesNotExist",
                  {Labelled(Pv("pv-ssd", "1Gi", {kRWO}, ""), "ssd", ""),
                   Pv("pv-plain", "2Gi", {kRWO}, "")},
                  WithSelector(Claim("c", "1Gi", {kRWO}, ""),
                               {{}, {LSR{"ssd", LSR::Operator::kDoesNotExist, {}}}}),
                  "pv-plain"}));

TEST(BindingTest, DefaultClassIsWrittenIntoTheClaimAndSelectsItsVolumes) {
  World w;
  w.snap.classes = {Class("other"), DefaultClass("local")};
  w.snap.volumes = {Pv("pv-classless", "1Gi", {kRWO}, ""), Pv("pv-local", "2Gi", {kRWO}, "local")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, std::nullopt)};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.storage_class_name, std::optional<std::string>("local"));
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "pv-local");
}

TEST(BindingTest, NewestDefaultClassWins) {
  World w;
  StorageClass old_default = DefaultClass("old");
  StorageClass new_default = DefaultClass("new");
  new_default.metadata.creation_timestamp = "2026-01-01T12:00:00Z";
  w.snap.classes = {new_default, old_default};
  w.snap.volumes = {Pv("pv-old", "1Gi", {kRWO}, "old"), Pv("pv-new", "1Gi", {kRWO}, "new")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, std::nullopt)};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "pv-new");
}

TEST(BindingTest, EmptyClassIsNotReplacedByTheDefault) {
  World w;
  w.snap.classes = {DefaultClass("local")};
  w.snap.volumes = {Pv("pv-classless", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.storage_class_name, std::optional<std::string>(""));
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "pv-classless");
}

TEST(BindingTest, OneVolumeOneClaimTheOlderClaimFirst) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("younger", "1Gi", {kRWO}, "", "2026-01-01T00:00:09Z"),
                   Claim("older", "1Gi", {kRWO}, "", "2026-01-01T00:00:02Z")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("older")->spec.volume_name, "pv");
  EXPECT_EQ(w.ClaimNamed("younger")->status.phase, ClaimPhase::kPending);
  EXPECT_NE(w.Event("younger", "FailedBinding"), nullptr);
  EXPECT_EQ(w.Volume("pv")->spec.claim_ref->name, "older");
}

TEST(BindingTest, PendingClaimBindsWhenAVolumeAppears) {
  World w;
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  w.snap.volumes.push_back(Pv("late", "1Gi", {kRWO}, ""));
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "late");
  EXPECT_EQ(w.Volume("late")->status.phase, VolumePhase::kBound);
}

PersistentVolume ReservedFor(PersistentVolume pv, const std::string& claim,
                             const std::string& uid = "") {
  pv.spec.claim_ref =
      model::ObjectReference{"PersistentVolumeClaim", "v1", "default", claim, uid, ""};
  return pv;
}

TEST(BindingTest, ClaimRefReservesTheVolume) {
  World w;
  w.snap.volumes = {ReservedFor(Pv("reserved", "1Gi", {kRWO}, ""), "b")};
  w.snap.claims = {Claim("a", "1Gi", {kRWO}, "", "2026-01-01T00:00:01Z")};
  w.Settle();
  EXPECT_EQ(w.Volume("reserved")->status.phase, VolumePhase::kAvailable);
  EXPECT_EQ(w.ClaimNamed("a")->status.phase, ClaimPhase::kPending);

  w.snap.claims.push_back(Claim("b", "1Gi", {kRWO}, "", "2026-01-01T00:00:05Z"));
  w.Settle();
  const PersistentVolume& pv = *w.Volume("reserved");
  EXPECT_EQ(w.ClaimNamed("b")->spec.volume_name, "reserved");
  EXPECT_EQ(pv.spec.claim_ref->uid, "uid-claim-b");
  // A user's pre-binding is not the controller's.
  EXPECT_EQ(pv.metadata.annotations.count(model::kBoundByControllerAnnotation), 0u);
  EXPECT_EQ(w.ClaimNamed("a")->status.phase, ClaimPhase::kPending);
}

TEST(BindingTest, PreboundVolumeWinsOverASmallerAvailableOneAndSkipsClassCheck) {
  World w;
  w.snap.volumes = {Pv("small", "1Gi", {kRWO}, ""),
                    ReservedFor(Pv("reserved", "5Gi", {kRWO}, "other"), "c")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->spec.volume_name, "reserved");
}

TEST(BindingTest, ClaimRefWithAnotherUidIsNotThisClaim) {
  World w;
  w.snap.volumes = {
      WithPhase(ReservedFor(Pv("pv", "1Gi", {kRWO}, ""), "c", "uid-old"), VolumePhase::kReleased)};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kReleased);
}

TEST(BindingTest, VolumeNameBindsTheNamedVolumeEvenIfAnotherFitsBetter) {
  World w;
  w.snap.volumes = {Pv("small", "1Gi", {kRWO}, ""), Pv("wanted", "9Gi", {kRWO}, "")};
  PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, "");
  c.spec.volume_name = "wanted";
  w.snap.claims = {c};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.Volume("wanted")->spec.claim_ref->name, "c");
  // The claim chose the volume, so the controller did not bind it from the claim's side.
  EXPECT_EQ(w.ClaimNamed("c")->metadata.annotations.count(model::kBoundByControllerAnnotation), 0u);
  EXPECT_EQ(w.Volume("small")->status.phase, VolumePhase::kAvailable);
}

struct MismatchCase {
  const char* name;
  PersistentVolume pv;
  const char* why;
};

void PrintTo(const MismatchCase& c, std::ostream* os) { *os << c.name; }

class VolumeMismatchTest : public ::testing::TestWithParam<MismatchCase> {};

TEST_P(VolumeMismatchTest, NamesTheReason) {
  const MismatchCase& m = GetParam();
  World w;
  w.snap.volumes = {m.pv};
  PersistentVolumeClaim c = Claim("c", "2Gi", {kRWO}, "manual");
  c.spec.volume_name = "pv1";
  w.snap.claims = {c};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending) << m.name;
  const model::Event* e = w.Event("c", "VolumeMismatch");
  ASSERT_NE(e, nullptr) << m.name;
  EXPECT_EQ(e->type, "Warning");
  EXPECT_EQ(e->message, std::string("Cannot bind to requested volume \"pv1\": ") + m.why);
}

INSTANTIATE_TEST_SUITE_P(
    Table, VolumeMismatchTest,
    ::testing::Values(
        MismatchCase{"size", Pv("pv1", "1Gi", {kRWO}, "manual"), "requested PV is too small"},
        MismatchCase{"class", Pv("pv1", "2Gi", {kRWO}, "fast"), "storageClassName does not match"},
        MismatchCase{"mode",
                     WithMode(Pv("pv1", "2Gi", {kRWO}, "manual"), model::VolumeMode::kBlock),
                     "incompatible volumeMode"},
        MismatchCase{"access", Pv("pv1", "2Gi", {kROX}, "manual"), "incompatible accessMode"},
        MismatchCase{"deleting",
                     [] {
                       PersistentVolume pv = Pv("pv1", "2Gi", {kRWO}, "manual");
                       pv.metadata.deletion_timestamp = "2026-01-01T00:00:00Z";
                       pv.metadata.finalizers = {"example.com/hold"};
                       return pv;
                     }(),
                     "the volume is marked for deletion \"pv1\""},
        MismatchCase{"another user's volume",
                     CreatedBy(Pv("pv1", "2Gi", {kRWO}, "manual"), "1001"),
                     "the volume was created by another user"}));

TEST(BindingTest, VolumeNameOfAVolumeBoundElsewhere) {
  World w;
  w.snap.volumes = {Pv("pv1", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("first", "1Gi", {kRWO}, "", "2026-01-01T00:00:01Z")};
  w.Settle();
  PersistentVolumeClaim second = Claim("second", "1Gi", {kRWO}, "", "2026-01-01T00:00:02Z");
  second.spec.volume_name = "pv1";
  w.snap.claims.push_back(second);
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("second")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("second", "FailedBinding");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message, "volume \"pv1\" already bound to a different claim.");
  EXPECT_EQ(e->type, "Warning");
}

TEST(BindingTest, VolumeNameOfAMissingVolumeWaitsForIt) {
  World w;
  PersistentVolumeClaim c = Claim("c", "1Gi", {kRWO}, "");
  c.spec.volume_name = "later";
  w.snap.claims = {c};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  EXPECT_TRUE(w.EventsFor("c").empty());
  w.snap.volumes = {Pv("later", "1Gi", {kRWO}, "")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
}

TEST(BindingTest, BoundClaimRepairsAVolumeThatLostItsClaimRef) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  w.Volume("pv")->spec.claim_ref.reset();
  w.Settle();
  ASSERT_TRUE(w.Volume("pv")->spec.claim_ref);
  EXPECT_EQ(w.Volume("pv")->spec.claim_ref->uid, "uid-claim-c");
  EXPECT_EQ(w.Volume("pv")->status.phase, VolumePhase::kBound);
}

TEST(BindingTest, TwoClaimsOnOneVolumeMakeTheWrongOneMisbound) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.Settle();
  PersistentVolumeClaim impostor = *w.ClaimNamed("c");
  impostor.metadata.name = "impostor";
  impostor.metadata.uid = "uid-impostor";
  w.snap.claims.push_back(impostor);
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("impostor")->status.phase, ClaimPhase::kLost);
  const model::Event* e = w.Event("impostor", "ClaimMisbound");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message, "Two claims are bound to the same volume, this one is bound incorrectly");
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
}

TEST(BindingTest, MaxVolumesKeepsFurtherClaimsPending) {
  World w;
  w.snap.max_volumes = 1;
  w.snap.volumes = {Pv("pv-a", "1Gi", {kRWO}, ""), Pv("pv-b", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("first", "1Gi", {kRWO}, "", "2026-01-01T00:00:01Z"),
                   Claim("second", "1Gi", {kRWO}, "", "2026-01-01T00:00:02Z")};
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("first")->status.phase, ClaimPhase::kBound);
  EXPECT_EQ(w.ClaimNamed("second")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("second", "FailedBinding");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message,
            "0/1 nodes are available: 1 node(s) exceed max volume count (1 volumes bound, "
            "maxVolumes 1)");
  // The first claim goes; the second binds.
  w.DeleteClaim("first");
  w.Settle();
  EXPECT_EQ(w.ClaimNamed("second")->status.phase, ClaimPhase::kBound);
}

TEST(BindingTest, ReadOnlyManyClaimIsMountedReadOnlyWithTheVolumesMountOptions) {
  World w;
  PersistentVolume pv = Pv("pv", "1Gi", {kROX}, "");
  pv.spec.mount_options = {"noexec", "nosuid"};
  w.snap.volumes = {pv};
  w.snap.claims = {Claim("c", "1Gi", {kROX}, "")};
  w.Step();  // finalizers, Available, bind and mount in one plan
  ASSERT_EQ(w.last_plan.actions.size(), 1u);
  const Action& mount = w.last_plan.actions[0];
  EXPECT_EQ(mount.type, ActionType::kMount);
  EXPECT_EQ(mount.claim, "default/c");
  EXPECT_TRUE(mount.read_only);
  EXPECT_EQ(mount.mount_options, (std::vector<std::string>{"noexec", "nosuid"}));
  EXPECT_EQ(mount.size_bytes, Bytes("1Gi"));
  EXPECT_TRUE(w.snap.mounted.count("pv"));
  EXPECT_TRUE(w.Peek().empty());
}

TEST(BindingTest, FailedMountIsReportedAndRetried) {
  World w;
  w.snap.volumes = {Pv("pv", "1Gi", {kRWO}, "")};
  w.snap.claims = {Claim("c", "1Gi", {kRWO}, "")};
  w.failures[{ActionType::kMount, "pv"}] = "mount failed: invalid option \"bogus\"";
  w.Step();
  // Never shown Bound without its mount: the claim waits, the volume stays reserved for it.
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  const model::Event* e = w.Event("c", "FailedMount");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message,
            "MountVolume.SetUp failed for volume \"pv\" : mount failed: invalid option \"bogus\"");
  EXPECT_EQ(e->source_component, "kubelet");
  w.Step();
  EXPECT_EQ(w.Event("c", "FailedMount")->count, 2);
  w.failures.clear();
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kPending);
  w.Settle();
  EXPECT_TRUE(w.snap.mounted.count("pv"));
  EXPECT_EQ(w.ClaimNamed("c")->status.phase, ClaimPhase::kBound);
}

}  // namespace
}  // namespace claimfs::controller::testing
