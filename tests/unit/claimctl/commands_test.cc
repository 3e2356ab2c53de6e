// The commands end to end against a fake claimfsd on a real Unix socket: which requests they
// send, what they print, and their exit codes.
#include "claimctl/commands.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "claimctl/apply.h"
#include "unit/claimctl/fake_server.h"

namespace claimfs::claimctl {
namespace {

using nlohmann::json;
using testing::FakeRequest;
using testing::FakeResponse;
using testing::FakeServer;
using testing::TempDir;

struct Ran {
  int code;
  std::string out;
  std::string err;
};

template <typename Fn>
Ran Capture(Fn fn, const std::string& input = "") {
  std::istringstream in(input);
  std::ostringstream out, err;
  Io io{in, out, err};
  int code = fn(io);
  return {code, out.str(), err.str()};
}

FakeResponse NotFound(const std::string& resource, const std::string& name) {
  std::string message = resource + " \"" + name + "\" not found";
  return {404, json{{"kind", "Status"},
                    {"apiVersion", "v1"},
                    {"status", "Failure"},
                    {"message", message},
                    {"reason", "NotFound"},
                    {"code", 404}}
                   .dump()};
}

FakeResponse Ok(const json& body, int status = 200) { return {status, body.dump()}; }

json Pvc(const std::string& name, const std::string& phase, const std::string& volume = "") {
  json pvc = {{"apiVersion", "v1"},
              {"kind", "PersistentVolumeClaim"},
              {"metadata",
               {{"name", name},
                {"namespace", "default"},
                {"uid", "uid-" + name},
                {"creationTimestamp", "2026-01-01T00:00:00Z"}}},
              {"spec",
               {{"accessModes", {"ReadWriteOnce"}},
                {"resources", {{"requests", {{"storage", "1Gi"}}}}},
                {"storageClassName", "local"},
                {"volumeMode", "Filesystem"}}},
              {"status", {{"phase", phase}}}};
  if (!volume.empty()) {
    pvc["spec"]["volumeName"] = volume;
    pvc["status"]["capacity"] = {{"storage", "1Gi"}};
    pvc["status"]["accessModes"] = {"ReadWriteOnce"};
  }
  return pvc;
}

json List(const std::string& kind, std::vector<json> items) {
  return {{"apiVersion", "v1"}, {"kind", kind}, {"items", items}};
}

class CommandsTest : public ::testing::Test {
 protected:
  void Serve(FakeServer::Handler handler) {
    server_ = std::make_unique<FakeServer>(socket_, std::move(handler));
  }
  GlobalOptions Global() {
    GlobalOptions g;
    g.socket = socket_;
    return g;
  }
  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  TempDir dir_;
  std::string socket_ = dir_.path() + "/claimfsd.sock";
  std::unique_ptr<FakeServer> server_;
};

constexpr char kPvcYaml[] = R"(apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
  storageClassName: local
)";

TEST_F(CommandsTest, DaemonAbsent) {
  GetOptions get;
  get.args = {"pvc"};
  Ran r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: cannot connect to claimfsd at " + socket_ +
                       ": No such file or directory (is claimfsd running?)\n");

  ApplyOptions apply;
  apply.files = {WriteFile("pvc.yaml", std::string(kPvcYaml) + "---\n" + kPvcYaml)};
  Ran a = Capture([&](Io& io) { return RunApply(Global(), apply, io); });
  EXPECT_EQ(a.code, 1);
  EXPECT_EQ(a.err, "error: cannot connect to claimfsd at " + socket_ +
                       ": No such file or directory (is claimfsd running?)\n");
}

TEST_F(CommandsTest, GetListsClaimsAsATable) {
  Serve([](const FakeRequest& req) {
    if (req.target == "/api/v1/namespaces/default/persistentvolumeclaims") {
      return Ok(List("PersistentVolumeClaimList",
                     {Pvc("logs", "Pending"), Pvc("data", "Bound", "pvc-uid-data")}));
    }
    return NotFound("x", req.target);
  });
  GetOptions get;
  get.args = {"pvc"};
  Ran r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string header, first, second;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_EQ(header, "NAME   STATUS    VOLUME         CAPACITY   ACCESS MODES   STORAGECLASS   AGE");
  EXPECT_EQ(first.substr(0, 73),
            "data   Bound     pvc-uid-data   1Gi        RWO            local          ");
  EXPECT_EQ(second.substr(0, 73),
            "logs   Pending                                            local          ");
  EXPECT_EQ(r.err, "");
}

TEST_F(CommandsTest, GetByNameReportsNotFoundLikeKubectl) {
  Serve([](const FakeRequest& req) {
    if (req.target == "/api/v1/namespaces/default/persistentvolumeclaims/data") {
      return Ok(Pvc("data", "Bound", "pv-1"));
    }
    return NotFound("persistentvolumeclaims", "x");
  });
  GetOptions get;
  get.args = {"pvc", "data", "x"};
  get.output = "name";
  Ran r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "persistentvolumeclaim/data\n");
  EXPECT_EQ(r.err, "Error from server (NotFound): persistentvolumeclaims \"x\" not found\n");
}

TEST_F(CommandsTest, GetJsonPathOfOneObject) {
  Serve([](const FakeRequest&) { return Ok(Pvc("data", "Bound", "pvc-1")); });
  GetOptions get;
  get.args = {"pvc/data"};
  get.output = "jsonpath={.spec.volumeName}";
  Ran r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "pvc-1");
  get.output = "jsonpath={.items[?(@.x)]}";
  Ran bad = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("unsupported jsonpath expression"), std::string::npos) << bad.err;
}

TEST_F(CommandsTest, GetNothingFound) {
  Serve([](const FakeRequest&) { return Ok(List("List", {})); });
  GetOptions get;
  get.args = {"pvc"};
  Ran r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "No resources found in default namespace.\n");
  get.args = {"pv"};
  r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.err, "No resources found\n");
}

TEST_F(CommandsTest, GetAllNamespacesJsonAndSelector) {
  Serve([](const FakeRequest& req) {
    if (req.target == "/api/v1/persistentvolumeclaims") {
      json a = Pvc("a", "Bound", "v");
      a["metadata"]["labels"] = {{"app", "db"}};
      return Ok(List("PersistentVolumeClaimList", {a, Pvc("b", "Pending")}));
    }
    return NotFound("x", "y");
  });
  GetOptions get;
  get.args = {"persistentvolumeclaims"};
  get.all_namespaces = true;
  get.selector = "app=db";
  get.output = "json";
  Ran r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["kind"], "List");
  ASSERT_EQ(doc["items"].size(), 1u);
  EXPECT_EQ(doc["items"][0]["metadata"]["name"], "a");
}

TEST_F(CommandsTest, ApplyCreatesWithLastAppliedThenIsUnchangedThenConfigured) {
  std::mutex mu;
  json stored;  // the live object; null until created
  Serve([&](const FakeRequest& req) {
    std::lock_guard<std::mutex> lock(mu);
    const std::string path = "/api/v1/namespaces/default/persistentvolumeclaims/data";
    if (req.method == "GET" && req.target == path) {
      if (stored.is_null()) return NotFound("persistentvolumeclaims", "data");
      return Ok(stored);
    }
    if (req.method == "POST" && req.target == "/api/v1/namespaces/default/persistentvolumeclaims") {
      stored = json::parse(req.body);
      stored["metadata"]["uid"] = "u1";
      stored["spec"]["volumeMode"] = "Filesystem";
      stored["status"] = {{"phase", "Pending"}};
      return Ok(stored, 201);
    }
    if (req.method == "PATCH" && req.target == path &&
        req.content_type == "application/merge-patch+json") {
      stored.merge_patch(json::parse(req.body));
      return Ok(stored);
    }
    return FakeResponse{400, "{}"};
  });
  ApplyOptions apply;
  apply.files = {WriteFile("pvc.yaml", kPvcYaml)};
  Ran created = Capture([&](Io& io) { return RunApply(Global(), apply, io); });
  EXPECT_EQ(created.code, 0) << created.err;
  EXPECT_EQ(created.out, "persistentvolumeclaim/data created\n");
  ASSERT_FALSE(stored.is_null());
  EXPECT_EQ(stored["metadata"]["namespace"], "default");
  EXPECT_FALSE(stored.contains("status") && stored["status"].contains("capacity"));
  json last_applied =
      json::parse(stored["metadata"]["annotations"][kLastAppliedAnnotation].get<std::string>());
  EXPECT_EQ(last_applied["spec"]["resources"]["requests"]["storage"], "1Gi");
  EXPECT_FALSE(last_applied.contains("status"));
  EXPECT_FALSE(last_applied["spec"].contains("volumeMode"));  // as written, not defaulted

  Ran again = Capture([&](Io& io) { return RunApply(Global(), apply, io); });
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, "persistentvolumeclaim/data unchanged\n");

  std::string grown = kPvcYaml;
  grown.replace(grown.find("1Gi"), 3, "2Gi");
  apply.files = {WriteFile("pvc.yaml", grown)};
  Ran configured = Capture([&](Io& io) { return RunApply(Global(), apply, io); });
  EXPECT_EQ(configured.code, 0) << configured.err;
  EXPECT_EQ(configured.out, "persistentvolumeclaim/data configured\n");
  EXPECT_EQ(stored["spec"]["resources"]["requests"]["storage"], "2Gi");
  EXPECT_EQ(stored["spec"]["volumeMode"], "Filesystem");  // the server's default survives
  auto requests = server_->requests();
  EXPECT_EQ(std::count_if(requests.begin(), requests.end(),
                          [](const FakeRequest& r) { return r.method == "PATCH"; }),
            1);
}

TEST_F(CommandsTest, ApplyReportsEachFailureAndContinues) {
  Serve([](const FakeRequest& req) {
    if (req.method == "GET") return NotFound("persistentvolumeclaims", "any");
    json body = json::parse(req.body);
    if (body["metadata"]["name"] == "first") {
      return FakeResponse{422, json{{"kind", "Status"},
                                    {"status", "Failure"},
                                    {"reason", "Invalid"},
                                    {"code", 422},
                                    {"message",
                                     "PersistentVolumeClaim \"first\" is invalid: spec: Forbidden: "
                                     "no"}}
                                   .dump()};
    }
    return Ok(body, 201);
  });
  std::string two = kPvcYaml;
  two.replace(two.find("name: data"), 10, "name: first");
  two += std::string("---\n") + kPvcYaml;
  ApplyOptions apply;
  apply.files = {WriteFile("two.yaml", two)};
  apply.dry_run = "server";
  Ran r = Capture([&](Io& io) { return RunApply(Global(), apply, io); });
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "The PersistentVolumeClaim \"first\" is invalid: spec: Forbidden: no\n");
  EXPECT_EQ(r.out, "persistentvolumeclaim/data created (server dry run)\n");
  for (const FakeRequest& req : server_->requests()) {
    if (req.method == "POST") {
      EXPECT_NE(req.target.find("?dryRun=All"), std::string::npos);
    }
  }
}

TEST_F(CommandsTest, ApplyRefusesNamespaceMismatch) {
  std::string yaml = kPvcYaml;
  yaml.replace(yaml.find("  name: data"), 12, "  name: data\n  namespace: team-a");
  ApplyOptions apply;
  apply.files = {WriteFile("pvc.yaml", yaml)};
  GlobalOptions global = Global();
  global.namespace_ = "team-b";
  global.namespace_explicit = true;
  Ran r = Capture([&](Io& io) { return RunApply(global, apply, io); });
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("the namespace from the provided object \"team-a\" does not match the "
                       "namespace \"team-b\""),
            std::string::npos)
      << r.err;
}

TEST_F(CommandsTest, ApplyClientDryRunNeedsNoDaemon) {
  ApplyOptions apply;
  apply.files = {"-"};
  apply.dry_run = "client";
  Ran r = Capture([&](Io& io) { return RunApply(Global(), apply, io); }, kPvcYaml);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "persistentvolumeclaim/data created (dry run)\n");
}

TEST_F(CommandsTest, DeleteWaitsUntilGone) {
  std::atomic<int> gets{0};
  Serve([&](const FakeRequest& req) {
    if (req.method == "DELETE") {
      json pvc = Pvc("data", "Bound", "v");
      pvc["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z";
      return Ok(pvc);
    }
    if (++gets < 3) return Ok(Pvc("data", "Bound", "v"));
    return NotFound("persistentvolumeclaims", "data");
  });
  DeleteOptions del;
  del.args = {"pvc", "data"};
  Ran r = Capture([&](Io& io) { return RunDelete(Global(), del, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "persistentvolumeclaim \"data\" deleted\n");
  EXPECT_EQ(gets.load(), 3);
}

TEST_F(CommandsTest, DeleteTimesOutWhileTerminating) {
  Serve([](const FakeRequest&) { return Ok(Pvc("data", "Bound", "v")); });
  DeleteOptions del;
  del.args = {"pvc/data"};
  del.timeout = "300ms";
  Ran r = Capture([&](Io& io) { return RunDelete(Global(), del, io); });
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "persistentvolumeclaim \"data\" deleted\n");
  EXPECT_EQ(r.err, "error: timed out waiting for the condition on persistentvolumeclaims/data\n");
}

TEST_F(CommandsTest, DeleteNoWaitAndIgnoreNotFound) {
  Serve([](const FakeRequest& req) {
    if (req.target.find("/storageclasses/gone") != std::string::npos) {
      return NotFound("storageclasses.storage.k8s.io", "gone");
    }
    return Ok(json{{"metadata", {{"name", "local"}}}});
  });
  DeleteOptions del;
  del.args = {"sc", "gone", "local"};
  del.wait = false;
  del.ignore_not_found = true;
  Ran r = Capture([&](Io& io) { return RunDelete(Global(), del, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "storageclass.storage.k8s.io \"local\" deleted\n");
  for (const FakeRequest& req : server_->requests()) EXPECT_EQ(req.method, "DELETE");

  del.ignore_not_found = false;
  Ran strict = Capture([&](Io& io) { return RunDelete(Global(), del, io); });
  EXPECT_EQ(strict.code, 1);
  EXPECT_EQ(strict.err,
            "Error from server (NotFound): storageclasses.storage.k8s.io \"gone\" not found\n");
}

TEST_F(CommandsTest, PatchSendsTheTypeAndReportsChange) {
  std::mutex mu;
  json stored = Pvc("data", "Bound", "v");
  std::string last_type;
  Serve([&](const FakeRequest& req) {
    std::lock_guard<std::mutex> lock(mu);
    if (req.method == "PATCH") {
      last_type = req.content_type;
      json before = stored;
      stored.merge_patch(json::parse(req.body));
      if (stored != before) {
        stored["metadata"]["resourceVersion"] = "2";
      }
    }
    return Ok(stored);
  });
  PatchOptions patch;
  patch.args = {"pvc", "data"};
  patch.patch = R"({"spec":{"resources":{"requests":{"storage":"2Gi"}}}})";
  patch.type = "merge";
  Ran r = Capture([&](Io& io) { return RunPatch(Global(), patch, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "persistentvolumeclaim/data patched\n");
  EXPECT_EQ(last_type, "application/merge-patch+json");
  Ran same = Capture([&](Io& io) { return RunPatch(Global(), patch, io); });
  EXPECT_EQ(same.out, "persistentvolumeclaim/data patched (no change)\n");

  patch.patch = "{not json";
  Ran bad = Capture([&](Io& io) { return RunPatch(Global(), patch, io); });
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(bad.err.rfind("error: unable to parse \"{not json\": yaml: line 1 column ", 0), 0u)
      << bad.err;
}

// kubectl patch -p takes YAML as well as JSON; claimctl refused anything but JSON.
TEST_F(CommandsTest, PatchAcceptsAYamlBody) {
  std::mutex mu;
  std::vector<json> bodies;
  Serve([&](const FakeRequest& req) {
    std::lock_guard<std::mutex> lock(mu);
    if (req.method == "PATCH") bodies.push_back(json::parse(req.body));
    return Ok(Pvc("data", "Bound", "v"));
  });
  const json want = {{"spec", {{"resources", {{"requests", {{"storage", "3Gi"}}}}}}}};
  struct Case {
    std::string type;
    std::string patch;
    json want;
  } cases[] = {
      {"strategic", "spec:\n  resources:\n    requests:\n      storage: 3Gi\n", want},
      {"merge", "spec: {resources: {requests: {storage: 3Gi}}}", want},
      {"merge",
       "metadata: {labels: {tier: null, replicas: '3', on: yes}}",
       {{"metadata", {{"labels", {{"tier", nullptr}, {"replicas", "3"}, {"on", "yes"}}}}}}},
      {"json", "- op: replace\n  path: /spec/resources/requests/storage\n  value: 3Gi\n",
       json::array(
           {{{"op", "replace"}, {"path", "/spec/resources/requests/storage"}, {"value", "3Gi"}}})},
  };
  for (const Case& c : cases) {
    PatchOptions patch;
    patch.args = {"pvc/data"};
    patch.type = c.type;
    patch.patch = c.patch;
    Ran r = Capture([&](Io& io) { return RunPatch(Global(), patch, io); });
    EXPECT_EQ(r.code, 0) << c.patch << ": " << r.err;
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_FALSE(bodies.empty()) << c.patch;
    EXPECT_EQ(bodies.back(), c.want) << c.patch;
  }
  struct Bad {
    std::string type;
    std::string patch;
    std::string err_prefix;
  } bad[] = {
      {"merge", "- a\n- b\n",
       "error: unable to parse \"- a\n- b\n\": a merge patch must be an object"},
      {"json", "spec: {}", "error: unable to parse \"spec: {}\": a json patch must be a list"},
      {"merge", "a: 1\na: 2\n", "error: unable to parse \"a: 1\na: 2\n\": yaml: line 2 column 1: "},
      {"merge", "a: 1\n---\nb: 2\n", "error: unable to parse \"a: 1\n---\nb: 2\n\": yaml: "},
      {"merge", "a: [1, 2", "error: unable to parse \"a: [1, 2\": yaml: line "},
  };
  size_t sent = bodies.size();
  for (const Bad& b : bad) {
    PatchOptions patch;
    patch.args = {"pvc/data"};
    patch.type = b.type;
    patch.patch = b.patch;
    Ran r = Capture([&](Io& io) { return RunPatch(Global(), patch, io); });
    EXPECT_EQ(r.code, 1) << b.patch;
    EXPECT_EQ(r.err.rfind(b.err_prefix, 0), 0u) << r.err;
  }
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(bodies.size(), sent) << "a refused patch reached the daemon";
}

// kubectl delete prints "No resources found" (on stdout) when nothing matched; claimctl printed
// nothing at all.
TEST_F(CommandsTest, DeleteAllWithNothingToDeleteSaysNoResourcesFound) {
  Serve([](const FakeRequest& req) {
    if (req.method == "GET") return Ok(List("List", {}));
    return NotFound("persistentvolumeclaims", "gone");
  });
  DeleteOptions del;
  del.args = {"pvc"};
  del.all = true;
  Ran r = Capture([&](Io& io) { return RunDelete(Global(), del, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "No resources found\n");
  EXPECT_EQ(r.err, "");

  del.all = false;
  del.args = {"pvc", "gone"};
  del.ignore_not_found = true;
  Ran ignored = Capture([&](Io& io) { return RunDelete(Global(), del, io); });
  EXPECT_EQ(ignored.code, 0) << ignored.err;
  EXPECT_EQ(ignored.out, "No resources found\n");

  del.ignore_not_found = false;
  Ran failed = Capture([&](Io& io) { return RunDelete(Global(), del, io); });
  EXPECT_EQ(failed.code, 1);
  EXPECT_EQ(failed.out, "");
}

// kubectl's -o yaml quotes RFC 3339 times (YAML 1.1 readers would take them for timestamps);
// claimctl left creationTimestamp plain.
TEST_F(CommandsTest, GetYamlQuotesCreationTimestamp) {
  Serve([](const FakeRequest&) { return Ok(Pvc("data", "Bound", "v")); });
  GetOptions get;
  get.args = {"pvc", "data"};
  get.output = "yaml";
  Ran r = Capture([&](Io& io) { return RunGet(Global(), get, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  creationTimestamp: \"2026-01-01T00:00:00Z\"\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  name: data\n"), std::string::npos) << r.out;
}

TEST_F(CommandsTest, WaitForJsonPathAndTimeout) {
  std::atomic<int> gets{0};
  Serve([&](const FakeRequest&) {
    return Ok(++gets < 3 ? Pvc("data", "Pending") : Pvc("data", "Bound", "v"));
  });
  WaitOptions wait;
  wait.args = {"pvc/data"};
  wait.for_condition = "jsonpath={.status.phase}=Bound";
  Ran r = Capture([&](Io& io) { return RunWait(Global(), wait, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "persistentvolumeclaim/data condition met\n");

  wait.for_condition = "jsonpath={.status.phase}=Lost";
  wait.timeout = "300ms";
  Ran timeout = Capture([&](Io& io) { return RunWait(Global(), wait, io); });
  EXPECT_EQ(timeout.code, 1);
  EXPECT_EQ(timeout.err,
            "error: timed out waiting for the condition on persistentvolumeclaims/data\n");
}

TEST_F(CommandsTest, WaitForDelete) {
  std::atomic<int> gets{0};
  Serve([&](const FakeRequest&) {
    return ++gets < 2 ? Ok(Pvc("data", "Bound", "v")) : NotFound("persistentvolumeclaims", "data");
  });
  WaitOptions wait;
  wait.args = {"pvc", "data"};
  wait.for_condition = "delete";
  Ran r = Capture([&](Io& io) { return RunWait(Global(), wait, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "persistentvolumeclaim/data condition met\n");
}

// The daemon side of `use`: the claim, a lease, and the volume's stats.
FakeResponse UseHandler(const FakeRequest& req) {
  const std::string leases =
      "/apis/claimfs.io/v1/namespaces/default/persistentvolumeclaims/data/leases";
  if (req.method == "GET" &&
      req.target == "/api/v1/namespaces/default/persistentvolumeclaims/data") {
    return Ok(Pvc("data", "Bound", "pvc-1"));
  }
  if (req.method == "POST" && req.target == leases) {
    json body = json::parse(req.body);
    return Ok(json{{"id", "lease-7"},
                   {"claim", "default/data"},
                   {"holder", body["holder"]},
                   {"pid", body["pid"]},
                   {"acquired", "2026-01-01T00:00:00Z"}},
              201);
  }
  if (req.method == "DELETE" && req.target == leases + "/lease-7") return Ok(json::object());
  if (req.target == "/apis/claimfs.io/v1/volumestats") {
    return Ok(json{{"items",
                    {{{"volume", "pvc-1"},
                      {"claim", "default/data"},
                      {"mountPath", "/m/data"},
                      {"capacityBytes", 1024},
                      {"usedBytes", 0},
                      {"availableBytes", 1024},
                      {"usedInodes", 1},
                      {"quotaRejections", 0},
                      {"readOnly", false}}}}});
  }
  return NotFound("x", req.target);
}

TEST_F(CommandsTest, UseRunsTheCommandUnderALease) {
  Serve(UseHandler);
  UseOptions use;
  use.claim = "data";
  std::string pid_file = ::testing::TempDir() + "/use-command.pid";
  use.command = {"sh", "-c",
                 "test \"$CLAIMFS_MOUNT\" = /m/data && test \"$PWD\" = \"$0\" && "
                 "echo $$ > \"$1\" && exit 7",
                 std::filesystem::current_path().string(), pid_file};
  Ran r = Capture([&](Io& io) { return RunUse(Global(), use, io); });
  EXPECT_EQ(r.code, 7) << r.err;
  auto requests = server_->requests();
  ASSERT_GE(requests.size(), 4u);
  const FakeRequest* post = nullptr;
  for (const FakeRequest& req : requests) {
    if (req.method == "POST") post = &req;
  }
  ASSERT_NE(post, nullptr);
  json body = json::parse(post->body);
  EXPECT_EQ(body["holder"], "claimctl use");
  // The lease is the command's: it names the command's pid, not claimctl's.
  std::ifstream pid_in(pid_file);
  int command_pid = 0;
  pid_in >> command_pid;
  EXPECT_GT(command_pid, 0);
  EXPECT_EQ(body["pid"], command_pid);
  EXPECT_NE(body["pid"], getpid());
  EXPECT_EQ(requests.back().method, "DELETE");  // the lease is released after the command
}

TEST_F(CommandsTest, UseReportsSignalsAndMissingCommands) {
  Serve(UseHandler);
  UseOptions use;
  use.claim = "pvc/data";
  use.command = {"sh", "-c", "kill -TERM $$"};
  Ran killed = Capture([&](Io& io) { return RunUse(Global(), use, io); });
  EXPECT_EQ(killed.code, 128 + SIGTERM) << killed.err;

  use.command = {"/nonexistent/command"};
  Ran missing = Capture([&](Io& io) { return RunUse(Global(), use, io); });
  EXPECT_EQ(missing.code, 127);
  EXPECT_EQ(missing.err, "error: cannot run /nonexistent/command: No such file or directory\n");
  EXPECT_EQ(server_->requests().back().method, "DELETE");
}

TEST_F(CommandsTest, UseRefusesAnUnmountedClaim) {
  Serve([](const FakeRequest& req) {
    if (req.target == "/apis/claimfs.io/v1/volumestats") return Ok(json{{"items", json::array()}});
    return UseHandler(req);
  });
  UseOptions use;
  use.claim = "data";
  use.command = {"true"};
  Ran r = Capture([&](Io& io) { return RunUse(Global(), use, io); });
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is not mounted"), std::string::npos) << r.err;
  EXPECT_EQ(server_->requests().back().method, "DELETE");
}

TEST_F(CommandsTest, DfFiltersByNamespace) {
  Serve([](const FakeRequest&) {
    return Ok(json{{"items",
                    {{{"volume", "v2"},
                      {"claim", "team-a/x"},
                      {"mountPath", "/m/x"},
                      {"capacityBytes", 2048},
                      {"usedBytes", 1024},
                      {"availableBytes", 1024}},
                     {{"volume", "v1"},
                      {"claim", "default/data"},
                      {"mountPath", "/m/data"},
                      {"capacityBytes", 67108864},
                      {"usedBytes", 0},
                      {"availableBytes", 67108864}}}}});
  });
  DfOptions df;
  Ran r = Capture([&](Io& io) { return RunDf(Global(), df, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAMESPACE   CLAIM   VOLUME   CAPACITY   USED   AVAIL   USE%   MOUNTED ON\n"
            "default     data    v1       64M        0      64M     0%     /m/data\n");
  df.all_namespaces = true;
  Ran all = Capture([&](Io& io) { return RunDf(Global(), df, io); });
  EXPECT_NE(all.out.find("team-a      x       v2       2.0K       1.0K   1.0K    50%    /m/x\n"),
            std::string::npos)
      << all.out;
}

// The selector names the claim's uid, as kubectl describe's does: events of a deleted claim of the
// same name are not this claim's.
TEST_F(CommandsTest, DescribeFetchesEvents) {
  Serve([](const FakeRequest& req) {
    if (req.target.rfind("/api/v1/events?", 0) == 0) {
      return Ok(List(
          "EventList",
          {json{{"apiVersion", "v1"},
                {"kind", "Event"},
                {"metadata", {{"name", "data.1"}, {"namespace", "default"}}},
                {"involvedObject",
                 {{"kind", "PersistentVolumeClaim"}, {"name", "data"}, {"namespace", "default"}}},
                {"reason", "ProvisioningSucceeded"},
                {"message", "Successfully provisioned volume pvc-1"},
                {"type", "Normal"},
                {"source", {{"component", "persistentvolume-controller"}}},
                {"count", 1},
                {"firstTimestamp", "2026-01-01T00:00:00Z"},
                {"lastTimestamp", "2026-01-01T00:00:00Z"}}}));
    }
    if (req.target == "/apis/claimfs.io/v1/volumestats") return Ok(json{{"items", json::array()}});
    return Ok(Pvc("data", "Bound", "pvc-1"));
  });
  DescribeOptions describe;
  describe.args = {"pvc", "data"};
  Ran r = Capture([&](Io& io) { return RunDescribe(Global(), describe, io); });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Name:          data\nNamespace:     default\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("  Normal  ProvisioningSucceeded  "), std::string::npos) << r.out;
  bool asked = false;
  for (const FakeRequest& req : server_->requests()) {
    if (req.target ==
        "/api/v1/events?fieldSelector=involvedObject.kind%3DPersistentVolumeClaim%2C"
        "involvedObject.name%3Ddata%2CinvolvedObject.namespace%3Ddefault%2C"
        "involvedObject.uid%3Duid-data") {
      asked = true;
    }
  }
  EXPECT_TRUE(asked);
}

}  // namespace
}  // namespace claimfs::claimctl
