#include "api/kube_api.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/kube_credentials.h"

namespace claimfs::api::internal {
namespace {

using nlohmann::json;

TEST(KubeTokenTest, Table) {
  const std::string secret(64, 'a');
  const std::string root = KubeTokenFor(secret, 0);
  const std::string alice = KubeTokenFor(secret, 1002);
  struct Case {
    std::string token;
    std::optional<uid_t> uid;
  };
  std::string flipped = alice;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  std::string relabelled = "claimfs-0" + alice.substr(alice.find('.'));  // alice's MAC, uid 0
  const Case cases[] = {
      {root, 0},
      {alice, 1002},
      {flipped, std::nullopt},
      {relabelled, std::nullopt},
      {KubeTokenFor(std::string(64, 'b'), 0), std::nullopt},  // another daemon's
      {"", std::nullopt},
      {"claimfs-", std::nullopt},
      {"claimfs-0", std::nullopt},
      {"claimfs-.abc", std::nullopt},
      {"claimfs--1.abc", std::nullopt},
      {"claimfs-4294967295." + std::string(64, '0'), std::nullopt},
      {"claimfs-99999999999." + std::string(64, '0'), std::nullopt},
      {"Claimfs-0" + root.substr(root.find('.')), std::nullopt},
      {root + "0", std::nullopt},
      {std::string(10000, 'x'), std::nullopt},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(VerifyKubeToken(secret, c.token), c.uid) << c.token.substr(0, 80);
  }
}

TEST(StrategicMergePatchTest, Table) {
  struct Case {
    const char* document;
    const char* patch;
    const char* expected;
  };
  const Case cases[] = {
      {R"({"a":1})", R"({"b":2})", R"({"a":1,"b":2})"},
      {R"({"a":{"x":1,"y":2}})", R"({"a":{"x":null}})", R"({"a":{"y":2}})"},
      // kubectl apply's directives leave no trace.
      {R"({"spec":{"accessModes":["ReadWriteOnce"]}})",
       R"({"$setElementOrder/accessModes":["ReadWriteMany"],"spec":{"accessModes":["ReadWriteMany"],"$retainKeys":["accessModes"]}})",
       R"({"spec":{"accessModes":["ReadWriteMany"]}})"},
      // Lists without a merge strategy are replaced...
      {R"({"spec":{"mountOptions":["ro","noatime"]}})", R"({"spec":{"mountOptions":["noexec"]}})",
       R"({"spec":{"mountOptions":["noexec"]}})"},
      // ... finalizers are merged, and removed with $deleteFromPrimitiveList.
      {R"({"metadata":{"finalizers":["a"]}})", R"({"metadata":{"finalizers":["b","a"]}})",
       R"({"metadata":{"finalizers":["a","b"]}})"},
      {R"({"metadata":{"finalizers":["a","b"]}})",
       R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}})",
       R"({"metadata":{"finalizers":["b"]}})"},
      {R"({"metadata":{"labels":{"a":"1"}}})",
       R"({"metadata":{"labels":{"$patch":"replace","b":"2"}}})",
       R"({"metadata":{"labels":{"b":"2"}}})"},
      {R"({"spec":{"hostPath":{"path":"/x"}}})", R"({"spec":{"hostPath":{"$patch":"delete"}}})",
       R"({"spec":{}})"},
      {R"({"a":1})", R"({"n":{"$retainKeys":["x"],"x":1}})", R"({"a":1,"n":{"x":1}})"},
  };
  for (const Case& c : cases) {
    json document = json::parse(c.document);
    ApplyStrategicMergePatch(&document, json::parse(c.patch));
    EXPECT_EQ(document, json::parse(c.expected)) << c.document << " + " << c.patch;
  }
}

http::Request TableRequest(std::string include = "") {
  http::Request request;
  request.method = "GET";
  request.headers["accept"] = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
  if (!include.empty()) request.query["includeObject"] = include;
  return request;
}

std::vector<std::string> ColumnNames(const json& table) {
  std::vector<std::string> names;
  for (const json& column : table["columnDefinitions"]) {
    if (column["priority"] == 0) names.push_back(column["name"]);
  }
  return names;
}

TEST(TableTest, VolumesHaveTheApiServersColumns) {
  json pv = {{"kind", "PersistentVolume"},
             {"apiVersion", "v1"},
             {"metadata",
              {{"name", "pv-hostpath"},
               {"creationTimestamp", "2020-01-01T00:00:00Z"},
               {"resourceVersion", "7"}}},
             {"spec",
              {{"capacity", {{"storage", "2Gi"}}},
               {"accessModes", {"ReadWriteMany", "ReadWriteOnce"}},
               {"persistentVolumeReclaimPolicy", "Delete"},
               {"storageClassName", "manual"},
               {"claimRef", {{"namespace", "default"}, {"name", "pvc-hostpath"}}}}},
             {"status", {{"phase", "Bound"}}}};
  json list = {{"kind", "PersistentVolumeList"},
               {"apiVersion", "v1"},
               {"metadata", {{"resourceVersion", "9"}}},
               {"items", {pv}}};
  http::Response response = ToTable(TableRequest(), http::Response::Json(200, list));
  json table = json::parse(response.body);
  EXPECT_EQ(table["kind"], "Table");
  EXPECT_EQ(table["apiVersion"], "meta.k8s.io/v1");
  EXPECT_EQ(table["metadata"]["resourceVersion"], "9");
  EXPECT_EQ(ColumnNames(table),
            (std::vector<std::string>{"Name", "Capacity", "Access Modes", "Reclaim Policy",
                                      "Status", "Claim", "StorageClass", "Reason", "Age"}));
  json cells = table["rows"][0]["cells"];
  EXPECT_EQ(cells[0], "pv-hostpath");
  EXPECT_EQ(cells[2], "RWO,RWX");  // Kubernetes' order, not the manifest's
  EXPECT_EQ(cells[5], "default/pvc-hostpath");
  EXPECT_EQ(cells[9], "<unset>");  // VolumeMode, -o wide
  EXPECT_EQ(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
  json full = json::parse(ToTable(TableRequest("Object"), http::Response::Json(200, list)).body);
  EXPECT_EQ(full["rows"][0]["object"], pv);
}

TEST(TableTest, ClaimsShowCapacityOnlyWhenBound) {
  json pending = {{"kind", "PersistentVolumeClaim"},
                  {"metadata", {{"name", "data"}, {"deletionTimestamp", "2020-01-01T00:00:00Z"}}},
                  {"spec", {{"storageClassName", "local"}}},
                  {"status", {{"phase", "Pending"}, {"capacity", {{"storage", "1Gi"}}}}}};
  json table = json::parse(ToTable(TableRequest(), http::Response::Json(200, pending)).body);
  EXPECT_EQ(ColumnNames(table), (std::vector<std::string>{"Name", "Status", "Volume", "Capacity",
                                                          "Access Modes", "StorageClass", "Age"}));
  json cells = table["rows"][0]["cells"];
  EXPECT_EQ(cells[1], "Terminating");
  EXPECT_EQ(cells[3], "");
}

TEST(TableTest, DefaultClassIsMarkedAndErrorsPassThrough) {
  json sc = {{"kind", "StorageClass"},
             {"metadata",
              {{"name", "local"},
               {"annotations", {{"storageclass.kubernetes.io/is-default-class", "true"}}}}},
             {"provisioner", "claimfs.io/local"}};
  json table = json::parse(ToTable(TableRequest(), http::Response::Json(200, sc)).body);
  EXPECT_EQ(table["rows"][0]["cells"][0], "local (default)");
  EXPECT_EQ(table["rows"][0]["cells"][2], "Delete");
  EXPECT_EQ(table["rows"][0]["cells"][3], "Immediate");
  EXPECT_EQ(table["rows"][0]["cells"][4], false);
  http::Response missing = http::Response::Json(404, json{{"kind", "Status"}});
  EXPECT_EQ(ToTable(TableRequest(), missing).body, missing.body);
  http::Response other =
      http::Response::Json(200, json{{"kind", "LeaseList"}, {"items", json::array()}});
  EXPECT_EQ(ToTable(TableRequest(), other).body, other.body);
}

TEST(TableTest, WantsTableOnlyWhenAsked) {
  EXPECT_TRUE(WantsTable(TableRequest()));
  http::Request plain;
  EXPECT_FALSE(WantsTable(plain));
  plain.headers["accept"] = "application/json";
  EXPECT_FALSE(WantsTable(plain));
}

TEST(WriteJournalTest, BetweenKeepsOrderAndBounds) {
  WriteJournal journal;
  for (int version : {3, 5, 8}) {
    journal.Record(json{{"kind", "PersistentVolumeClaim"},
                        {"metadata",
                         {{"namespace", "default"},
                          {"name", "data"},
                          {"resourceVersion", std::to_string(version)}}}});
  }
  journal.Record(json{{"kind", "PersistentVolumeClaim"}, {"metadata", {{"name", "no-version"}}}});
  std::vector<json> between = journal.Between("PersistentVolumeClaim", "default/data", 3, 8);
  ASSERT_EQ(between.size(), 1u);
  EXPECT_EQ(between[0]["metadata"]["resourceVersion"], "5");
  EXPECT_EQ(journal.Between("PersistentVolumeClaim", "default/data", 0, 100).size(), 3u);
  EXPECT_TRUE(journal.Between("PersistentVolume", "default/data", 0, 100).empty());
}

TEST(KubeconfigTest, EmbedsTheCaAndToken) {
  std::string text = KubeconfigYaml("https://127.0.0.1:6443", "CA", "claimfs-0.ab", "claimfs-root");
  EXPECT_NE(text.find("server: https://127.0.0.1:6443\n"), std::string::npos);
  EXPECT_NE(text.find("certificate-authority-data: Q0E=\n"), std::string::npos);
  EXPECT_NE(text.find("token: claimfs-0.ab\n"), std::string::npos);
  EXPECT_NE(text.find("current-context: claimfs\n"), std::string::npos);
}

}  // namespace
}  // namespace claimfs::api::internal
