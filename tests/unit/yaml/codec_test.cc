#include "claimfs/yaml/codec.h"

#include <gtest/gtest.h>

#include "claimfs/yaml/manifest.h"

namespace claimfs::yaml {
namespace {

using nlohmann::json;

model::Quantity Q(const char* text) { return model::Quantity::Parse(text).value(); }

model::StorageClass FullStorageClass() {
  model::StorageClass sc;
  sc.metadata.name = "local";
  sc.metadata.uid = "8c1f";
  sc.metadata.resource_version = "12";
  sc.metadata.generation = 1;
  sc.metadata.creation_timestamp = "2026-11-25T10:00:00Z";
  sc.metadata.annotations[model::kDefaultClassAnnotation] = "true";
  sc.metadata.labels["tier"] = "fast";
  sc.provisioner = model::kProvisionerName;
  sc.parameters["pool"] = "default";
  sc.reclaim_policy = model::ReclaimPolicy::kRetain;
  sc.allow_volume_expansion = false;
  sc.mount_options = {"noatime", "nodev"};
  sc.volume_binding_mode = model::VolumeBindingMode::kWaitForFirstConsumer;
  sc.unknown_fields = {{"allowedTopologies", json::array({{{"x", 1}}})}};
  return sc;
}

model::PersistentVolume FullPersistentVolume() {
  model::PersistentVolume pv;
  pv.metadata.name = "pvc-0b1e";
  pv.metadata.finalizers = {model::kPvProtectionFinalizer};
  pv.metadata.deletion_timestamp = "2026-11-25T11:00:00Z";
  pv.metadata.annotations[model::kProvisionedByAnnotation] = model::kProvisionerName;
  pv.spec.capacity = Q("1536Mi");
  pv.spec.access_modes = {model::AccessMode::kReadWriteOnce, model::AccessMode::kReadOnlyMany};
  pv.spec.volume_mode = model::VolumeMode::kBlock;
  pv.spec.storage_class_name = "local";
  pv.spec.reclaim_policy = model::ReclaimPolicy::kRecycle;
  pv.spec.mount_options = {"ro"};
  pv.spec.local = model::LocalVolumeSource{"/pool/pvc-0b1e"};
  pv.spec.claim_ref =
      model::ObjectReference{"PersistentVolumeClaim", "v1", "default", "data", "0b1e", "7"};
  pv.status.phase = model::VolumePhase::kFailed;
  pv.status.message = "cannot delete /pool/pvc-0b1e: Permission denied";
  pv.status.reason = "VolumeFailedDelete";
  pv.status.last_phase_transition_time = "2026-11-25T11:00:01Z";
  pv.unknown_fields = {{"spec", {{"nodeAffinity", {{"required", {{"a", "b"}}}}}}},
                       {"metadata", {{"ownerReferences", json::array()}}}};
  return pv;
}

model::PersistentVolume HostPathVolume() {
  model::PersistentVolume pv;
  pv.metadata.name = "pv-hostpath";
  pv.spec.capacity = Q("1e9");
  pv.spec.access_modes = {model::AccessMode::kReadWriteOncePod};
  pv.spec.host_path = model::HostPathVolumeSource{"/tmp/k8s-pv", ""};
  pv.status.phase = model::VolumePhase::kAvailable;
  return pv;
}

model::PersistentVolumeClaim FullClaim() {
  using Op = model::LabelSelectorRequirement::Operator;
  model::PersistentVolumeClaim pvc;
  pvc.metadata.name = "data";
  pvc.metadata.namespace_ = "team-a";
  pvc.metadata.finalizers = {model::kPvcProtectionFinalizer};
  pvc.spec.access_modes = {model::AccessMode::kReadWriteMany};
  pvc.spec.selector = model::LabelSelector{
      {{"location", "local"}},
      {{"stage", Op::kIn, {"development", "test"}}, {"tier", Op::kDoesNotExist, {}}}};
  pvc.spec.request = Q("1500M");
  pvc.spec.limit = Q("2G");
  pvc.spec.volume_name = "pv-hostpath";
  pvc.spec.storage_class_name = "";
  pvc.spec.volume_mode = model::VolumeMode::kFilesystem;
  pvc.status.phase = model::ClaimPhase::kBound;
  pvc.status.access_modes = {model::AccessMode::kReadWriteMany};
  pvc.status.capacity = Q("2Gi");
  pvc.status.conditions = {{"Resizing", "True", "", "", "2026-11-25T10:00:00Z"}};
  pvc.unknown_fields = {
      {"spec",
       {{"dataSource", {{"kind", "VolumeSnapshot"}}},
        {"selector", {{"matchExpressions", json::array({nullptr, {{"note", "kept"}}})}}},
        {"resources", {{"requests", {{"cpu", 1}}}}}}},
      {"status", {{"conditions", json::array({{{"lastProbeTime", nullptr}}})}}}};
  return pvc;
}

model::PersistentVolumeClaim MinimalClaim() {
  model::PersistentVolumeClaim pvc;
  pvc.metadata.name = "min";
  pvc.spec.selector = model::LabelSelector{};  // empty, but present: matches every volume
  return pvc;
}

std::vector<Object> Objects() {
  return {FullStorageClass(), model::StorageClass{}, FullPersistentVolume(),
          HostPathVolume(),   FullClaim(),           MinimalClaim()};
}

TEST(CodecTest, JsonRoundTripIsExactForEveryKind) {
  for (const Object& object : Objects()) {
    json encoded = ToJson(object);
    auto decoded = ObjectFromJson(encoded);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message() << "\n" << encoded.dump(2);
    EXPECT_EQ(*decoded, object);
    EXPECT_EQ(ToJson(*decoded), encoded);  // also the quantities' written form
    // And through text, as the store keeps it.
    auto reparsed = ObjectFromJson(json::parse(encoded.dump()));
    ASSERT_TRUE(reparsed.ok());
    EXPECT_EQ(ToJson(*reparsed), encoded);
  }
}

TEST(CodecTest, YamlRoundTripIsExactForEveryKind) {
  for (const Object& object : Objects()) {
    std::string text = ToYaml(object);
    ManifestSet set =
        ParseManifests(text, "round.yaml", {.set_defaults = false, .validate = false});
    ASSERT_TRUE(set.ok()) << set.status().message() << "\n" << text;
    ASSERT_EQ(set.objects.size(), 1u) << text;
    EXPECT_EQ(set.objects[0].object, object) << text;
    EXPECT_EQ(ToJson(set.objects[0].object), ToJson(object)) << text;
  }
}

TEST(CodecTest, TypedFromJsonKeepsEveryField) {
  auto pv = PersistentVolumeFromJson(ToJson(FullPersistentVolume()));
  ASSERT_TRUE(pv.ok()) << pv.status().message();
  EXPECT_EQ(pv->spec.capacity->value(), 1536LL << 20);
  EXPECT_EQ(pv->spec.claim_ref->uid, "0b1e");
  EXPECT_EQ(pv->status.reason, "VolumeFailedDelete");
  EXPECT_EQ(pv->unknown_fields["spec"]["nodeAffinity"]["required"]["a"], "b");

  auto pvc = PersistentVolumeClaimFromJson(ToJson(FullClaim()));
  ASSERT_TRUE(pvc.ok()) << pvc.status().message();
  ASSERT_TRUE(pvc->spec.storage_class_name.has_value());
  EXPECT_EQ(*pvc->spec.storage_class_name, "");
  EXPECT_EQ(pvc->spec.selector->match_expressions[1].op,
            model::LabelSelectorRequirement::Operator::kDoesNotExist);
  EXPECT_EQ(pvc->status.conditions[0].type, "Resizing");

  auto sc = StorageClassFromJson(ToJson(FullStorageClass()));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->allow_volume_expansion, std::optional<bool>(false));
}

TEST(CodecTest, WritesKubernetesShapes) {
  json pv = ToJson(HostPathVolume());
  EXPECT_EQ(pv["apiVersion"], "v1");
  EXPECT_EQ(pv["kind"], "PersistentVolume");
  EXPECT_EQ(pv["spec"]["capacity"]["storage"], "1e9");
  EXPECT_EQ(pv["spec"]["accessModes"], json::array({"ReadWriteOncePod"}));
  EXPECT_EQ(pv["spec"]["hostPath"], json({{"path", "/tmp/k8s-pv"}, {"type", ""}}));
  EXPECT_EQ(pv["status"], json({{"phase", "Available"}}));

  json pvc = ToJson(FullClaim());
  EXPECT_EQ(pvc["spec"]["resources"]["requests"]["storage"], "1500M");
  EXPECT_EQ(pvc["spec"]["resources"]["requests"]["cpu"], 1);  // unknown, merged back
  EXPECT_EQ(pvc["spec"]["selector"]["matchExpressions"][0]["operator"], "In");
  EXPECT_EQ(pvc["spec"]["selector"]["matchExpressions"][1]["note"], "kept");
  EXPECT_FALSE(pvc["spec"]["selector"]["matchExpressions"][1].contains("values"));
  EXPECT_EQ(pvc["status"]["conditions"][0]["lastProbeTime"], nullptr);
  EXPECT_EQ(pvc["status"]["capacity"]["storage"], "2Gi");

  json sc = ToJson(FullStorageClass());
  EXPECT_EQ(sc["apiVersion"], "storage.k8s.io/v1");
  EXPECT_EQ(sc["volumeBindingMode"], "WaitForFirstConsumer");
  EXPECT_EQ(sc["metadata"]["annotations"][model::kDefaultClassAnnotation], "true");
}

TEST(CodecTest, EventRoundTrip) {
  model::Event ev;
  ev.metadata.name = "data.17a3";
  ev.metadata.namespace_ = "default";
  ev.involved_object = {"PersistentVolumeClaim", "v1", "default", "data", "0b1e", "3"};
  ev.reason = "ProvisioningFailed";
  ev.message = "pool default has 1Gi free, 3Gi requested";
  ev.type = "Warning";
  ev.source_component = "persistentvolume-controller";
  ev.count = 4;
  ev.first_timestamp = "2026-11-25T10:00:00Z";
  ev.last_timestamp = "2026-11-25T10:05:00Z";
  json j = ToJson(ev);
  EXPECT_EQ(j["source"]["component"], "persistentvolume-controller");
  EXPECT_EQ(j["involvedObject"]["kind"], "PersistentVolumeClaim");
  auto back = EventFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, ev);
  EXPECT_EQ(ToJson(*back), j);
  EXPECT_EQ(back->count, 4);
}

struct BadJsonCase {
  const char* name;
  const char* json_text;
  const char* error;
};

class BadJsonTest : public ::testing::TestWithParam<BadJsonCase> {};

TEST_P(BadJsonTest, IsRefusedNamingTheField) {
  const auto& c = GetParam();
  auto result = ObjectFromJson(json::parse(c.json_text));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalid);
  EXPECT_NE(result.status().message().find(c.error), std::string::npos)
      << result.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadJsonTest,
    ::testing::Values(
        BadJsonCase{"NotAnObject", R"([1])", "Invalid type: expected map, got list"},
        BadJsonCase{"NoKind", R"({"apiVersion":"v1"})", "kind: Required value"},
        BadJsonCase{"UnknownKind", R"({"apiVersion":"v1","kind":"Pod"})",
                    "kind: Invalid value: \"Pod\": no matches for kind \"Pod\" in version \"v1\""},
        BadJsonCase{"WrongGroup", R"({"apiVersion":"v1","kind":"StorageClass"})",
                    "apiVersion: Invalid value: \"v1\": no matches for kind \"StorageClass\""},
        BadJsonCase{"NameIsNumber",
                    R"({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":5}})",
                    "metadata.name: Invalid type: expected string, got number 5"},
        BadJsonCase{"BadPhase",
                    R"({"apiVersion":"v1","kind":"PersistentVolume","status":{"phase":"Gone"}})",
                    "status.phase: Unsupported value: \"Gone\""},
        BadJsonCase{"BadQuantity",
                    R"({"apiVersion":"v1","kind":"PersistentVolumeClaim",
                        "spec":{"resources":{"requests":{"storage":"1GB"}}}})",
                    "spec.resources.requests.storage: Invalid value: \"1GB\": quantities must "
                    "match the regular expression"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CodecTest, KindOfAndResourceName) {
  EXPECT_EQ(KindOf(Object(model::StorageClass{})), "StorageClass");
  EXPECT_EQ(ResourceName(Object(FullStorageClass())), "storageclass.storage.k8s.io/local");
  EXPECT_EQ(ResourceName(Object(HostPathVolume())), "persistentvolume/pv-hostpath");
  EXPECT_EQ(ResourceName(Object(FullClaim())), "persistentvolumeclaim/data");
}

}  // namespace
}  // namespace claimfs::yaml
