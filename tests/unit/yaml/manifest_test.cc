#include "claimfs/yaml/manifest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "claimfs/yaml/validation.h"

namespace claimfs::yaml {
namespace {

namespace fs = std::filesystem;

const fs::path kSourceDir = CLAIMFS_SOURCE_DIR;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<fs::path> FilesIn(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    auto ext = entry.path().extension();
    if (ext == ".yaml" || ext == ".yml" || ext == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string AllErrors(const ManifestSet& set) {
  std::string out;
  for (const auto& e : set.errors) out += e.ToString() + "\n";
  return out;
}

// Every file of tests/testdata/bad names, in its first line (or a .expect sidecar for JSON),
// the error it must be refused with.
class BadManifestTest : public ::testing::TestWithParam<fs::path> {};

std::string Expectation(const fs::path& file) {
  fs::path sidecar = file;
  sidecar += ".expect";
  std::string line;
  if (fs::exists(sidecar)) {
    std::ifstream in(sidecar);
    std::getline(in, line);
    return line;
  }
  std::ifstream in(file);
  std::getline(in, line);
  const std::string prefix = "# expect: ";
  return line.rfind(prefix, 0) == 0 ? line.substr(prefix.size()) : "";
}

TEST_P(BadManifestTest, IsRefusedWithItsOwnError) {
  const fs::path& file = GetParam();
  std::string expect = Expectation(file);
  ASSERT_FALSE(expect.empty()) << file << " names no expected error";
  ManifestSet set = ParseManifests(ReadFile(file), file.filename().string());
  ASSERT_FALSE(set.ok()) << file;
  std::string errors = AllErrors(set);
  EXPECT_NE(errors.find(expect), std::string::npos) << "expected: " << expect << "\ngot:\n"
                                                    << errors;
  // Every error carries the file name and a position.
  for (const auto& e : set.errors) {
    EXPECT_EQ(e.file, file.filename().string());
    EXPECT_GE(e.line, 1);
    EXPECT_GE(e.column, 1);
  }
}

INSTANTIATE_TEST_SUITE_P(TestData, BadManifestTest,
                         ::testing::ValuesIn(FilesIn(kSourceDir / "tests/testdata/bad")),
                         [](const auto& info) {
                           std::string name = info.param.stem().string();
                           std::replace_if(
                               name.begin(), name.end(), [](char c) { return !std::isalnum(c); },
                               '_');
                           return name;
                         });

TEST(BadManifestCorpusTest, HasFortyFilesEachWithItsOwnError) {
  auto files = FilesIn(kSourceDir / "tests/testdata/bad");
  EXPECT_GE(files.size(), 40u);
  std::set<std::string> expectations;
  for (const auto& f : files) {
    EXPECT_TRUE(expectations.insert(Expectation(f)).second) << "same expectation again: " << f;
  }
}

class GoodManifestTest : public ::testing::TestWithParam<fs::path> {};

TEST_P(GoodManifestTest, ValidatesCleanly) {
  ManifestSet set = ParseManifests(ReadFile(GetParam()), GetParam().filename().string());
  EXPECT_TRUE(set.ok()) << AllErrors(set);
  EXPECT_FALSE(set.objects.empty());
}

std::vector<fs::path> GoodFiles() {
  auto files = FilesIn(kSourceDir / "config/examples");
  auto more = FilesIn(kSourceDir / "tests/testdata/good");
  files.insert(files.end(), more.begin(), more.end());
  return files;
}

INSTANTIATE_TEST_SUITE_P(ExamplesAndTestData, GoodManifestTest, ::testing::ValuesIn(GoodFiles()),
                         [](const auto& info) {
                           std::string name = info.param.parent_path().filename().string() + "_" +
                                              info.param.stem().string();
                           std::replace_if(
                               name.begin(), name.end(), [](char c) { return !std::isalnum(c); },
                               '_');
                           return name;
                         });

TEST(ExamplesTest, ArticleManifestsMeanWhatTheArticleSays) {
  ManifestSet pv =
      ParseManifests(ReadFile(kSourceDir / "config/examples/pv-hostpath.yaml"), "pv-hostpath.yaml");
  ASSERT_TRUE(pv.ok()) << AllErrors(pv);
  ASSERT_EQ(pv.objects.size(), 1u);
  const auto& v = std::get<model::PersistentVolume>(pv.objects[0].object);
  EXPECT_EQ(v.metadata.name, "pv-hostpath");
  EXPECT_EQ(v.spec.capacity->value(), 2LL << 30);
  EXPECT_EQ(v.spec.reclaim_policy, model::ReclaimPolicy::kDelete);
  EXPECT_EQ(v.spec.storage_class_name, "manual");
  EXPECT_EQ(v.spec.host_path->path, "/tmp/k8s-pv");
  EXPECT_TRUE(pv.warnings.empty());

  // The article's claim starts with kind before apiVersion.
  ManifestSet pvc = ParseManifests(ReadFile(kSourceDir / "config/examples/pvc-hostpath-label.yaml"),
                                   "pvc-hostpath-label.yaml");
  ASSERT_TRUE(pvc.ok()) << AllErrors(pvc);
  const auto& c = std::get<model::PersistentVolumeClaim>(pvc.objects[0].object);
  EXPECT_EQ(c.metadata.namespace_, "default");
  EXPECT_EQ(c.spec.request->value(), 1LL << 30);
  EXPECT_EQ(c.spec.selector->match_labels.at("location"), "local");

  ManifestSet sc = ParseManifests(ReadFile(kSourceDir / "config/examples/storageclass-local.yaml"),
                                  "storageclass-local.yaml");
  ASSERT_TRUE(sc.ok()) << AllErrors(sc);
  const auto& s = std::get<model::StorageClass>(sc.objects[0].object);
  EXPECT_EQ(s.provisioner, model::kProvisionerName);
  EXPECT_EQ(s.parameters.at("pool"), "default");
  EXPECT_EQ(s.allow_volume_expansion, std::optional<bool>(true));
  EXPECT_EQ(s.metadata.annotations.at(model::kDefaultClassAnnotation), "true");
}

TEST(DefaultsTest, AreThoseOfTheApiServer) {
  ManifestSet set = ParseManifests(R"(apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: plain}
provisioner: claimfs.io/local
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /srv/pv}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
)",
                                   "defaults.yaml");
  ASSERT_TRUE(set.ok()) << AllErrors(set);
  ASSERT_EQ(set.objects.size(), 3u);
  const auto& sc = std::get<model::StorageClass>(set.objects[0].object);
  EXPECT_EQ(sc.reclaim_policy, model::ReclaimPolicy::kDelete);
  EXPECT_EQ(sc.volume_binding_mode, model::VolumeBindingMode::kImmediate);
  EXPECT_FALSE(sc.allow_volume_expansion.has_value());
  const auto& pv = std::get<model::PersistentVolume>(set.objects[1].object);
  EXPECT_EQ(pv.spec.volume_mode, model::VolumeMode::kFilesystem);
  EXPECT_EQ(pv.spec.reclaim_policy, model::ReclaimPolicy::kRetain);
  EXPECT_EQ(pv.spec.host_path->type, std::optional<std::string>(""));
  EXPECT_EQ(pv.status.phase, model::VolumePhase::kPending);
  const auto& pvc = std::get<model::PersistentVolumeClaim>(set.objects[2].object);
  EXPECT_EQ(pvc.metadata.namespace_, "default");
  EXPECT_EQ(pvc.spec.volume_mode, model::VolumeMode::kFilesystem);
  EXPECT_FALSE(pvc.spec.storage_class_name.has_value());  // absent: the default class
  EXPECT_EQ(pvc.status.phase, model::ClaimPhase::kPending);
  EXPECT_EQ(set.objects[2].line, 14);

  ManifestSet raw = ParseManifests("apiVersion: v1\nkind: PersistentVolumeClaim\n", "raw.yaml",
                                   {.set_defaults = false, .validate = false});
  ASSERT_TRUE(raw.ok()) << AllErrors(raw);
  EXPECT_TRUE(
      std::get<model::PersistentVolumeClaim>(raw.objects[0].object).metadata.namespace_.empty());
}

TEST(ManifestTest, ReportsEveryErrorOfAFileWithItsPlace) {
  const char* text = R"(kind: PersistentVolumeClaim
apiVersion: v1
metadata:
  name: Bad_Name
spec:
  accessModes: [ReadWriteOnce, Sometimes]
  resources:
    requests:
      storage: 1GB
  volumeMode: Raw
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv
spec:
  capacity:
    storage: -2Gi
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Keep
  hostPath:
    path: /tmp/k8s-pv
)";
  ManifestSet set = ParseManifests(text, "pvc.yaml");
  std::vector<std::string> want = {
      "pvc.yaml:4:9: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain "
      "must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
      "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
      "pvc.yaml:6:32: spec.accessModes: Unsupported value: \"Sometimes\": supported values: "
      "\"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
      "pvc.yaml:9:16: spec.resources.requests.storage: Invalid value: \"1GB\": quantities must "
      "match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
      "pvc.yaml:10:15: spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", "
      "\"Filesystem\"",
      "pvc.yaml:18:14: spec.capacity[storage]: Invalid value: \"-2Gi\": must be greater than zero",
      "pvc.yaml:20:34: spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": "
      "supported values: \"Delete\", \"Recycle\", \"Retain\"",
  };
  std::vector<std::string> got;
  for (const auto& e : set.errors) got.push_back(e.ToString());
  EXPECT_EQ(got, want);
  EXPECT_TRUE(set.objects.empty());
  EXPECT_EQ(set.status().code(), StatusCode::kInvalid);
  EXPECT_NE(set.status().message().find("pvc.yaml:20:34"), std::string::npos);
}

TEST(ManifestTest, MissingFieldsPointAtTheirParent) {
  ManifestSet set = ParseManifests(R"(apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  resources:
    limits:
      storage: 1Gi
)",
                                   "pvc.yaml");
  std::vector<std::string> got;
  for (const auto& e : set.errors) got.push_back(e.ToString());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "pvc.yaml:5:1: spec.accessModes: Required value: at least 1 access mode is "
                     "required",
                     "pvc.yaml:6:3: spec.resources[storage]: Required value"}));
}

TEST(ManifestTest, GoodDocumentsOfAFileSurviveABadOne) {
  ManifestSet set = ParseManifests(R"(apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: a}
provisioner: claimfs.io/local
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: b}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: c}
provisioner: example.com/nfs
)",
                                   "classes.yaml");
  ASSERT_EQ(set.errors.size(), 1u);
  EXPECT_EQ(set.errors[0].ToString(), "classes.yaml:6:1: provisioner: Required value");
  ASSERT_EQ(set.objects.size(), 2u);
  EXPECT_EQ(MetadataOf(set.objects[0].object).name, "a");
  EXPECT_EQ(MetadataOf(set.objects[1].object).name, "c");
  EXPECT_EQ(set.objects[1].line, 10);
}

// What `claimctl get pvc -o yaml` (and kubectl's) prints for several objects goes back in.
TEST(ManifestTest, ListItemsAreTheObjectsWithTheirOwnPlaces) {
  ManifestSet set = ParseManifests(R"(apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
  - apiVersion: storage.k8s.io/v1
    kind: StorageClass
    metadata: {name: a}
    provisioner: claimfs.io/local
  - apiVersion: storage.k8s.io/v1
    kind: StorageClass
    metadata: {name: b}
  - apiVersion: storage.k8s.io/v1
    kind: StorageClass
    metadata: {name: c}
    provisioner: claimfs.io/local
---
{"apiVersion": "v1", "kind": "List", "items": []}
---
apiVersion: v1
kind: List
items: {}
)",
                                   "list.yaml");
  ASSERT_EQ(set.errors.size(), 2u);
  EXPECT_EQ(set.errors[0].ToString(), "list.yaml:10:5: provisioner: Required value");
  EXPECT_EQ(set.errors[1].ToString(), "list.yaml:22:8: items: Invalid value: must be a list");
  ASSERT_EQ(set.objects.size(), 2u);
  EXPECT_EQ(MetadataOf(set.objects[0].object).name, "a");
  EXPECT_EQ(set.objects[0].line, 6);
  EXPECT_EQ(MetadataOf(set.objects[1].object).name, "c");
}

TEST(ManifestTest, SyntaxErrorRefusesTheWholeFile) {
  ManifestSet set = ParseManifests(
      "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: a}\n"
      "provisioner: x.io/y\n---\nkind: [\n",
      "broken.yaml");
  ASSERT_EQ(set.errors.size(), 1u);
  EXPECT_EQ(set.errors[0].line, 7);
  EXPECT_NE(set.errors[0].message.find("invalid YAML"), std::string::npos);
  EXPECT_TRUE(set.objects.empty());
}

TEST(ManifestTest, UnknownFieldsAreKeptAndWarnedAbout) {
  const char* text = R"(apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  generateName: data-
spec:
  accessModes: [ReadWriteOnce]
  foo: bar
  resources:
    requests:
      storage: 1Gi
      cpu: 2
  selector:
    matchExpressions:
      - {key: a, operator: Exists, comment: why}
extra: 1
)";
  ManifestSet set = ParseManifests(text, "pvc.yaml");
  ASSERT_TRUE(set.ok()) << AllErrors(set);
  std::vector<std::string> got;
  for (const auto& w : set.warnings) got.push_back(w.ToString());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "pvc.yaml:5:3: unknown field \"metadata.generateName\"",
                     "pvc.yaml:8:3: unknown field \"spec.foo\"",
                     "pvc.yaml:12:7: unknown field \"spec.resources.requests.cpu\"",
                     "pvc.yaml:15:36: unknown field \"spec.selector.matchExpressions[0].comment\"",
                     "pvc.yaml:16:1: unknown field \"extra\""}));
  const auto& pvc = std::get<model::PersistentVolumeClaim>(set.objects[0].object);
  nlohmann::json j = ToJson(pvc);
  EXPECT_EQ(j["spec"]["foo"], "bar");
  EXPECT_EQ(j["extra"], 1);
  EXPECT_EQ(j["metadata"]["generateName"], "data-");
  EXPECT_EQ(j["spec"]["resources"]["requests"]["cpu"], 2);
  EXPECT_EQ(j["spec"]["selector"]["matchExpressions"][0]["comment"], "why");
  EXPECT_EQ(j["spec"]["resources"]["requests"]["storage"], "1Gi");
}

TEST(ManifestTest, JsonInputHasPositionsToo) {
  const char* text = R"({
  "apiVersion": "v1",
  "kind": "PersistentVolume",
  "metadata": {"name": "pv"},
  "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
           "hostPath": {"path": "/x"}, "volumeMode": "Raw"}
}
)";
  ManifestSet set = ParseManifests(text, "pv.json");
  ASSERT_EQ(set.errors.size(), 1u);
  EXPECT_EQ(set.errors[0].line, 6);
  EXPECT_EQ(set.errors[0].column, 54);
}

struct ScalarCase {
  const char* storage;  // as written after "storage: "
  const char* canonical;
};

class QuantityScalarTest : public ::testing::TestWithParam<ScalarCase> {};

TEST_P(QuantityScalarTest, KeepsTheWrittenForm) {
  std::string text = std::string(R"(apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: q}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: )") + GetParam().storage +
                     "\n";
  ManifestSet set = ParseManifests(text, "q.yaml");
  ASSERT_TRUE(set.ok()) << AllErrors(set);
  const auto& pvc = std::get<model::PersistentVolumeClaim>(set.objects[0].object);
  EXPECT_EQ(pvc.spec.request->ToString(), GetParam().canonical);
}

INSTANTIATE_TEST_SUITE_P(Table, QuantityScalarTest,
                         ::testing::Values(ScalarCase{"1Gi", "1Gi"}, ScalarCase{"\"1Gi\"", "1Gi"},
                                           ScalarCase{"1e9", "1e9"}, ScalarCase{"1.5Gi", "1536Mi"},
                                           ScalarCase{"1073741824", "1073741824"},
                                           ScalarCase{"2G", "2G"}, ScalarCase{"500Mi", "500Mi"},
                                           ScalarCase{"0.5", "1"}));

class BadQuantityScalarTest : public ::testing::TestWithParam<const char*> {};

// Hostile quantities in a manifest: each refused at its line and column, naming the field.
TEST_P(BadQuantityScalarTest, IsRefusedNamingTheField) {
  std::string text = std::string(R"(apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: q}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: )") + GetParam() +
                     "\n";
  ManifestSet set = ParseManifests(text, "q.yaml");
  ASSERT_FALSE(set.ok()) << GetParam();
  std::string errors = AllErrors(set);
  EXPECT_NE(errors.find("q.yaml:8:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("spec.resources"), std::string::npos) << errors;
}

INSTANTIATE_TEST_SUITE_P(Table, BadQuantityScalarTest,
                         ::testing::Values("1e999999", "-1e999999", "\"1e999999\"", ".inf", "-.inf",
                                           ".nan", "Infinity", "NaN", "-0", "0",
                                           "99999999999999999999", "\"1Gi \"", "\" 1Gi\"",
                                           "1.5.5Gi", "\"\\0\"", "9223372036854775808", "-1",
                                           "-1Gi", "\".\"", "\"+\"", "1e", "0x10", "0o17", "1Ki1",
                                           "8Ei", "[1Gi]", "{a: 1}", "true", "1_000"));

TEST(ManifestTest, Yaml12ScalarsAndQuotedStrings) {
  // "yes" is a string in YAML 1.2; a quoted number is a string; true is a boolean.
  ManifestSet set = ParseManifests(R"(apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: s
  labels: {answer: "42", mood: yes}
provisioner: claimfs.io/local
allowVolumeExpansion: True
parameters: {pool: "007"}
)",
                                   "sc.yaml");
  ASSERT_TRUE(set.ok()) << AllErrors(set);
  const auto& sc = std::get<model::StorageClass>(set.objects[0].object);
  EXPECT_EQ(sc.metadata.labels.at("answer"), "42");
  EXPECT_EQ(sc.metadata.labels.at("mood"), "yes");
  EXPECT_EQ(sc.allow_volume_expansion, std::optional<bool>(true));
  EXPECT_EQ(sc.parameters.at("pool"), "007");
  // ToYaml quotes what YAML would otherwise read as a number or a boolean.
  std::string out = ToYaml(set.objects[0].object);
  EXPECT_NE(out.find("answer: \"42\""), std::string::npos) << out;
  EXPECT_NE(out.find("mood: \"yes\""), std::string::npos) << out;
  EXPECT_NE(out.find("pool: \"007\""), std::string::npos) << out;
  EXPECT_NE(out.find("allowVolumeExpansion: true"), std::string::npos) << out;
}

TEST(ManifestTest, EmptyInputHasNoObjectsAndNoErrors) {
  for (const char* text : {"", "\n", "# only a comment\n", "---\n---\n", "~\n"}) {
    ManifestSet set = ParseManifests(text, "empty.yaml");
    EXPECT_TRUE(set.ok()) << text << AllErrors(set);
    EXPECT_TRUE(set.objects.empty()) << text;
  }
}

}  // namespace
}  // namespace claimfs::yaml

namespace claimfs::yaml {
namespace {

// yaml-cpp 0.7's LoadAll never returned on a stray ',' (yaml-cpp issue #1040); found by
// tests/fuzz/manifest_fuzzer. It must be a located syntax error.
TEST(ManifestRegressionTest, StrayCommaDoesNotHangTheParser) {
  for (const char* text : {",", "a: b\n---\n,\n",
                           "{\n  \"apiVersiimits\": {\"storage\": \"2G\"}},\n  =  \"v\"\n}\n"}) {
    ManifestSet set = ParseManifests(text, "comma.yaml");
    ASSERT_EQ(set.errors.size(), 1u) << text;
    EXPECT_NE(set.errors[0].message.find("invalid YAML"), std::string::npos) << text;
    EXPECT_TRUE(set.objects.empty());
  }
}

}  // namespace
}  // namespace claimfs::yaml
