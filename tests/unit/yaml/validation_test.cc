#include "claimfs/yaml/validation.h"

#include <gtest/gtest.h>

#include <functional>

#include "claimfs/yaml/defaults.h"

namespace claimfs::yaml {
namespace {

using namespace std::string_literals;

model::Quantity Q(const char* text) { return model::Quantity::Parse(text).value(); }

model::PersistentVolumeClaim Claim() {
  model::PersistentVolumeClaim pvc;
  pvc.metadata.name = "data";
  pvc.spec.access_modes = {model::AccessMode::kReadWriteOnce};
  pvc.spec.request = Q("1Gi");
  pvc.spec.storage_class_name = "local";
  SetDefaults(&pvc);
  return pvc;
}

model::PersistentVolume Volume() {
  model::PersistentVolume pv;
  pv.metadata.name = "pv-hostpath";
  pv.spec.capacity = Q("2Gi");
  pv.spec.access_modes = {model::AccessMode::kReadWriteOnce};
  pv.spec.host_path = model::HostPathVolumeSource{"/tmp/k8s-pv", std::nullopt};
  SetDefaults(&pv);
  return pv;
}

model::StorageClass Class(bool expandable = true) {
  model::StorageClass sc;
  sc.metadata.name = "local";
  sc.provisioner = model::kProvisionerName;
  sc.parameters["pool"] = "default";
  sc.allow_volume_expansion = expandable;
  SetDefaults(&sc);
  return sc;
}

std::vector<std::string> Strings(const ErrorList& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.ToString());
  return out;
}

TEST(ValidationTest, ValidObjectsHaveNoErrors) {
  EXPECT_TRUE(ValidatePersistentVolumeClaim(Claim()).empty());
  EXPECT_TRUE(ValidatePersistentVolume(Volume()).empty());
  EXPECT_TRUE(ValidateStorageClass(Class()).empty());
}

// A mutation of a valid object and the one error it must give, exactly.
template <typename T>
struct RuleCase {
  const char* name;
  std::function<void(T*)> mutate;
  const char* error;
};

using ClaimRule = RuleCase<model::PersistentVolumeClaim>;
using VolumeRule = RuleCase<model::PersistentVolume>;
using ClassRule = RuleCase<model::StorageClass>;

class ClaimRuleTest : public ::testing::TestWithParam<ClaimRule> {};
class VolumeRuleTest : public ::testing::TestWithParam<VolumeRule> {};
class ClassRuleTest : public ::testing::TestWithParam<ClassRule> {};

TEST_P(ClaimRuleTest, GivesKubernetesError) {
  auto pvc = Claim();
  GetParam().mutate(&pvc);
  EXPECT_EQ(Strings(ValidatePersistentVolumeClaim(pvc)),
            std::vector<std::string>{GetParam().error});
}

TEST_P(VolumeRuleTest, GivesKubernetesError) {
  auto pv = Volume();
  GetParam().mutate(&pv);
  EXPECT_EQ(Strings(ValidatePersistentVolume(pv)), std::vector<std::string>{GetParam().error});
}

TEST(VolumePathTest, PathErrorsComeBeforeEveryOtherError) {
  auto pv = Volume();
  pv.spec.host_path->path = "/tmp/\0"s;
  pv.spec.access_modes.clear();
  EXPECT_EQ(Strings(ValidatePersistentVolume(pv)),
            (std::vector<std::string>{
                "spec.hostPath.path: Invalid value: \"/tmp/\\x00\": must not contain NUL (byte 5)",
                "spec.accessModes: Required value"}));
}

TEST(VolumePathTest, LongComponentIsRefused) {
  auto pv = Volume();
  pv.spec.host_path->path = "/tmp/" + std::string(256, 'n');
  auto errors = Strings(ValidatePersistentVolume(pv));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("must not have a component longer than 255 bytes (NAME_MAX)"),
            std::string::npos)
      << errors[0];
}

// Names and namespaces become directories (mount root/namespace/name): no byte the kernel would
// stop at or treat specially gets through the DNS-1123 checks.
TEST(NameValidationTest, RefusesNulControlAndNonUtf8Bytes) {
  for (const std::string& bad : {"data\0"s, "data\0/../x"s, "\0"s, "da\tta"s, "data\n"s,
                                 "d\xc3\xa9"s, "data\xff"s, "data/x"s, "."s, ".."s}) {
    EXPECT_FALSE(IsDNS1123Label(bad).empty()) << ::testing::PrintToString(bad);
    EXPECT_FALSE(IsDNS1123Subdomain(bad).empty()) << ::testing::PrintToString(bad);
  }
  auto pvc = Claim();
  pvc.metadata.name = "data\0"s;
  pvc.metadata.namespace_ = "default\0"s;
  auto errors = Strings(ValidatePersistentVolumeClaim(pvc));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].rfind("metadata.name: Invalid value: \"data\\x00\"", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1].rfind("metadata.namespace: Invalid value: \"default\\x00\"", 0), 0u)
      << errors[1];
}

TEST(QuoteTest, EscapesBytesThatAreNotUtf8AsGoDoes) {
  EXPECT_EQ(Quote("/tmp/\0\xff\xc3\xa9"s), "\"/tmp/\\x00\\xff\xc3\xa9\"");
}

TEST_P(ClassRuleTest, GivesKubernetesError) {
  auto sc = Class();
  GetParam().mutate(&sc);
  EXPECT_EQ(Strings(ValidateStorageClass(sc)), std::vector<std::string>{GetParam().error});
}

template <typename T>
std::string RuleName(const ::testing::TestParamInfo<T>& info) {
  return info.param.name;
}

using Pvc = model::PersistentVolumeClaim;
using Pv = model::PersistentVolume;
using Sc = model::StorageClass;
using Op = model::LabelSelectorRequirement::Operator;

INSTANTIATE_TEST_SUITE_P(
    Rules, ClaimRuleTest,
    ::testing::Values(
        ClaimRule{"NoName", [](Pvc* c) { c->metadata.name.clear(); },
                  "metadata.name: Required value: name or generateName is required"},
        ClaimRule{"NoNamespace", [](Pvc* c) { c->metadata.namespace_.clear(); },
                  "metadata.namespace: Required value"},
        ClaimRule{"NegativeGeneration", [](Pvc* c) { c->metadata.generation = -1; },
                  "metadata.generation: Invalid value: -1: must be greater than or equal to 0"},
        ClaimRule{"NoAccessModes", [](Pvc* c) { c->spec.access_modes.clear(); },
                  "spec.accessModes: Required value: at least 1 access mode is required"},
        ClaimRule{
            "OncePodWithOthers",
            [](Pvc* c) { c->spec.access_modes.push_back(model::AccessMode::kReadWriteOncePod); },
            "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access "
            "modes"},
        ClaimRule{"NoRequest", [](Pvc* c) { c->spec.request.reset(); },
                  "spec.resources[storage]: Required value"},
        ClaimRule{"ZeroRequest", [](Pvc* c) { c->spec.request = Q("0"); },
                  "spec.resources[storage]: Invalid value: \"0\": must be greater than zero"},
        ClaimRule{"BadClassName", [](Pvc* c) { c->spec.storage_class_name = "Fast"; },
                  "spec.storageClassName: Invalid value: \"Fast\": a lowercase RFC 1123 subdomain "
                  "must consist of lower case alphanumeric characters, '-' or '.', and must start "
                  "and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
                  "*')"},
        ClaimRule{"InWithoutValues",
                  [](Pvc* c) {
                    c->spec.selector = model::LabelSelector{{}, {{"stage", Op::kNotIn, {}}}};
                  },
                  "spec.selector.matchExpressions[0].values: Required value: must be specified "
                  "when `operator` is 'In' or 'NotIn'"},
        ClaimRule{
            "DoesNotExistWithValues",
            [](Pvc* c) {
              c->spec.selector = model::LabelSelector{{}, {{"stage", Op::kDoesNotExist, {"x"}}}};
            },
            "spec.selector.matchExpressions[0].values: Forbidden: may not be specified when "
            "`operator` is 'Exists' or 'DoesNotExist'"},
        ClaimRule{"EmptySelectorKey",
                  [](Pvc* c) {
                    c->spec.selector = model::LabelSelector{{}, {{"", Op::kExists, {}}}};
                  },
                  "spec.selector.matchExpressions[0].key: Invalid value: \"\": name part must be "
                  "non-empty"},
        ClaimRule{"MatchLabelsValue",
                  [](Pvc* c) {
                    c->spec.selector = model::LabelSelector{{{"a", "b c"}}, {}};
                  },
                  "spec.selector.matchLabels: Invalid value: \"b c\": a valid label must be an "
                  "empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
                  "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
                  "or '12345', regex used for validation is "
                  "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"},
        ClaimRule{"EmptyPrefixLabel", [](Pvc* c) { c->metadata.labels["/x"] = "y"; },
                  "metadata.labels: Invalid value: \"/x\": prefix part must be non-empty"},
        ClaimRule{"AnnotationsTooLarge",
                  [](Pvc* c) { c->metadata.annotations["a"] = std::string(256 * 1024, 'x'); },
                  "metadata.annotations: Too long: must have at most 262144 bytes"}),
    RuleName<ClaimRule>);

INSTANTIATE_TEST_SUITE_P(
    Rules, VolumeRuleTest,
    ::testing::Values(
        VolumeRule{"Namespaced", [](Pv* v) { v->metadata.namespace_ = "default"; },
                   "metadata.namespace: Forbidden: not allowed on this type"},
        VolumeRule{"NoAccessModes", [](Pv* v) { v->spec.access_modes.clear(); },
                   "spec.accessModes: Required value"},
        VolumeRule{"NoCapacity", [](Pv* v) { v->spec.capacity.reset(); },
                   "spec.capacity: Required value"},
        VolumeRule{"NegativeCapacity", [](Pv* v) { v->spec.capacity = Q("-1"); },
                   "spec.capacity[storage]: Invalid value: \"-1\": must be greater than zero"},
        VolumeRule{"NoSource", [](Pv* v) { v->spec.host_path.reset(); },
                   "spec: Required value: must specify a volume type"},
        VolumeRule{"TwoSources", [](Pv* v) { v->spec.local = model::LocalVolumeSource{"/mnt/a"}; },
                   "spec.local: Forbidden: may not specify more than 1 volume type"},
        VolumeRule{"EmptyHostPath", [](Pv* v) { v->spec.host_path->path.clear(); },
                   "spec.hostPath.path: Required value"},
        VolumeRule{"HostPathType", [](Pv* v) { v->spec.host_path->type = "Folder"; },
                   "spec.hostPath.type: Unsupported value: \"Folder\": supported values: \"\", "
                   "\"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", "
                   "\"File\", \"FileOrCreate\", \"Socket\""},
        VolumeRule{"HostPathBacksteps", [](Pv* v) { v->spec.host_path->path = "/a/.."; },
                   "spec.hostPath.path: Invalid value: \"/a/..\": must not contain '..'"},
        // The byte check runs first, on each path field, and echoes the bad byte escaped.
        VolumeRule{"NulByteInHostPathIsRefused",
                   [](Pv* v) { v->spec.host_path->path = "/var/lib/claimfs/pools/default\0"s; },
                   "spec.hostPath.path: Invalid value: \"/var/lib/claimfs/pools/default\\x00\": "
                   "must not contain NUL (byte 30)"},
        VolumeRule{"NulByteInTheMiddleOfHostPath",
                   [](Pv* v) { v->spec.host_path->path = "/var/lib/claimfs/state\0x"s; },
                   "spec.hostPath.path: Invalid value: \"/var/lib/claimfs/state\\x00x\": must "
                   "not contain NUL (byte 22)"},
        VolumeRule{"NulByteInLocalPath",
                   [](Pv* v) {
                     v->spec.host_path.reset();
                     v->spec.local = model::LocalVolumeSource{"/tmp/\0x"s};
                   },
                   "spec.local.path: Invalid value: \"/tmp/\\x00x\": must not contain NUL (byte 5)"},
        VolumeRule{"TabInHostPath", [](Pv* v) { v->spec.host_path->path = "/tmp/a\tb"; },
                   "spec.hostPath.path: Invalid value: \"/tmp/a\\tb\": must not contain the "
                   "control character 0x09 (byte 6)"},
        VolumeRule{"NewlineInLocalPath",
                   [](Pv* v) {
                     v->spec.host_path.reset();
                     v->spec.local = model::LocalVolumeSource{"/tmp/a\n"};
                   },
                   "spec.local.path: Invalid value: \"/tmp/a\\n\": must not contain the control "
                   "character 0x0a (byte 6)"},
        VolumeRule{"NonUtf8HostPath", [](Pv* v) { v->spec.host_path->path = "/tmp/\xff"; },
                   "spec.hostPath.path: Invalid value: \"/tmp/\\xff\": must be valid UTF-8: 0xff "
                   "does not start a character (byte 5)"},
        VolumeRule{"RelativeHostPath", [](Pv* v) { v->spec.host_path->path = "tmp/k8s-pv"; },
                   "spec.hostPath.path: Invalid value: \"tmp/k8s-pv\": must be an absolute path"},
        VolumeRule{"TildeHostPath", [](Pv* v) { v->spec.host_path->path = "~/k8s-pv"; },
                   "spec.hostPath.path: Invalid value: \"~/k8s-pv\": must be an absolute path"},
        VolumeRule{"LocalBacksteps",
                   [](Pv* v) {
                     v->spec.host_path.reset();
                     v->spec.local = model::LocalVolumeSource{"/tmp/./k8s/../.."};
                   },
                   "spec.local.path: Invalid value: \"/tmp/./k8s/../..\": must not contain '..'"},
        VolumeRule{"RecycleRoot",
                   [](Pv* v) {
                     v->spec.host_path->path = "//./";
                     v->spec.reclaim_policy = model::ReclaimPolicy::kRecycle;
                   },
                   "spec.persistentVolumeReclaimPolicy: Forbidden: may not be 'recycle' for a "
                   "hostPath mount of '/'"},
        VolumeRule{"LocalRelative",
                   [](Pv* v) {
                     v->spec.host_path.reset();
                     v->spec.local = model::LocalVolumeSource{"disk"};
                   },
                   "spec.local.path: Invalid value: \"disk\": must be an absolute path"},
        VolumeRule{
            "ClaimRefWithoutNamespace",
            [](Pv* v) { v->spec.claim_ref = model::ObjectReference{"", "", "", "data", "", ""}; },
            "spec.claimRef.namespace: Required value"},
        VolumeRule{"FinalizerUnqualified", [](Pv* v) { v->metadata.finalizers = {"mine"}; },
                   "metadata.finalizers: Invalid value: \"mine\": name is neither a standard "
                   "finalizer name nor is it fully qualified"}),
    RuleName<VolumeRule>);

INSTANTIATE_TEST_SUITE_P(
    Rules, ClassRuleTest,
    ::testing::Values(
        ClassRule{"NoProvisioner", [](Sc* s) { s->provisioner.clear(); },
                  "provisioner: Required value"},
        ClassRule{"Recycle", [](Sc* s) { s->reclaim_policy = model::ReclaimPolicy::kRecycle; },
                  "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", "
                  "\"Retain\""},
        ClassRule{"NoBindingMode", [](Sc* s) { s->volume_binding_mode.reset(); },
                  "volumeBindingMode: Required value"},
        ClassRule{"EmptyParameterKey", [](Sc* s) { s->parameters[""] = "x"; },
                  "parameters: Invalid value: \"\": field can not be empty."},
        ClassRule{"TooManyParameters",
                  [](Sc* s) {
                    for (int i = 0; i < 512; ++i) s->parameters["p" + std::to_string(i)] = "v";
                  },
                  "parameters: Too many: 513: must have at most 512 items"}),
    RuleName<ClassRule>);

TEST(NameValidationTest, MatchesApimachinery) {
  EXPECT_TRUE(IsDNS1123Subdomain("pv-hostpath.example").empty());
  EXPECT_FALSE(IsDNS1123Subdomain("a..b").empty());
  EXPECT_FALSE(IsDNS1123Subdomain("-a").empty());
  EXPECT_FALSE(IsDNS1123Subdomain("").empty());
  EXPECT_EQ(IsDNS1123Subdomain(std::string(254, 'a')).size(), 1u);
  EXPECT_TRUE(IsDNS1123Label("team-a").empty());
  EXPECT_FALSE(IsDNS1123Label("team.a").empty());
  EXPECT_TRUE(IsQualifiedName("storageclass.kubernetes.io/is-default-class").empty());
  EXPECT_TRUE(IsQualifiedName("My_Name.1").empty());
  EXPECT_EQ(IsQualifiedName("a/").size(), 1u);
  EXPECT_EQ(IsQualifiedName(std::string(64, 'a')),
            std::vector<std::string>{"name part must be no more than 63 characters"});
  EXPECT_TRUE(IsValidLabelValue("").empty());
  EXPECT_FALSE(IsValidLabelValue("a b").empty());
}

// --- updates -------------------------------------------------------------------------------

StorageClassLookup Classes(const std::vector<model::StorageClass>* classes) {
  return [classes](const std::string& name) -> const model::StorageClass* {
    for (const auto& sc : *classes) {
      if (sc.metadata.name == name) return &sc;
    }
    return nullptr;
  };
}

model::PersistentVolumeClaim BoundClaim() {
  auto pvc = Claim();
  pvc.spec.volume_name = "pvc-0b1e";
  pvc.status.phase = model::ClaimPhase::kBound;
  pvc.status.capacity = Q("1Gi");
  return pvc;
}

TEST(ClaimUpdateTest, BoundClaimMayGrowWhenItsClassAllows) {
  std::vector<model::StorageClass> classes = {Class(true)};
  auto old_pvc = BoundClaim();
  auto new_pvc = old_pvc;
  new_pvc.spec.request = Q("2Gi");
  EXPECT_TRUE(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes)).empty());
}

TEST(ClaimUpdateTest, GrowingIsRefusedWhenTheClassDoesNotAllowIt) {
  for (auto classes :
       {std::vector<model::StorageClass>{Class(false)}, std::vector<model::StorageClass>{}}) {
    auto old_pvc = BoundClaim();
    auto new_pvc = old_pvc;
    new_pvc.spec.request = Q("2Gi");
    EXPECT_EQ(Strings(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes))),
              std::vector<std::string>{
                  "spec.resources.requests.storage: Forbidden: only dynamically provisioned pvc "
                  "can be resized and the storageclass that provisions the pvc must support "
                  "resize"});
  }
}

TEST(ClaimUpdateTest, ShrinkingIsRefused) {
  std::vector<model::StorageClass> classes = {Class(true)};
  auto old_pvc = BoundClaim();
  old_pvc.spec.request = Q("2Gi");
  auto new_pvc = old_pvc;
  new_pvc.spec.request = Q("1Gi");
  EXPECT_EQ(Strings(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes))),
            std::vector<std::string>{
                "spec.resources.requests.storage: Forbidden: field can not be less than previous "
                "value"});
}

TEST(ClaimUpdateTest, OtherSpecChangesAreRefused) {
  std::vector<model::StorageClass> classes = {Class(true)};
  const std::string immutable =
      "spec: Forbidden: spec is immutable after creation except resources.requests and "
      "volumeAttributesClassName for bound claims";
  std::vector<std::function<void(Pvc*)>> changes = {
      [](Pvc* c) { c->spec.access_modes = {model::AccessMode::kReadWriteMany}; },
      [](Pvc* c) { c->spec.storage_class_name = "other"; },
      [](Pvc* c) { c->spec.volume_name = "elsewhere"; },
      [](Pvc* c) { c->spec.selector = model::LabelSelector{}; },
      [](Pvc* c) { c->spec.limit = Q("5Gi"); },
      [](Pvc* c) {
        c->unknown_fields["spec"]["dataSource"] = {{"kind", "VolumeSnapshot"}};
      },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    auto old_pvc = BoundClaim();
    auto new_pvc = old_pvc;
    changes[i](&new_pvc);
    EXPECT_EQ(Strings(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes))),
              std::vector<std::string>{immutable})
        << "change " << i;
  }
  // volumeMode also reports the field itself, as Kubernetes does.
  auto old_pvc = BoundClaim();
  auto new_pvc = old_pvc;
  new_pvc.spec.volume_mode = model::VolumeMode::kBlock;
  EXPECT_EQ(Strings(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes))),
            (std::vector<std::string>{immutable,
                                      "volumeMode: Invalid value: \"Block\": field is immutable"}));
}

TEST(ClaimUpdateTest, PendingClaimCannotChangeItsRequest) {
  std::vector<model::StorageClass> classes = {Class(true)};
  auto old_pvc = Claim();
  auto new_pvc = old_pvc;
  new_pvc.spec.request = Q("2Gi");
  auto errors = Strings(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes)));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("spec: Forbidden: spec is immutable", 0), 0u);
}

TEST(ClaimUpdateTest, ControllerMaySetVolumeNameOnceAndFillTheDefaultClass) {
  std::vector<model::StorageClass> classes;
  auto old_pvc = Claim();
  old_pvc.spec.storage_class_name.reset();
  auto new_pvc = old_pvc;
  new_pvc.spec.volume_name = "pvc-0b1e";
  new_pvc.spec.storage_class_name = "local";
  new_pvc.status.phase = model::ClaimPhase::kBound;
  EXPECT_TRUE(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes)).empty());
}

TEST(ClaimUpdateTest, NameAndNamespaceAreImmutable) {
  std::vector<model::StorageClass> classes;
  auto old_pvc = Claim();
  auto new_pvc = old_pvc;
  new_pvc.metadata.name = "renamed";
  new_pvc.metadata.namespace_ = "other";
  EXPECT_EQ(Strings(ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, Classes(&classes))),
            (std::vector<std::string>{
                "metadata.name: Invalid value: \"renamed\": field is immutable",
                "metadata.namespace: Invalid value: \"other\": field is immutable"}));
}

TEST(VolumeUpdateTest, SourceAndModeAreImmutableTheRestMayChange) {
  auto old_pv = Volume();
  auto new_pv = old_pv;
  new_pv.spec.capacity = Q("3Gi");
  new_pv.spec.reclaim_policy = model::ReclaimPolicy::kDelete;
  new_pv.spec.claim_ref.reset();
  new_pv.metadata.labels["x"] = "y";
  EXPECT_TRUE(ValidatePersistentVolumeUpdate(old_pv, new_pv).empty());

  new_pv.spec.host_path->path = "/elsewhere";
  new_pv.spec.volume_mode = model::VolumeMode::kBlock;
  EXPECT_EQ(Strings(ValidatePersistentVolumeUpdate(old_pv, new_pv)),
            (std::vector<std::string>{
                "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is "
                "immutable after creation",
                "volumeMode: Invalid value: \"Block\": field is immutable"}));
}

// A bound PV shrunk by `apply` would take the quota under its claim's data: refused, while a
// raise is accepted (the controller applies it to the mount and the claim).
TEST(VolumeUpdateTest, BoundVolumeCapacityLoweredWasAccepted) {
  auto old_pv = Volume();
  old_pv.status.phase = model::VolumePhase::kBound;
  auto new_pv = old_pv;
  new_pv.spec.capacity = Q("3Gi");
  EXPECT_TRUE(ValidatePersistentVolumeUpdate(old_pv, new_pv).empty());
  new_pv.spec.capacity = Q("1Gi");
  EXPECT_EQ(Strings(ValidatePersistentVolumeUpdate(old_pv, new_pv)),
            (std::vector<std::string>{"spec.capacity.storage: Forbidden: field can not be less "
                                      "than previous value while the volume is bound"}));
  old_pv.status.phase = model::VolumePhase::kAvailable;
  EXPECT_TRUE(ValidatePersistentVolumeUpdate(old_pv, new_pv).empty());
}

TEST(ClassUpdateTest, OnlyExpansionAndMountOptionsMayChange) {
  auto old_sc = Class(false);
  auto new_sc = old_sc;
  new_sc.allow_volume_expansion = true;
  new_sc.mount_options = {"noatime"};
  new_sc.metadata.annotations[model::kDefaultClassAnnotation] = "true";
  EXPECT_TRUE(ValidateStorageClassUpdate(old_sc, new_sc).empty());

  new_sc.parameters["pool"] = "other";
  new_sc.provisioner = "example.com/nfs";
  new_sc.reclaim_policy = model::ReclaimPolicy::kRetain;
  new_sc.volume_binding_mode = model::VolumeBindingMode::kWaitForFirstConsumer;
  EXPECT_EQ(Strings(ValidateStorageClassUpdate(old_sc, new_sc)),
            (std::vector<std::string>{
                "parameters: Forbidden: updates to parameters are forbidden.",
                "provisioner: Forbidden: updates to provisioner are forbidden.",
                "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
                "volumeBindingMode: Invalid value: \"WaitForFirstConsumer\": field is immutable"}));
}

TEST(InvalidStatusTest, ReadsLikeTheApiServer) {
  auto pvc = Claim();
  pvc.spec.access_modes.clear();
  Status one = InvalidStatus("PersistentVolumeClaim", "data", ValidatePersistentVolumeClaim(pvc));
  EXPECT_EQ(one.code(), StatusCode::kInvalid);
  EXPECT_EQ(one.message(),
            "PersistentVolumeClaim \"data\" is invalid: spec.accessModes: Required value: at "
            "least 1 access mode is required");
  pvc.spec.request.reset();
  Status two = InvalidStatus("PersistentVolumeClaim", "data", ValidatePersistentVolumeClaim(pvc));
  EXPECT_EQ(two.message(),
            "PersistentVolumeClaim \"data\" is invalid: [spec.accessModes: Required value: at "
            "least 1 access mode is required, spec.resources[storage]: Required value]");
  EXPECT_TRUE(InvalidStatus("PersistentVolumeClaim", "data", {}).ok());
}

TEST(FieldPathTest, PrintsKubernetesPathsAndJsonPointers) {
  FieldPath p = FieldPath().Child("metadata").Child("annotations").Key("a/b~c");
  EXPECT_EQ(p.ToString(), "metadata.annotations[a/b~c]");
  EXPECT_EQ(p.Pointer(), "/metadata/annotations/a~1b~0c");
  EXPECT_EQ(FieldPath().Child("spec").Child("accessModes").Index(2).ToString(),
            "spec.accessModes[2]");
  EXPECT_EQ(Quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\x01\"");
}

}  // namespace
}  // namespace claimfs::yaml
