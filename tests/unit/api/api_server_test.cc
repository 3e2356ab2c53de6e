// The API server end to end: a real socket, a real StateStore in a temporary directory, and a
// fake daemon that records what reaches it.
#include "claimfs/api/api_server.h"

#include <sys/stat.h>

#include <atomic>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "claimfs/api/status_object.h"
#include "unit/api/test_http.h"

namespace claimfs::api {
namespace {

using nlohmann::json;
using testing::Request;
using testing::Response;
using testing::TempDir;

class FakeHooks : public DaemonHooks {
 public:
  void ObjectsChanged() override { ++objects_changed; }

  Result<Lease> AcquireLease(const std::string& claim_key, const std::string& holder,
                             int pid) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back("acquire " + claim_key + " " + holder + " " + std::to_string(pid));
    if (!acquire_status.ok()) return acquire_status;
    Lease lease{"lease-" + std::to_string(++next_id), claim_key, holder, pid,
                "2026-11-25T10:00:00Z"};
    leases.push_back(lease);
    return lease;
  }

  Status ReleaseLease(const std::string& claim_key, const std::string& lease_id) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back("release " + claim_key + " " + lease_id);
    for (auto it = leases.begin(); it != leases.end(); ++it) {
      if (it->claim == claim_key && it->id == lease_id) {
        leases.erase(it);
        return Status::Ok();
      }
    }
    return Status::NotFound("lease " + lease_id + " of " + claim_key + " not found");
  }

  std::vector<Lease> ListLeases(const std::string& claim_key) override {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<Lease> out;
    for (const Lease& lease : leases) {
      if (claim_key.empty() || lease.claim == claim_key) out.push_back(lease);
    }
    return out;
  }

  std::vector<VolumeStats> Stats() override {
    std::lock_guard<std::mutex> lock(mu);
    return stats;
  }
  std::string DaemonMetrics() override {
    std::lock_guard<std::mutex> lock(mu);
    return daemon_metrics;
  }
  Status Health() override {
    std::lock_guard<std::mutex> lock(mu);
    return health;
  }
  // The daemon's rule, with /tmp as the only root (no symlink check: no disk here).
  Status CheckVolumeSource(const std::string& path) override {
    if (path.rfind("/tmp/", 0) == 0) return Status::Ok();
    return Status::Forbidden("volume source " + path +
                             " is not below an allowed hostPath prefix or a pool (/tmp)");
  }

  std::atomic<int> objects_changed{0};
  std::mutex mu;
  std::vector<std::string> calls;
  std::vector<Lease> leases;
  Status acquire_status;
  std::vector<VolumeStats> stats;
  std::string daemon_metrics;
  Status health;
  int next_id = 0;
};

const char kStorageClass[] = R"({"apiVersion":"storage.k8s.io/v1","kind":"StorageClass",
  "metadata":{"name":"local"},"provisioner":"claimfs.io/local","allowVolumeExpansion":true})";

const char kVolume[] = R"({"apiVersion":"v1","kind":"PersistentVolume",
  "metadata":{"name":"pv-hostpath","labels":{"type":"local"}},
  "spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],
          "storageClassName":"manual","hostPath":{"path":"/tmp/pv-hostpath"}},
  "status":{"phase":"Bound"}})";

const char kClaim[] = R"({"apiVersion":"v1","kind":"PersistentVolumeClaim",
  "metadata":{"name":"data","labels":{"app":"web"}},
  "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}},
          "storageClassName":"local"}})";

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::StateStore::Open(dir_.path() / "state");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    Start();
  }

  void Start(size_t max_request_bytes = 4 << 20) {
    ApiServerOptions options;
    options.socket_path = socket_;
    options.request_timeout_seconds = 2;
    options.max_request_bytes = max_request_bytes;
    options.threads = 2;
    auto server = ApiServer::Start(options, store_.get(), &hooks_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  Response Get(const std::string& path) { return Request(socket_, "GET", path); }
  Response Post(const std::string& path, const std::string& body,
                const std::string& type = "application/json") {
    return Request(socket_, "POST", path, body, type);
  }
  Response Put(const std::string& path, const std::string& body) {
    return Request(socket_, "PUT", path, body);
  }
  Response Patch(const std::string& path, const std::string& body,
                 const std::string& type = "application/merge-patch+json") {
    return Request(socket_, "PATCH", path, body, type);
  }
  Response Delete(const std::string& path, const std::string& body = "") {
    return Request(socket_, "DELETE", path, body);
  }

  // Checks a Status object response and returns its message.
  static std::string ExpectFailure(const Response& response, long code, const std::string& reason) {
    EXPECT_EQ(response.code, code) << response.body << response.error;
    json status = response.Json();
    EXPECT_EQ(status["kind"], "Status") << response.body;
    EXPECT_EQ(status["apiVersion"], "v1");
    EXPECT_EQ(status["status"], "Failure");
    EXPECT_EQ(status["reason"], reason) << response.body;
    EXPECT_EQ(status["code"], code);
    EXPECT_TRUE(status["metadata"].is_object());
    EXPECT_TRUE(status["details"].is_object());
    EXPECT_EQ(response.content_type, "application/json");
    return status.value("message", "");
  }

  static const std::string kClaims;

  TempDir dir_;
  std::string socket_ = (dir_.path() / "api.sock").string();
  std::unique_ptr<store::StateStore> store_;
  FakeHooks hooks_;
  std::unique_ptr<ApiServer> server_;
};

const std::string ApiServerTest::kClaims = "/api/v1/namespaces/default/persistentvolumeclaims";

// ---- objects

TEST_F(ApiServerTest, StorageClassLifecycle) {
  const std::string collection = "/apis/storage.k8s.io/v1/storageclasses";
  Response created = Post(collection, kStorageClass);
  ASSERT_EQ(created.code, 201) << created.body;
  json sc = created.Json();
  EXPECT_EQ(sc["kind"], "StorageClass");
  EXPECT_EQ(sc["reclaimPolicy"], "Delete");  // defaulted
  EXPECT_EQ(sc["volumeBindingMode"], "Immediate");
  EXPECT_FALSE(sc["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE(sc["metadata"]["resourceVersion"].get<std::string>().empty());
  EXPECT_EQ(hooks_.objects_changed, 1);

  EXPECT_EQ(Get(collection + "/local").Json()["metadata"]["uid"], sc["metadata"]["uid"]);
  json list = Get(collection).Json();
  EXPECT_EQ(list["kind"], "StorageClassList");
  EXPECT_EQ(list["apiVersion"], "storage.k8s.io/v1");
  EXPECT_FALSE(list["metadata"]["resourceVersion"].get<std::string>().empty());
  ASSERT_EQ(list["items"].size(), 1u);

  // PUT without resourceVersion: unconditional.
  json replaced = sc;
  replaced["metadata"].erase("resourceVersion");
  replaced["allowVolumeExpansion"] = false;
  Response put = Put(collection + "/local", replaced.dump());
  ASSERT_EQ(put.code, 200) << put.body;
  EXPECT_EQ(put.Json()["allowVolumeExpansion"], false);

  // The provisioner is immutable.
  replaced["provisioner"] = "example.com/other";
  std::string message = ExpectFailure(Put(collection + "/local", replaced.dump()), 422, "Invalid");
  EXPECT_NE(message.find("StorageClass \"local\" is invalid: provisioner"), std::string::npos)
      << message;

  Response patched = Patch(collection + "/local", R"({"metadata":{"labels":{"tier":"fast"}}})");
  ASSERT_EQ(patched.code, 200) << patched.body;
  EXPECT_EQ(patched.Json()["metadata"]["labels"]["tier"], "fast");

  Response deleted = Delete(collection + "/local");
  ASSERT_EQ(deleted.code, 200) << deleted.body;
  EXPECT_EQ(deleted.Json()["metadata"]["labels"]["tier"], "fast");
  Response missing = Get(collection + "/local");
  message = ExpectFailure(missing, 404, "NotFound");
  EXPECT_EQ(message, "storageclasses.storage.k8s.io \"local\" not found");
  EXPECT_EQ(missing.Json()["details"],
            (json{{"name", "local"}, {"group", "storage.k8s.io"}, {"kind", "storageclasses"}}));
  EXPECT_EQ(hooks_.objects_changed, 4);
}

// libmicrohttpd decoded %00 into the C string it hands on, so "nul%00garbage" named "nul".
TEST_F(ApiServerTest, PercentEncodedNulDoesNotCutANameShort) {
  json claim = json::parse(kClaim);
  claim["metadata"]["name"] = "nul";
  ASSERT_EQ(Post(kClaims, claim.dump()).code, 201);
  EXPECT_EQ(Get(kClaims + "/nul%00garbage").code, 404);
  EXPECT_EQ(Request(socket_, "DELETE", kClaims + "/nul%00.x").code, 404);
  EXPECT_EQ(Get(kClaims + "/nul").code, 200);
  EXPECT_EQ(Get(kClaims + "/n%75l").code, 200);  // other escapes still decode
}

TEST_F(ApiServerTest, VolumeSourceTheDaemonRefusesIsInvalidAtItsField) {
  json pv = json::parse(kVolume);
  pv["spec"]["hostPath"]["path"] = "/etc";
  Response refused = Post("/api/v1/persistentvolumes", pv.dump());
  std::string message = ExpectFailure(refused, 422, "Invalid");
  EXPECT_EQ(message,
            "PersistentVolume \"pv-hostpath\" is invalid: spec.hostPath.path: Forbidden: volume "
            "source /etc is not below an allowed hostPath prefix or a pool (/tmp)");
  EXPECT_EQ(refused.Json()["details"]["causes"][0]["field"], "spec.hostPath.path");
  EXPECT_EQ(Post("/api/v1/persistentvolumes?dryRun=All", pv.dump()).code, 422);
  EXPECT_EQ(hooks_.objects_changed, 0);
  EXPECT_EQ(Get("/api/v1/persistentvolumes/pv-hostpath").code, 404);
}

TEST_F(ApiServerTest, PersistentVolumeLifecycleKeepsStatusOutOfSpecWrites) {
  const std::string collection = "/api/v1/persistentvolumes";
  Response created = Post(collection, kVolume);
  ASSERT_EQ(created.code, 201) << created.body;
  json pv = created.Json();
  // Status is the server's: a client's is dropped on create.
  EXPECT_EQ(pv["status"]["phase"], "Pending");
  EXPECT_EQ(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
  EXPECT_EQ(pv["spec"]["volumeMode"], "Filesystem");

  // /status writes only the status.
  json status_update = pv;
  status_update["status"]["phase"] = "Available";
  status_update["spec"]["mountOptions"] = {"noatime"};
  Response status = Put(collection + "/pv-hostpath/status", status_update.dump());
  ASSERT_EQ(status.code, 200) << status.body;
  EXPECT_EQ(status.Json()["status"]["phase"], "Available");
  EXPECT_FALSE(status.Json()["spec"].contains("mountOptions"));

  // A spec write keeps the stored status.
  json spec_update = status.Json();
  spec_update["spec"]["mountOptions"] = {"noatime"};
  spec_update["status"]["phase"] = "Failed";
  Response put = Put(collection + "/pv-hostpath", spec_update.dump());
  ASSERT_EQ(put.code, 200) << put.body;
  EXPECT_EQ(put.Json()["spec"]["mountOptions"], json({"noatime"}));
  EXPECT_EQ(put.Json()["status"]["phase"], "Available");

  // A stale resourceVersion is a conflict.
  Response stale = Put(collection + "/pv-hostpath", status.Json().dump());
  std::string message = ExpectFailure(stale, 409, "Conflict");
  EXPECT_NE(message.find("Operation cannot be fulfilled on persistentvolumes \"pv-hostpath\""),
            std::string::npos)
      << message;

  // JSON patch and strategic merge patch.
  Response json_patch = Patch(collection + "/pv-hostpath",
                              R"([{"op":"replace","path":"/spec/capacity/storage","value":"2Gi"},
                                  {"op":"add","path":"/metadata/labels/zone","value":"a"}])",
                              "application/json-patch+json");
  ASSERT_EQ(json_patch.code, 200) << json_patch.body;
  EXPECT_EQ(json_patch.Json()["spec"]["capacity"]["storage"], "2Gi");
  EXPECT_EQ(json_patch.Json()["metadata"]["labels"]["zone"], "a");
  Response strategic =
      Patch(collection + "/pv-hostpath", R"({"spec":{"persistentVolumeReclaimPolicy":"Delete"}})",
            "application/strategic-merge-patch+json");
  ASSERT_EQ(strategic.code, 200) << strategic.body;
  EXPECT_EQ(strategic.Json()["spec"]["persistentVolumeReclaimPolicy"], "Delete");
  EXPECT_EQ(strategic.Json()["metadata"]["labels"]["zone"], "a");

  // A failed JSON patch test is refused without a write.
  Response failed = Patch(collection + "/pv-hostpath",
                          R"([{"op":"test","path":"/spec/capacity/storage","value":"9Gi"}])",
                          "application/json-patch+json");
  ExpectFailure(failed, 422, "Invalid");

  // The volume source is immutable.
  message = ExpectFailure(
      Patch(collection + "/pv-hostpath", R"({"spec":{"hostPath":{"path":"/elsewhere"}}})"), 422,
      "Invalid");
  EXPECT_NE(message.find("PersistentVolume \"pv-hostpath\" is invalid"), std::string::npos);

  // Labels select.
  EXPECT_EQ(Get(collection + "?labelSelector=type%3Dlocal").Json()["items"].size(), 1u);
  EXPECT_EQ(Get(collection + "?labelSelector=type%3Dremote").Json()["items"].size(), 0u);
  EXPECT_EQ(Get(collection + "?labelSelector=zone%20in%20(a,b),!gone").Json()["items"].size(), 1u);
  ExpectFailure(Get(collection + "?labelSelector=%3D%3Dx"), 400, "BadRequest");

  Response deleted = Delete(collection + "/pv-hostpath");
  ASSERT_EQ(deleted.code, 200) << deleted.body;
  EXPECT_EQ(deleted.Json()["metadata"]["name"], "pv-hostpath");
  ExpectFailure(Get(collection + "/pv-hostpath"), 404, "NotFound");
}

TEST_F(ApiServerTest, ClaimLifecycleInNamespaces) {
  Response created = Post(kClaims, kClaim);
  ASSERT_EQ(created.code, 201) << created.body;
  json pvc = created.Json();
  EXPECT_EQ(pvc["metadata"]["namespace"], "default");  // from the path
  EXPECT_EQ(pvc["status"]["phase"], "Pending");
  EXPECT_EQ(pvc["spec"]["volumeMode"], "Filesystem");

  json other = json::parse(kClaim);
  other["metadata"]["namespace"] = "team-a";
  Response in_team = Post("/api/v1/namespaces/team-a/persistentvolumeclaims", other.dump());
  ASSERT_EQ(in_team.code, 201) << in_team.body;

  EXPECT_EQ(Get(kClaims).Json()["items"].size(), 1u);
  json all = Get("/api/v1/persistentvolumeclaims").Json();
  EXPECT_EQ(all["kind"], "PersistentVolumeClaimList");
  ASSERT_EQ(all["items"].size(), 2u);
  EXPECT_EQ(all["items"][0]["metadata"]["namespace"], "default");
  EXPECT_EQ(all["items"][1]["metadata"]["namespace"], "team-a");
  EXPECT_EQ(Get("/api/v1/persistentvolumeclaims?fieldSelector=metadata.namespace%3Dteam-a")
                .Json()["items"]
                .size(),
            1u);
  ExpectFailure(Get("/api/v1/persistentvolumeclaims?fieldSelector=spec.volumeName%3Dx"), 400,
                "BadRequest");

  Response got = Get(kClaims + "/data");
  ASSERT_EQ(got.code, 200);
  EXPECT_EQ(got.Json()["metadata"]["labels"]["app"], "web");
  ExpectFailure(Get("/api/v1/namespaces/team-b/persistentvolumeclaims/data"), 404, "NotFound");

  // A merge patch on a Pending claim's spec is refused: the spec is immutable but for growth of
  // a bound claim.
  std::string message = ExpectFailure(
      Patch(kClaims + "/data", R"({"spec":{"accessModes":["ReadWriteMany"]}})"), 422, "Invalid");
  EXPECT_NE(message.find("spec is immutable after creation"), std::string::npos) << message;

  ASSERT_EQ(Delete(kClaims + "/data").code, 200);
  ExpectFailure(Get(kClaims + "/data"), 404, "NotFound");
  EXPECT_EQ(Get("/api/v1/persistentvolumeclaims").Json()["items"].size(), 1u);
}

TEST_F(ApiServerTest, EveryKindTakesEveryPatchType) {
  struct Kind {
    std::string collection;
    const char* manifest;
    std::string name;
  };
  const Kind kinds[] = {{"/apis/storage.k8s.io/v1/storageclasses", kStorageClass, "local"},
                        {"/api/v1/persistentvolumes", kVolume, "pv-hostpath"},
                        {kClaims, kClaim, "data"}};
  for (const Kind& kind : kinds) {
    SCOPED_TRACE(kind.collection);
    ASSERT_EQ(Post(kind.collection, kind.manifest).code, 201);
    const std::string item = kind.collection + "/" + kind.name;
    Response merge = Patch(item, R"({"metadata":{"labels":{"merge":"1"}}})");
    ASSERT_EQ(merge.code, 200) << merge.body;
    Response strategic = Patch(item, R"({"metadata":{"labels":{"strategic":"1"}}})",
                               "application/strategic-merge-patch+json");
    ASSERT_EQ(strategic.code, 200) << strategic.body;
    Response json_patch =
        Patch(item, R"([{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}])",
              "application/json-patch+json");
    ASSERT_EQ(json_patch.code, 200) << json_patch.body;
    json stored = Get(item).Json();
    EXPECT_EQ(stored["metadata"]["labels"]["merge"], "1");
    EXPECT_EQ(stored["metadata"]["labels"]["strategic"], "1");
    EXPECT_EQ(stored["metadata"]["annotations"]["a"], "b");
    ASSERT_EQ(Delete(item).code, 200);
    ExpectFailure(Get(item), 404, "NotFound");
  }
  EXPECT_EQ(hooks_.objects_changed, 15);
}

TEST_F(ApiServerTest, YamlBodyIsAccepted) {
  Response created = Post(kClaims,
                          "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: y\n"
                          "spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n"
                          "      storage: 1Gi\n",
                          "application/yaml");
  ASSERT_EQ(created.code, 201) << created.body;
  EXPECT_EQ(created.Json()["spec"]["resources"]["requests"]["storage"], "1Gi");
}

TEST_F(ApiServerTest, CreateErrorsUseKubernetesReasonsAndMessages) {
  ASSERT_EQ(Post(kClaims, kClaim).code, 201);
  Response again = Post(kClaims, kClaim);
  EXPECT_EQ(ExpectFailure(again, 409, "AlreadyExists"),
            "persistentvolumeclaims \"data\" already exists");
  EXPECT_EQ(again.Json()["details"]["name"], "data");
  EXPECT_EQ(again.Json()["details"]["kind"], "persistentvolumeclaims");

  Response invalid = Post(kClaims, R"({"apiVersion":"v1","kind":"PersistentVolumeClaim",
      "metadata":{"name":"bad"},"spec":{"resources":{"requests":{"storage":"1Gi"}}}})");
  std::string message = ExpectFailure(invalid, 422, "Invalid");
  EXPECT_EQ(message.rfind("PersistentVolumeClaim \"bad\" is invalid: ", 0), 0u) << message;
  EXPECT_NE(message.find("spec.accessModes: Required value"), std::string::npos) << message;
  json details = invalid.Json()["details"];
  EXPECT_EQ(details["kind"], "PersistentVolumeClaim");
  ASSERT_FALSE(details["causes"].empty());
  EXPECT_EQ(details["causes"][0]["reason"], "FieldValueRequired");
  EXPECT_EQ(details["causes"][0]["field"], "spec.accessModes");

  json elsewhere = json::parse(kClaim);
  elsewhere["metadata"]["name"] = "x";
  elsewhere["metadata"]["namespace"] = "other";
  EXPECT_EQ(ExpectFailure(Post(kClaims, elsewhere.dump()), 400, "BadRequest"),
            "the namespace of the provided object does not match the namespace sent on the "
            "request");

  message = ExpectFailure(Post(kClaims, "{\"apiVersion\": \"v1\", "), 400, "BadRequest");
  EXPECT_NE(message.find("parse error"), std::string::npos) << message;

  // A wrong JSON type names the field.
  json wrong_type = json::parse(kClaim);
  wrong_type["metadata"]["name"] = "typed";
  wrong_type["spec"]["accessModes"] = "ReadWriteOnce";
  message = ExpectFailure(Post(kClaims, wrong_type.dump()), 400, "BadRequest");
  EXPECT_NE(message.find("spec.accessModes"), std::string::npos) << message;
  json bad_value = json::parse(kClaim);
  bad_value["metadata"]["name"] = "valued";
  bad_value["spec"]["accessModes"] = {"ReadWriteSometimes"};
  message = ExpectFailure(Post(kClaims, bad_value.dump()), 422, "Invalid");
  EXPECT_NE(message.find("spec.accessModes"), std::string::npos) << message;

  // A body of another kind.
  message = ExpectFailure(Post(kClaims, kVolume), 400, "BadRequest");
  EXPECT_NE(message.find("cannot be handled as a PersistentVolumeClaim"), std::string::npos);

  ExpectFailure(Post(kClaims, "[1,2]"), 400, "BadRequest");
  ExpectFailure(Post(kClaims, ""), 400, "BadRequest");
  ExpectFailure(Post(kClaims, std::string(1000, '[') + std::string(1000, ']')), 400, "BadRequest");
  ExpectFailure(Post(kClaims, kClaim, "application/xml"), 415, "UnsupportedMediaType");
  EXPECT_EQ(hooks_.objects_changed, 1);
}

TEST_F(ApiServerTest, UpdateErrors) {
  ASSERT_EQ(Post(kClaims, kClaim).code, 201);
  json renamed = json::parse(kClaim);
  renamed["metadata"]["name"] = "other";
  EXPECT_EQ(ExpectFailure(Put(kClaims + "/data", renamed.dump()), 400, "BadRequest"),
            "the name of the object (other) does not match the name on the URL (data)");
  ExpectFailure(Put(kClaims + "/nothing", kClaim), 400, "BadRequest");
  json missing = json::parse(kClaim);
  missing["metadata"]["name"] = "nothing";
  EXPECT_EQ(ExpectFailure(Put(kClaims + "/nothing", missing.dump()), 404, "NotFound"),
            "persistentvolumeclaims \"nothing\" not found");
  ExpectFailure(
      Patch(kClaims + "/data", R"({"metadata":{"labels":{"a":"b"}}})", "application/json"), 415,
      "UnsupportedMediaType");
  ExpectFailure(Patch(kClaims + "/data", R"({"op":"add"})", "application/json-patch+json"), 400,
                "BadRequest");
  ExpectFailure(Patch(kClaims + "/data", R"({"kind":"PersistentVolume"})"), 400, "BadRequest");
  // A merge patch naming a stale resourceVersion is a conflict.
  ExpectFailure(Patch(kClaims + "/data", R"({"metadata":{"resourceVersion":"12345"}})"), 409,
                "Conflict");
}

TEST_F(ApiServerTest, ClaimShrinkAndExpansionFollowKubernetes) {
  ASSERT_EQ(Post("/apis/storage.k8s.io/v1/storageclasses", kStorageClass).code, 201);
  json fixed = json::parse(kStorageClass);
  fixed["metadata"]["name"] = "fixed";
  fixed["allowVolumeExpansion"] = false;
  ASSERT_EQ(Post("/apis/storage.k8s.io/v1/storageclasses", fixed.dump()).code, 201);
  ASSERT_EQ(Post(kClaims, kClaim).code, 201);
  json on_fixed = json::parse(kClaim);
  on_fixed["metadata"]["name"] = "pinned";
  on_fixed["spec"]["storageClassName"] = "fixed";
  ASSERT_EQ(Post(kClaims, on_fixed.dump()).code, 201);
  // Bind both, as the controller would (through /status here).
  for (const char* name : {"data", "pinned"}) {
    Response bound = Patch(kClaims + "/" + name + "/status",
                           R"({"status":{"phase":"Bound","capacity":{"storage":"1Gi"},
                               "accessModes":["ReadWriteOnce"]}})");
    ASSERT_EQ(bound.code, 200) << bound.body;
    ASSERT_EQ(bound.Json()["status"]["phase"], "Bound");
  }

  std::string message = ExpectFailure(
      Patch(kClaims + "/data", R"({"spec":{"resources":{"requests":{"storage":"500Mi"}}}})"), 422,
      "Invalid");
  EXPECT_NE(message.find("field can not be less than previous value"), std::string::npos)
      << message;
  EXPECT_EQ(message.rfind("PersistentVolumeClaim \"data\" is invalid: ", 0), 0u) << message;

  message = ExpectFailure(
      Patch(kClaims + "/pinned", R"({"spec":{"resources":{"requests":{"storage":"2Gi"}}}})"), 422,
      "Invalid");
  EXPECT_NE(message.find("only dynamically provisioned pvc can be resized and the storageclass "
                         "that provisions the pvc must support resize"),
            std::string::npos)
      << message;

  Response grown =
      Patch(kClaims + "/data", R"({"spec":{"resources":{"requests":{"storage":"2Gi"}}}})");
  ASSERT_EQ(grown.code, 200) << grown.body;
  EXPECT_EQ(grown.Json()["spec"]["resources"]["requests"]["storage"], "2Gi");
  EXPECT_EQ(grown.Json()["status"]["phase"], "Bound");  // status kept
}

TEST_F(ApiServerTest, DryRunValidatesWithoutStoring) {
  Response dry = Post(kClaims + "?dryRun=All", kClaim);
  ASSERT_EQ(dry.code, 201) << dry.body;
  EXPECT_EQ(dry.Json()["metadata"]["name"], "data");
  ExpectFailure(Get(kClaims + "/data"), 404, "NotFound");
  ExpectFailure(Post(kClaims + "?dryRun=All", R"({"metadata":{"name":"x"},"spec":{}})"), 422,
                "Invalid");
  ExpectFailure(Post(kClaims + "?dryRun=Some", kClaim), 400, "BadRequest");
  EXPECT_EQ(hooks_.objects_changed, 0);

  ASSERT_EQ(Post(kClaims, kClaim).code, 201);
  std::string version = Get(kClaims + "/data").Json()["metadata"]["resourceVersion"];
  Response patched = Patch(kClaims + "/data?dryRun=All", R"({"metadata":{"labels":{"x":"y"}}})");
  ASSERT_EQ(patched.code, 200);
  EXPECT_EQ(patched.Json()["metadata"]["labels"]["x"], "y");
  json put = Get(kClaims + "/data").Json();
  put["metadata"]["labels"]["z"] = "w";
  ASSERT_EQ(Put(kClaims + "/data?dryRun=All", put.dump()).code, 200);
  ASSERT_EQ(Delete(kClaims + "/data?dryRun=All").code, 200);
  json stored = Get(kClaims + "/data").Json();
  EXPECT_EQ(stored["metadata"]["resourceVersion"], version);
  EXPECT_FALSE(stored["metadata"]["labels"].contains("x"));
  EXPECT_FALSE(stored["metadata"]["labels"].contains("z"));
  EXPECT_EQ(hooks_.objects_changed, 1);
}

TEST_F(ApiServerTest, DeleteWithFinalizerMarksTerminating) {
  json protected_claim = json::parse(kClaim);
  protected_claim["metadata"]["finalizers"] = {"kubernetes.io/pvc-protection"};
  ASSERT_EQ(Post(kClaims, protected_claim.dump()).code, 201);
  int changes = hooks_.objects_changed;

  Response deleting = Delete(kClaims + "/data");
  ASSERT_EQ(deleting.code, 200) << deleting.body;
  json terminating = deleting.Json();
  ASSERT_TRUE(terminating["metadata"]["deletionTimestamp"].is_string());
  std::string stamp = terminating["metadata"]["deletionTimestamp"];
  EXPECT_EQ(stamp.size(), 20u);
  EXPECT_EQ(stamp.back(), 'Z');
  EXPECT_EQ(hooks_.objects_changed, changes + 1);

  // Still there; deleting again changes nothing.
  Response got = Get(kClaims + "/data");
  ASSERT_EQ(got.code, 200);
  EXPECT_EQ(got.Json()["metadata"]["deletionTimestamp"], stamp);
  Response again = Delete(kClaims + "/data");
  ASSERT_EQ(again.code, 200);
  EXPECT_EQ(again.Json()["metadata"]["resourceVersion"],
            terminating["metadata"]["resourceVersion"]);
  EXPECT_EQ(hooks_.objects_changed, changes + 1);

  // An update cannot clear the deletion timestamp...
  json revive = got.Json();
  revive["metadata"].erase("deletionTimestamp");
  revive["metadata"]["labels"]["revived"] = "no";
  Response put = Put(kClaims + "/data", revive.dump());
  ASSERT_EQ(put.code, 200) << put.body;
  EXPECT_EQ(put.Json()["metadata"]["deletionTimestamp"], stamp);

  // ...and removing the last finalizer completes the delete.
  Response finished = Patch(kClaims + "/data", R"({"metadata":{"finalizers":null}})");
  ASSERT_EQ(finished.code, 200) << finished.body;
  ExpectFailure(Get(kClaims + "/data"), 404, "NotFound");
}

TEST_F(ApiServerTest, DeletePreconditions) {
  ASSERT_EQ(Post(kClaims, kClaim).code, 201);
  std::string message = ExpectFailure(
      Delete(kClaims + "/data", R"({"preconditions":{"uid":"not-the-uid"}})"), 409, "Conflict");
  EXPECT_NE(message.find("Precondition failed: UID in precondition: not-the-uid"),
            std::string::npos);
  EXPECT_EQ(Get(kClaims + "/data").code, 200);
  ExpectFailure(Delete(kClaims + "/missing"), 404, "NotFound");
}

// ---- events

TEST_F(ApiServerTest, EventsBySelector) {
  model::Event event;
  event.metadata.namespace_ = "default";
  event.involved_object = {"PersistentVolumeClaim", "v1", "default", "data", "", ""};
  event.reason = "ProvisioningSucceeded";
  event.message = "Successfully provisioned volume pvc-1";
  event.type = "Normal";
  event.source_component = "persistentvolume-controller";
  ASSERT_TRUE(store_->AppendEvent(event).ok());
  event.involved_object.name = "other";
  event.reason = "FailedBinding";
  event.type = "Warning";
  ASSERT_TRUE(store_->AppendEvent(event).ok());
  event.metadata.namespace_ = "team-a";
  event.involved_object.namespace_ = "team-a";
  ASSERT_TRUE(store_->AppendEvent(event).ok());

  json all = Get("/api/v1/events").Json();
  EXPECT_EQ(all["kind"], "EventList");
  EXPECT_EQ(all["items"].size(), 3u);
  EXPECT_EQ(Get("/api/v1/namespaces/default/events").Json()["items"].size(), 2u);
  json one = Get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind%3D"
                 "PersistentVolumeClaim,involvedObject.name%3Ddata")
                 .Json();
  ASSERT_EQ(one["items"].size(), 1u);
  EXPECT_EQ(one["items"][0]["reason"], "ProvisioningSucceeded");
  EXPECT_EQ(one["items"][0]["involvedObject"]["name"], "data");
  json across = Get("/api/v1/events?fieldSelector=involvedObject.name%3Dother,"
                    "involvedObject.namespace%3Dteam-a,involvedObject.kind%3DPersistentVolumeClaim")
                    .Json();
  ASSERT_EQ(across["items"].size(), 1u);
  EXPECT_EQ(across["items"][0]["metadata"]["namespace"], "team-a");
  EXPECT_EQ(Get("/api/v1/events?fieldSelector=type%3DWarning").Json()["items"].size(), 2u);
  EXPECT_EQ(Get("/api/v1/events?fieldSelector=type!%3DWarning").Json()["items"].size(), 1u);
  ExpectFailure(Get("/api/v1/events?fieldSelector=spec.x%3Dy"), 400, "BadRequest");
  ExpectFailure(Get("/api/v1/events?fieldSelector=garbage"), 400, "BadRequest");
}

// ---- leases, stats, health, metrics

TEST_F(ApiServerTest, LeasesReachTheDaemon) {
  ASSERT_EQ(Post(kClaims, kClaim).code, 201);
  const std::string leases =
      "/apis/claimfs.io/v1/namespaces/default/persistentvolumeclaims/data/leases";
  Response acquired = Post(leases, R"({"holder":"claimctl use","pid":1234})");
  ASSERT_EQ(acquired.code, 201) << acquired.body;
  json lease = acquired.Json();
  EXPECT_EQ(lease, (json{{"id", "lease-1"},
                         {"claim", "default/data"},
                         {"holder", "claimctl use"},
                         {"pid", 1234},
                         {"acquired", "2026-11-25T10:00:00Z"}}));
  auto parsed = LeaseFromJson(lease);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->pid, 1234);

  ASSERT_EQ(Post(leases, R"({"holder":"docker"})").code, 201);
  json list = Get(leases).Json();
  EXPECT_EQ(list["kind"], "LeaseList");
  EXPECT_EQ(list["items"].size(), 2u);
  EXPECT_EQ(Get("/apis/claimfs.io/v1/leases").Json()["items"].size(), 2u);

  Response released = Delete(leases + "/lease-1");
  ASSERT_EQ(released.code, 200) << released.body;
  EXPECT_EQ(released.Json()["status"], "Success");
  EXPECT_EQ(Get(leases).Json()["items"].size(), 1u);
  ExpectFailure(Delete(leases + "/lease-1"), 404, "NotFound");

  std::string message = ExpectFailure(Post(leases, R"({"pid":"1234"})"), 422, "Invalid");
  EXPECT_NE(message.find("pid"), std::string::npos) << message;
  ExpectFailure(Post(leases, R"({"pid":-5})"), 422, "Invalid");
  ExpectFailure(Post(leases, R"({"holder":)"), 400, "BadRequest");
  {
    std::lock_guard<std::mutex> lock(hooks_.mu);
    hooks_.acquire_status = Status::Conflict(
        "persistentvolumeclaim default/data is ReadWriteOncePod "
        "and already leased");
  }
  EXPECT_EQ(ExpectFailure(Post(leases, "{}"), 409, "Conflict"),
            "persistentvolumeclaim default/data is ReadWriteOncePod and already leased");
  {
    std::lock_guard<std::mutex> lock(hooks_.mu);
    hooks_.acquire_status = Status::Forbidden("persistentvolumeclaim default/data is not Bound");
  }
  ExpectFailure(Post(leases, "{}"), 403, "Forbidden");
  ExpectFailure(Get("/apis/claimfs.io/v1/namespaces/default/persistentvolumeclaims/nope/leases"),
                404, "NotFound");

  std::lock_guard<std::mutex> lock(hooks_.mu);
  EXPECT_EQ(hooks_.calls,
            (std::vector<std::string>{
                "acquire default/data claimctl use 1234", "acquire default/data docker 0",
                "release default/data lease-1", "release default/data lease-1",
                "acquire default/data  0", "acquire default/data  0"}));
}

TEST_F(ApiServerTest, VolumeStats) {
  {
    std::lock_guard<std::mutex> lock(hooks_.mu);
    hooks_.stats = {VolumeStats{"pvc-1", "default/data", "/run/claimfs/claims/default/data",
                                1 << 30, 1000, (1 << 30) - 1000, 3, std::nullopt, 2, false},
                    VolumeStats{"pv-ro", "team-a/ro", "/mnt/ro", 100, 0, 100, 1, 500, 0, true}};
  }
  Response response = Get("/apis/claimfs.io/v1/volumestats");
  ASSERT_EQ(response.code, 200);
  json list = response.Json();
  EXPECT_EQ(list["kind"], "VolumeStatsList");
  ASSERT_EQ(list["items"].size(), 2u);
  EXPECT_EQ(list["items"][0], (json{{"volume", "pvc-1"},
                                    {"claim", "default/data"},
                                    {"mountPath", "/run/claimfs/claims/default/data"},
                                    {"capacityBytes", 1 << 30},
                                    {"usedBytes", 1000},
                                    {"availableBytes", (1 << 30) - 1000},
                                    {"usedInodes", 3},
                                    {"quotaRejections", 2},
                                    {"readOnly", false}}));
  EXPECT_EQ(list["items"][1]["inodeLimit"], 500);
  EXPECT_EQ(list["items"][1]["readOnly"], true);
  auto parsed = VolumeStatsFromJson(list["items"][1]);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->inode_limit, 500u);
  EXPECT_FALSE(VolumeStatsFromJson(json{{"volume", 1}}).ok());
}

TEST_F(ApiServerTest, Healthz) {
  Response ok = Get("/healthz");
  EXPECT_EQ(ok.code, 200);
  EXPECT_EQ(ok.body, "ok");
  EXPECT_EQ(ok.content_type.rfind("text/plain", 0), 0u);
  {
    std::lock_guard<std::mutex> lock(hooks_.mu);
    hooks_.health = Status::Unavailable("state store is not open");
  }
  Response bad = Get("/healthz");
  EXPECT_EQ(bad.code, 503);
  EXPECT_NE(bad.body.find("state store is not open"), std::string::npos);
}

// The sample line for `series` (name and labels exactly as written), or "".
std::string SampleValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
  }
  return "";
}

TEST_F(ApiServerTest, MetricsInPrometheusTextFormat) {
  ASSERT_EQ(Post("/api/v1/persistentvolumes", kVolume).code, 201);
  ASSERT_EQ(
      Patch("/api/v1/persistentvolumes/pv-hostpath/status", R"({"status":{"phase":"Bound"}})").code,
      200);
  ASSERT_EQ(Post(kClaims, kClaim).code, 201);
  ExpectFailure(Get("/nowhere"), 404, "NotFound");
  {
    std::lock_guard<std::mutex> lock(hooks_.mu);
    hooks_.stats = {
        VolumeStats{"pvc-1", "default/data", "/m", 1073741824, 4096, 1073737728, 2, 100, 7, false},
        VolumeStats{"pvc-2", "odd\"ns/we\\ird\nname", "/m2", 10, 0, 10, 0, std::nullopt, 0, false}};
    hooks_.daemon_metrics =
        "# HELP claimfs_fuse_ops_total FUSE ops\n"
        "# TYPE claimfs_fuse_ops_total counter\n"
        "claimfs_fuse_ops_total{op=\"write\"} 42\n";
  }
  Response response = Get("/metrics");
  ASSERT_EQ(response.code, 200);
  EXPECT_EQ(response.content_type.rfind("text/plain; version=0.0.4", 0), 0u)
      << response.content_type;
  const std::string& text = response.body;
  const std::string data = "{namespace=\"default\",persistentvolumeclaim=\"data\"}";
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_capacity_bytes" + data), "1073741824");
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_used_bytes" + data), "4096");
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_available_bytes" + data), "1073737728");
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_inodes_used" + data), "2");
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_inodes" + data), "100");
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_inodes_free" + data), "98");
  EXPECT_EQ(SampleValue(text, "claimfs_volume_quota_rejections_total" + data), "7");
  // Escaped label values; no inode limit, no kubelet_volume_stats_inodes series.
  const std::string odd = "{namespace=\"odd\\\"ns\",persistentvolumeclaim=\"we\\\\ird\\nname\"}";
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_capacity_bytes" + odd), "10");
  EXPECT_EQ(SampleValue(text, "kubelet_volume_stats_inodes" + odd), "");

  EXPECT_NE(text.find("# TYPE kubelet_volume_stats_capacity_bytes gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# HELP kubelet_volume_stats_used_bytes "), std::string::npos);
  EXPECT_NE(text.find("# TYPE claimfs_volume_quota_rejections_total counter\n"), std::string::npos);
  EXPECT_EQ(SampleValue(text, "claimfs_persistentvolumes{phase=\"Bound\"}"), "1");
  EXPECT_EQ(SampleValue(text, "claimfs_persistentvolumes{phase=\"Available\"}"), "0");
  EXPECT_EQ(SampleValue(text, "claimfs_persistentvolumes{phase=\"Released\"}"), "0");
  EXPECT_EQ(SampleValue(text, "claimfs_persistentvolumes{phase=\"Failed\"}"), "0");
  EXPECT_EQ(SampleValue(text, "claimfs_persistentvolumeclaims{phase=\"Pending\"}"), "1");
  EXPECT_EQ(SampleValue(text, "claimfs_persistentvolumeclaims{phase=\"Lost\"}"), "0");
  EXPECT_EQ(SampleValue(text, "claimfs_api_requests_total{method=\"POST\",code=\"201\"}"), "2");
  EXPECT_EQ(SampleValue(text, "claimfs_api_requests_total{method=\"PATCH\",code=\"200\"}"), "1");
  EXPECT_EQ(SampleValue(text, "claimfs_api_requests_total{method=\"GET\",code=\"404\"}"), "1");
  EXPECT_EQ(SampleValue(text, "claimfs_fuse_ops_total{op=\"write\"}"), "42");
  // Daemon metrics come last, verbatim.
  EXPECT_EQ(text.substr(text.size() - 38), "claimfs_fuse_ops_total{op=\"write\"} 42\n");
  // Every sample's metric has a TYPE line before it.
  std::istringstream in(text);
  std::string line;
  std::set<std::string> typed;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (!line.empty() && line[0] != '#') {
      std::string name = line.substr(0, line.find_first_of("{ "));
      EXPECT_TRUE(typed.count(name)) << name;
    }
  }
}

TEST_F(ApiServerTest, UnknownPathsAndMethods) {
  // (/api/v1/pods answers an empty list now: `kubectl describe pvc` looks for pods.)
  EXPECT_EQ(ExpectFailure(Get("/api/v1/nodes"), 404, "NotFound"),
            "the server could not find the requested resource");
  ExpectFailure(Get("/"), 404, "NotFound");
  Response wrong = Request(socket_, "DELETE", "/api/v1/persistentvolumes");
  EXPECT_EQ(ExpectFailure(wrong, 405, "MethodNotAllowed"),
            "the server does not allow this method on the requested resource");
  EXPECT_EQ(wrong.headers["allow"], "GET, POST");
  ExpectFailure(Request(socket_, "POST", "/healthz", "{}"), 405, "MethodNotAllowed");
  EXPECT_EQ(Request(socket_, "HEAD", "/healthz").code, 200);
}

TEST_F(ApiServerTest, RequestTooLargeIsAStatusObject) {
  server_.reset();
  Start(/*max_request_bytes=*/2048);
  json big = json::parse(kClaim);
  big["metadata"]["annotations"]["filler"] = std::string(4096, 'x');
  std::string message = ExpectFailure(Post(kClaims, big.dump()), 413, "RequestEntityTooLarge");
  EXPECT_NE(message.find("2048"), std::string::npos);
  EXPECT_EQ(Post(kClaims, kClaim).code, 201);
}

TEST_F(ApiServerTest, SocketIsGroupReadableOnlyAndASecondServerIsRefused) {
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);

  ApiServerOptions options;
  options.socket_path = socket_;
  auto second = ApiServer::Start(options, store_.get(), &hooks_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Get("/healthz").code, 200);

  server_->Stop();
  EXPECT_FALSE(std::filesystem::exists(socket_));
  server_->Stop();
}

TEST_F(ApiServerTest, ConcurrentClientsAreAllAnswered) {
  std::vector<std::thread> clients;
  std::atomic<int> created{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      json claim = json::parse(kClaim);
      claim["metadata"]["name"] = "c" + std::to_string(i);
      if (Post(kClaims, claim.dump()).code == 201) ++created;
      for (int j = 0; j < 5; ++j) {
        Patch(kClaims + "/c" + std::to_string(i),
              R"({"metadata":{"labels":{"n":")" + std::to_string(j) + R"("}}})");
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(created, 8);
  json list = Get(kClaims).Json();
  ASSERT_EQ(list["items"].size(), 8u);
  for (const json& item : list["items"]) EXPECT_EQ(item["metadata"]["labels"]["n"], "4");
}

// ---- Status objects

TEST(StatusObjectTest, CodesAndReasons) {
  struct Case {
    Status status;
    int code;
    const char* reason;
  };
  for (const Case& c :
       {Case{Status::Invalid("x"), 422, "Invalid"}, Case{Status::NotFound("x"), 404, "NotFound"},
        Case{Status::AlreadyExists("x"), 409, "AlreadyExists"},
        Case{Status::Conflict("x"), 409, "Conflict"},
        Case{Status::Forbidden("x"), 403, "Forbidden"},
        Case{Status::Unavailable("x"), 503, "ServiceUnavailable"},
        Case{Status::IOError("x"), 500, "InternalError"},
        Case{Status::Internal("x"), 500, "InternalError"}}) {
    json object = FailureObject(c.status, StatusDetails{"n", "", "k", {}});
    EXPECT_EQ(object["code"], c.code);
    EXPECT_EQ(object["reason"], c.reason);
    EXPECT_EQ(object["message"], "x");
    EXPECT_EQ(object["details"], (json{{"name", "n"}, {"kind", "k"}}));
    EXPECT_EQ(object["status"], "Failure");
    EXPECT_EQ(object["kind"], "Status");
  }
  EXPECT_STREQ(ReasonForHttpCode(400), "BadRequest");
  EXPECT_STREQ(ReasonForHttpCode(405), "MethodNotAllowed");
  EXPECT_STREQ(ReasonForHttpCode(413), "RequestEntityTooLarge");
  EXPECT_STREQ(ReasonForHttpCode(415), "UnsupportedMediaType");
}

TEST(StatusObjectTest, InvalidCarriesCauses) {
  yaml::ErrorList errors = {
      yaml::RequiredError(yaml::FieldPath().Child("spec").Child("accessModes"))};
  json object = FailureObject(422, kReasonInvalid, "m",
                              StatusDetails{"d", "", "PersistentVolumeClaim", errors});
  EXPECT_EQ(
      object["details"]["causes"],
      json::parse(
          R"([{"reason":"FieldValueRequired","message":"Required value","field":"spec.accessModes"}])"));
  EXPECT_EQ(SuccessObject()["status"], "Success");
  EXPECT_EQ(SuccessObject()["code"], 200);
}

}  // namespace
}  // namespace claimfs::api
