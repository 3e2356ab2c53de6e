// kubectl apply's three-way merge patch and the last-applied-configuration bookkeeping.
#include "claimctl/merge_patch.h"

#include <gtest/gtest.h>

#include "claimctl/apply.h"

namespace claimfs::claimctl {
namespace {

using nlohmann::json;

json J(const char* text) { return json::parse(text); }

TEST(ThreeWayMergePatchTest, UnchangedIsEmpty) {
  json manifest = J(R"({"spec":{"resources":{"requests":{"storage":"1Gi"}}}})");
  json live = J(R"({"spec":{"resources":{"requests":{"storage":"1Gi"}},"volumeName":"pv-1"},
                   "status":{"phase":"Bound"}})");
  EXPECT_EQ(ThreeWayMergePatch(manifest, manifest, live), json::object());
}

TEST(ThreeWayMergePatchTest, ChangedFieldIsSet) {
  json original = J(R"({"spec":{"resources":{"requests":{"storage":"1Gi"}}}})");
  json modified = J(R"({"spec":{"resources":{"requests":{"storage":"2Gi"}}}})");
  json live = J(R"({"spec":{"resources":{"requests":{"storage":"1Gi"}},"volumeName":"pv-1"}})");
  EXPECT_EQ(ThreeWayMergePatch(original, modified, live),
            J(R"({"spec":{"resources":{"requests":{"storage":"2Gi"}}}})"));
}

TEST(ThreeWayMergePatchTest, AddedFieldIsSet) {
  json original = J(R"({"metadata":{"name":"a"}})");
  json modified = J(R"({"metadata":{"name":"a","labels":{"app":"db"}}})");
  json live = J(R"({"metadata":{"name":"a","uid":"u"}})");
  EXPECT_EQ(ThreeWayMergePatch(original, modified, live),
            J(R"({"metadata":{"labels":{"app":"db"}}})"));
}

TEST(ThreeWayMergePatchTest, FieldDroppedFromManifestIsDeleted) {
  json original = J(R"({"metadata":{"labels":{"app":"db","tier":"x"}},"spec":{"a":1}})");
  json modified = J(R"({"metadata":{"labels":{"app":"db"}}})");
  json live =
      J(R"({"metadata":{"labels":{"app":"db","tier":"x","other":"y"}},"spec":{"a":1,"b":2}})");
  EXPECT_EQ(ThreeWayMergePatch(original, modified, live),
            J(R"({"metadata":{"labels":{"tier":null}},"spec":null})"));
}

TEST(ThreeWayMergePatchTest, FieldsSetByOthersAreKept) {
  // Not in the last-applied configuration: the daemon or another client set it; apply keeps it.
  json original = J(R"({"spec":{"a":1}})");
  json modified = J(R"({"spec":{"a":1}})");
  json live = J(R"({"spec":{"a":1,"volumeName":"pv-9"},"metadata":{"finalizers":["f"]}})");
  EXPECT_EQ(ThreeWayMergePatch(original, modified, live), json::object());
}

TEST(ThreeWayMergePatchTest, LiveDriftFromManifestIsReverted) {
  json original = J(R"({"spec":{"a":1}})");
  json modified = J(R"({"spec":{"a":1}})");
  json live = J(R"({"spec":{"a":5}})");
  EXPECT_EQ(ThreeWayMergePatch(original, modified, live), J(R"({"spec":{"a":1}})"));
}

TEST(ThreeWayMergePatchTest, ListsAreReplacedWhole) {
  json original = J(R"({"spec":{"accessModes":["ReadWriteOnce"]}})");
  json modified = J(R"({"spec":{"accessModes":["ReadWriteOnce","ReadOnlyMany"]}})");
  json live = original;
  EXPECT_EQ(ThreeWayMergePatch(original, modified, live), modified);
}

TEST(ThreeWayMergePatchTest, DeletionOfWhatIsAlreadyGoneIsLeftOut) {
  json original = J(R"({"spec":{"a":1,"b":2}})");
  json modified = J(R"({"spec":{"a":1}})");
  json live = J(R"({"spec":{"a":1}})");
  EXPECT_EQ(ThreeWayMergePatch(original, modified, live), json::object());
}

TEST(ThreeWayMergePatchTest, NoLastAppliedOnlyAddsAndChanges) {
  json modified = J(R"({"spec":{"a":1}})");
  json live = J(R"({"spec":{"a":2,"b":3}})");
  EXPECT_EQ(ThreeWayMergePatch(json(), modified, live), J(R"({"spec":{"a":1}})"));
}

TEST(ThreeWayMergePatchTest, ObjectReplacingScalarIsSetWhole) {
  json modified = J(R"({"spec":{"hostPath":{"path":"/p"}}})");
  json live = J(R"({"spec":{"hostPath":"weird"}})");
  EXPECT_EQ(ThreeWayMergePatch(json(), modified, live), modified);
}

TEST(TwoWayMergePatchTest, Rfc7386Diff) {
  EXPECT_EQ(TwoWayMergePatch(J(R"({"a":1,"b":{"c":2,"d":3}})"), J(R"({"a":1,"b":{"c":4},"e":5})")),
            J(R"({"b":{"c":4,"d":null},"e":5})"));
  EXPECT_EQ(TwoWayMergePatch(J(R"({"a":[1]})"), J(R"({"a":[1]})")), json::object());
}

TEST(LastAppliedTest, AnnotationHoldsTheManifestWithoutStatus) {
  json manifest = J(R"({"apiVersion":"v1","kind":"PersistentVolumeClaim",
      "metadata":{"name":"data","namespace":"default"},
      "spec":{"resources":{"requests":{"storage":"1Gi"}}},"status":{"phase":"Pending"}})");
  json modified = WithLastApplied(manifest);
  EXPECT_FALSE(modified.contains("status"));
  std::string annotation = modified["metadata"]["annotations"][kLastAppliedAnnotation];
  EXPECT_EQ(annotation,
            R"({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data",)"
            R"("namespace":"default"},"spec":{"resources":{"requests":{"storage":"1Gi"}}}})"
            "\n");
  // Applying the result again does not nest the annotation in itself.
  EXPECT_EQ(WithLastApplied(modified), modified);
}

TEST(LastAppliedTest, ApplyPatchIsEmptyWhenNothingChanged) {
  json manifest = J(R"({"apiVersion":"v1","kind":"PersistentVolumeClaim",
      "metadata":{"name":"data","namespace":"default"},
      "spec":{"resources":{"requests":{"storage":"1Gi"}},"accessModes":["ReadWriteOnce"]}})");
  json modified = WithLastApplied(manifest);
  json live = modified;
  live["metadata"]["uid"] = "1234";
  live["metadata"]["resourceVersion"] = "7";
  live["metadata"]["finalizers"] = {"kubernetes.io/pvc-protection"};
  live["spec"]["volumeName"] = "pvc-1234";
  live["spec"]["volumeMode"] = "Filesystem";
  live["status"] = {{"phase", "Bound"}};
  EXPECT_EQ(ApplyPatch(modified, live), json::object());

  // Growing the claim: the new size and the new annotation.
  json grown = manifest;
  grown["spec"]["resources"]["requests"]["storage"] = "2Gi";
  json patch = ApplyPatch(WithLastApplied(grown), live);
  EXPECT_EQ(patch["spec"], J(R"({"resources":{"requests":{"storage":"2Gi"}}})"));
  ASSERT_TRUE(patch["metadata"]["annotations"].contains(kLastAppliedAnnotation));
  EXPECT_EQ(patch.size(), 2u);

  // Dropping a label the last apply had set removes it; labels others set stay.
  json labelled = manifest;
  labelled["metadata"]["labels"] = {{"app", "db"}, {"tier", "x"}};
  json live2 = WithLastApplied(labelled);
  live2["metadata"]["labels"]["owner"] = "ops";
  json patch2 = ApplyPatch(WithLastApplied([&] {
                             json m = labelled;
                             m["metadata"]["labels"].erase("tier");
                             return m;
                           }()),
                           live2);
  EXPECT_EQ(patch2["metadata"]["labels"], J(R"({"tier":null})"));
}

}  // namespace
}  // namespace claimfs::claimctl
