#include "kube_api.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "claimfs/common/log.h"
#include "claimfs/model/kube_time.h"
#include "claimfs/model/objects.h"

namespace claimfs::api::internal {

using nlohmann::json;

namespace {

// ---- discovery

json Resource(const char* name, const char* singular, bool namespaced, const char* kind,
              std::vector<std::string> verbs, std::vector<std::string> short_names = {}) {
  json out{{"name", name},
           {"singularName", singular},
           {"namespaced", namespaced},
           {"kind", kind},
           {"verbs", verbs}};
  if (!short_names.empty()) out["shortNames"] = short_names;
  return out;
}

const std::vector<std::string> kObjectVerbs = {"create", "delete", "get",  "list",
                                               "patch",  "update", "watch"};
const std::vector<std::string> kStatusVerbs = {"get", "patch", "update"};

json CoreResources() {
  return json{
      {"kind", "APIResourceList"},
      {"groupVersion", "v1"},
      {"resources",
       {Resource("events", "event", true, "Event", {"get", "list", "watch"}, {"ev"}),
        Resource("persistentvolumeclaims", "persistentvolumeclaim", true, "PersistentVolumeClaim",
                 kObjectVerbs, {"pvc"}),
        Resource("persistentvolumeclaims/status", "", true, "PersistentVolumeClaim", kStatusVerbs),
        Resource("persistentvolumes", "persistentvolume", false, "PersistentVolume", kObjectVerbs,
                 {"pv"}),
        Resource("persistentvolumes/status", "", false, "PersistentVolume", kStatusVerbs)}}};
}

json StorageResources() {
  return json{
      {"kind", "APIResourceList"},
      {"apiVersion", "v1"},
      {"groupVersion", "storage.k8s.io/v1"},
      {"resources",
       {Resource("storageclasses", "storageclass", false, "StorageClass", kObjectVerbs, {"sc"})}}};
}

json StorageGroup() {
  json version{{"groupVersion", "storage.k8s.io/v1"}, {"version", "v1"}};
  return json{{"name", "storage.k8s.io"},
              {"versions", json::array({version})},
              {"preferredVersion", version}};
}

json EmptyList(const Context& context, const char* kind) {
  Result<std::string> version = context.store->ResourceVersion();
  return json{{"kind", kind},
              {"apiVersion", "v1"},
              {"metadata", {{"resourceVersion", version.ok() ? *version : "0"}}},
              {"items", json::array()}};
}

// ---- tables

std::string Str(const json& object, std::initializer_list<const char*> path) {
  const json* at = &object;
  for (const char* key : path) {
    if (!at->is_object()) return "";
    auto it = at->find(key);
    if (it == at->end()) return "";
    at = &*it;
  }
  return at->is_string() ? at->get<std::string>() : "";
}

const json& Sub(const json& object, std::initializer_list<const char*> path) {
  static const json kNull;
  const json* at = &object;
  for (const char* key : path) {
    if (!at->is_object()) return kNull;
    auto it = at->find(key);
    if (it == at->end()) return kNull;
    at = &*it;
  }
  return *at;
}

// kubectl's AGE cell for an RFC 3339 timestamp.
std::string Since(const std::string& timestamp) {
  return model::Age(timestamp, model::Clock::now());
}

// kubectl's ACCESS MODES cell (helper.GetAccessModesAsString) of a JSON list of modes.
std::string AccessModes(const json& modes) {
  std::vector<model::AccessMode> parsed;
  if (!modes.is_array()) return "";
  for (const json& mode : modes) {
    if (!mode.is_string()) continue;
    if (auto m = model::ParseAccessMode(mode.get<std::string>())) parsed.push_back(*m);
  }
  return model::AccessModesText(parsed);
}

json Column(const char* name, const char* type, const char* description, int priority = 0,
            const char* format = "") {
  return json{{"name", name},
              {"type", type},
              {"format", format},
              {"description", description},
              {"priority", priority}};
}

struct TableKind {
  json columns;
  std::function<json(const json& object)> cells;
};

std::string ClassOf(const json& object, const char* spec_field) {
  std::string annotation =
      Str(object, {"metadata", "annotations", "volume.beta.kubernetes.io/storage-class"});
  if (!annotation.empty()) return annotation;
  return Str(object, {"spec", spec_field});
}

std::string VolumeModeOf(const json& object) {
  std::string mode = Str(object, {"spec", "volumeMode"});
  return mode.empty() ? "<unset>" : mode;
}

const TableKind* TableFor(const std::string& kind) {
  static const TableKind kVolume{
      json::array(
          {Column("Name", "string", "Name must be unique within a namespace.", 0, "name"),
           Column("Capacity", "string",
                  "capacity is the description of the persistent volume's resources and capacity."),
           Column("Access Modes", "string",
                  "accessModes contains all ways the volume can be mounted."),
           Column("Reclaim Policy", "string",
                  "persistentVolumeReclaimPolicy defines what happens to a persistent volume when "
                  "released from its claim."),
           Column("Status", "string",
                  "phase indicates if a volume is available, bound to a claim, or released by a "
                  "claim."),
           Column("Claim", "string",
                  "claimRef is part of a bi-directional binding between PersistentVolume and "
                  "PersistentVolumeClaim."),
           Column("StorageClass", "string",
                  "storageClassName is the name of StorageClass to which this persistent volume "
                  "belongs."),
           Column("Reason", "string",
                  "reason is a brief CamelCase string that describes any failure."),
           Column("Age", "string",
                  "CreationTimestamp is a timestamp representing the server time when this object "
                  "was created."),
           Column("VolumeMode", "string",
                  "volumeMode defines if a volume is intended to be used with a formatted "
                  "filesystem or to remain in raw block state.",
                  1)}),
      [](const json& pv) {
        std::string claim;
        const json& ref = Sub(pv, {"spec", "claimRef"});
        if (ref.is_object()) claim = Str(ref, {"namespace"}) + "/" + Str(ref, {"name"});
        std::string status = Str(pv, {"status", "phase"});
        if (!Str(pv, {"metadata", "deletionTimestamp"}).empty()) status = "Terminating";
        return json::array({Str(pv, {"metadata", "name"}), Str(pv, {"spec", "capacity", "storage"}),
                            AccessModes(Sub(pv, {"spec", "accessModes"})),
                            Str(pv, {"spec", "persistentVolumeReclaimPolicy"}), status, claim,
                            ClassOf(pv, "storageClassName"), Str(pv, {"status", "reason"}),
                            Since(Str(pv, {"metadata", "creationTimestamp"})), VolumeModeOf(pv)});
      }};
  static const TableKind kClaim{
      json::array(
          {Column("Name", "string", "Name must be unique within a namespace.", 0, "name"),
           Column("Status", "string",
                  "phase represents the current phase of PersistentVolumeClaim."),
           Column(
               "Volume", "string",
               "volumeName is the binding reference to the PersistentVolume backing this claim."),
           Column("Capacity", "string",
                  "capacity represents the actual resources of the underlying volume."),
           Column("Access Modes", "string",
                  "accessModes contains the desired access modes the volume should have."),
           Column("StorageClass", "string",
                  "storageClassName is the name of the StorageClass required by the claim."),
           Column("Age", "string",
                  "CreationTimestamp is a timestamp representing the server time when this object "
                  "was created."),
           Column("VolumeMode", "string",
                  "volumeMode defines what type of volume is required by the claim.", 1)}),
      [](const json& pvc) {
        std::string status = Str(pvc, {"status", "phase"});
        if (!Str(pvc, {"metadata", "deletionTimestamp"}).empty()) status = "Terminating";
        std::string volume = Str(pvc, {"spec", "volumeName"});
        std::string capacity, modes;
        if (!volume.empty()) {
          capacity = Str(pvc, {"status", "capacity", "storage"});
          modes = AccessModes(Sub(pvc, {"status", "accessModes"}));
        }
        return json::array({Str(pvc, {"metadata", "name"}), status, volume, capacity, modes,
                            ClassOf(pvc, "storageClassName"),
                            Since(Str(pvc, {"metadata", "creationTimestamp"})), VolumeModeOf(pvc)});
      }};
  static const TableKind kClass{
      json::array(
          {Column("Name", "string", "Name must be unique within a namespace.", 0, "name"),
           Column("Provisioner", "string", "provisioner indicates the type of the provisioner."),
           Column("ReclaimPolicy", "string",
                  "reclaimPolicy controls the reclaimPolicy for dynamically provisioned "
                  "PersistentVolumes of this storage class."),
           Column("VolumeBindingMode", "string",
                  "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned "
                  "and bound."),
           Column("AllowVolumeExpansion", "string",
                  "allowVolumeExpansion shows whether the storage class allow volume expand."),
           Column("Age", "string",
                  "CreationTimestamp is a timestamp representing the server time when this object "
                  "was created.")}),
      [](const json& sc) {
        std::string name = Str(sc, {"metadata", "name"});
        const json& annotations = Sub(sc, {"metadata", "annotations"});
        for (const char* key : {"storageclass.kubernetes.io/is-default-class",
                                "storageclass.beta.kubernetes.io/is-default-class"}) {
          if (Str(annotations, {key}) == "true") {
            name += " (default)";
            break;
          }
        }
        std::string policy = Str(sc, {"reclaimPolicy"});
        std::string binding = Str(sc, {"volumeBindingMode"});
        const json& expansion = Sub(sc, {"allowVolumeExpansion"});
        return json::array({name, Str(sc, {"provisioner"}), policy.empty() ? "Delete" : policy,
                            binding.empty() ? "Immediate" : binding,
                            expansion.is_boolean() && expansion.get<bool>(),
                            Since(Str(sc, {"metadata", "creationTimestamp"}))});
      }};
  static const TableKind kEvent{
      json::array(
          {Column("Last Seen", "string",
                  "The time at which the most recent occurrence of this event was recorded."),
           Column("Type", "string",
                  "Type of this event (Normal, Warning), new types could be added in the future."),
           Column("Reason", "string",
                  "This should be a short, machine understandable string that gives the reason for "
                  "the transition into the object's current status."),
           Column("Object", "string", "The object that this event is about."),
           Column("Subobject", "string", "The subobject that this event is about.", 1),
           Column("Source", "string", "The component reporting this event.", 1),
           Column("Message", "string",
                  "A human-readable description of the status of this operation."),
           Column("First Seen", "string", "The time at which the event was first recorded.", 1),
           Column("Count", "string", "The number of times this event has occurred.", 1),
           Column("Name", "string", "Name must be unique within a namespace.", 1, "name")}),
      [](const json& ev) {
        std::string last = Str(ev, {"lastTimestamp"});
        std::string first = Str(ev, {"firstTimestamp"});
        if (last.empty()) last = first;
        const json& involved = Sub(ev, {"involvedObject"});
        std::string kind = Str(involved, {"kind"});
        std::transform(kind.begin(), kind.end(), kind.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        const json& count = Sub(ev, {"count"});
        return json::array({Since(last), Str(ev, {"type"}), Str(ev, {"reason"}),
                            kind + "/" + Str(involved, {"name"}), Str(involved, {"fieldPath"}),
                            Str(ev, {"source", "component"}), Str(ev, {"message"}), Since(first),
                            count.is_number() ? count : json(1), Str(ev, {"metadata", "name"})});
      }};
  if (kind == "PersistentVolume") return &kVolume;
  if (kind == "PersistentVolumeClaim") return &kClaim;
  if (kind == "StorageClass") return &kClass;
  if (kind == "Event") return &kEvent;
  return nullptr;
}

json RowObject(const http::Request& request, const json& object) {
  std::string include = request.Query("includeObject", "Metadata");
  if (include == "None") return nullptr;
  if (include == "Object") return object;
  return json{{"kind", "PartialObjectMetadata"},
              {"apiVersion", "meta.k8s.io/v1"},
              {"metadata", Sub(object, {"metadata"})}};
}

// ---- watch

struct Watched {
  std::string resource_version;
  json object;
};

std::map<std::string, Watched> Index(const json& list) {
  std::map<std::string, Watched> out;
  const json& items = Sub(list, {"items"});
  if (!items.is_array()) return out;
  std::string kind = Str(list, {"kind"});
  if (kind.size() > 4) kind.resize(kind.size() - 4);  // "...List"
  for (json item : items) {
    if (!item.contains("kind")) item["kind"] = kind;
    if (!item.contains("apiVersion")) item["apiVersion"] = Str(list, {"apiVersion"});
    std::string key = Str(item, {"metadata", "namespace"}) + "/" + Str(item, {"metadata", "name"});
    out[key] = Watched{Str(item, {"metadata", "resourceVersion"}), std::move(item)};
  }
  return out;
}

uint64_t Number(const std::string& text) {
  uint64_t out = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return out;
}

std::string Base64(const std::string& data) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(data[i]) << 16) |
                 (static_cast<unsigned char>(data[i + 1]) << 8) |
                 static_cast<unsigned char>(data[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  if (i + 1 == data.size()) {
    uint32_t v = static_cast<unsigned char>(data[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == data.size()) {
    uint32_t v = (static_cast<unsigned char>(data[i]) << 16) |
                 (static_cast<unsigned char>(data[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace

void AddKubeRoutes(http::Router* router, const Context* context) {
  const Context& c = *context;
  auto fixed = [router](const char* path, json body) {
    router->Add("GET", path,
                [body = std::move(body)](const http::Request&, const http::PathParams&) {
                  return http::Response::Json(200, body);
                });
  };
  fixed("/version", json{{"major", "1"},
                         {"minor", "28"},
                         {"gitVersion", kKubeGitVersion},
                         {"gitCommit", ""},
                         {"gitTreeState", "clean"},
                         {"buildDate", "2026-01-01T00:00:00Z"},
                         {"goVersion", ""},
                         {"compiler", "claimfs"},
                         {"platform", "linux/amd64"}});
  // Answered as an API server without aggregated discovery answers it: plain JSON whatever the
  // Accept header asks, which clients take as "fall back to the per-group documents".
  fixed("/api", json{{"kind", "APIVersions"},
                     {"versions", {"v1"}},
                     {"serverAddressByClientCIDRs",
                      {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", "127.0.0.1"}}}}});
  fixed("/api/v1", CoreResources());
  fixed("/apis", json{{"kind", "APIGroupList"},
                      {"apiVersion", "v1"},
                      {"groups", json::array({StorageGroup()})}});
  json group = StorageGroup();
  group["kind"] = "APIGroup";
  group["apiVersion"] = "v1";
  fixed("/apis/storage.k8s.io", group);
  fixed("/apis/storage.k8s.io/v1", StorageResources());
  // `describe pvc` lists the namespace's pods to find the claim's users: there are none.
  router->Add("GET", "/api/v1/namespaces/{namespace}/pods",
              [&c](const http::Request&, const http::PathParams&) {
                return http::Response::Json(200, EmptyList(c, "PodList"));
              });
  AddOpenApiRoutes(router);
  router->Add("GET", "/api/v1/pods", [&c](const http::Request&, const http::PathParams&) {
    return http::Response::Json(200, EmptyList(c, "PodList"));
  });
}

bool WantsTable(const http::Request& request) {
  const std::string* accept = request.Header("accept");
  return accept && accept->find("as=Table") != std::string::npos;
}

http::Response ToTable(const http::Request& request, http::Response response) {
  if (response.status != 200 || response.stream) return response;
  json body = json::parse(response.body, nullptr, false);
  if (!body.is_object()) return response;
  std::string kind = Str(body, {"kind"});
  bool list = kind.size() > 4 && kind.compare(kind.size() - 4, 4, "List") == 0;
  const TableKind* table = TableFor(list ? kind.substr(0, kind.size() - 4) : kind);
  if (!table) return response;
  json rows = json::array();
  auto add = [&](const json& object) {
    rows.push_back(json{{"cells", table->cells(object)}, {"object", RowObject(request, object)}});
  };
  if (list) {
    for (const json& item : Sub(body, {"items"})) add(item);
  } else {
    add(body);
  }
  json out{{"kind", "Table"},
           {"apiVersion", "meta.k8s.io/v1"},
           {"metadata",
            {{"resourceVersion", list ? Str(body, {"metadata", "resourceVersion"})
                                      : Str(body, {"metadata", "resourceVersion"})}}},
           {"columnDefinitions", table->columns},
           {"rows", rows}};
  return http::Response::Json(200, out);
}

bool IsWatch(const http::Request& request) {
  std::string watch = request.Query("watch");
  return watch == "true" || watch == "1";
}

void WriteJournal::Record(const json& object) {
  if (!object.is_object()) return;
  Entry entry{Str(object, {"kind"}),
              Str(object, {"metadata", "namespace"}) + "/" + Str(object, {"metadata", "name"}),
              Number(Str(object, {"metadata", "resourceVersion"})), object};
  if (entry.kind.empty() || entry.version == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  entries_.push_back(std::move(entry));
  while (entries_.size() > 1000) entries_.pop_front();
}

std::vector<json> WriteJournal::Between(const std::string& kind, const std::string& key,
                                        uint64_t after, uint64_t before) const {
  std::vector<json> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Entry& entry : entries_) {
    if (entry.kind == kind && entry.key == key && entry.version > after && entry.version < before) {
      out.push_back(entry.object);
    }
  }
  return out;
}

std::vector<json> WriteJournal::LatestSince(const std::string& kind, uint64_t after) const {
  std::map<std::string, json> latest;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Entry& entry : entries_) {
    if (entry.kind == kind && entry.version > after) latest[entry.key] = entry.object;
  }
  std::vector<json> out;
  for (auto& [key, object] : latest) out.push_back(std::move(object));
  return out;
}

http::Response Watch(const http::Request& request,
                     std::function<http::Response(const http::Request&)> list,
                     const WriteJournal* journal, const std::atomic<bool>* stopping) {
  http::Request list_request = request;
  list_request.query.erase("watch");
  list_request.query.erase("resourceVersion");
  list_request.query.erase("timeoutSeconds");
  list_request.query.erase("allowWatchBookmarks");
  list_request.query.erase("sendInitialEvents");
  list_request.query.erase("resourceVersionMatch");
  list_request.headers.erase("accept");
  http::Response first = list(list_request);
  if (first.status != 200) return first;
  json first_list = json::parse(first.body, nullptr, false);
  if (!first_list.is_object() || !first_list.contains("items")) {
    return Failure(405, "the server does not allow watching this resource");
  }
  int64_t timeout = 1800;
  if (request.HasQuery("timeoutSeconds")) {
    uint64_t asked = Number(request.Query("timeoutSeconds"));
    if (asked > 0) timeout = static_cast<int64_t>(std::min<uint64_t>(asked, 3600));
  }
  struct State {
    std::map<std::string, Watched> known;
    std::deque<std::pair<std::string, json>> pending;
    std::chrono::steady_clock::time_point deadline;
  };
  auto state = std::make_shared<State>();
  state->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
  state->known = Index(first_list);
  std::string from = request.Query("resourceVersion");
  uint64_t from_version = Number(from);
  for (const auto& [key, watched] : state->known) {
    if (from.empty() || from == "0") {
      state->pending.emplace_back("ADDED", watched.object);
    } else if (Number(watched.resource_version) > from_version) {
      state->pending.emplace_back("MODIFIED", watched.object);
    }
  }
  // An object deleted between the client's list and this watch is in neither list: report as
  // deleted what the API wrote since `from` and is gone now, where the watch's selection is
  // known to include it (no label selector; at most a metadata.name field selector). A watch of
  // one name (kubectl delete and wait) learns of its object's removal by the daemon too, after
  // any write of it through the API.
  std::string fields = request.Query("fieldSelector");
  std::string only_name;
  bool selection_known = request.Query("labelSelector").empty();
  if (!fields.empty()) {
    constexpr std::string_view kName = "metadata.name=";
    if (fields.rfind(kName, 0) == 0 && fields.find(',') == std::string::npos) {
      only_name = fields.substr(kName.size());
    } else {
      selection_known = false;
    }
  }
  std::vector<std::string> segments = http::SplitPath(request.path);
  std::string scope_namespace =
      segments.size() > 3 && segments[2] == "namespaces" ? segments[3] : "";
  if (journal && from_version > 0 && selection_known) {
    std::string kind = Str(first_list, {"kind"});
    if (kind.size() > 4) kind.resize(kind.size() - 4);
    for (json& object : journal->LatestSince(kind, only_name.empty() ? from_version : 0)) {
      std::string ns = Str(object, {"metadata", "namespace"});
      std::string name = Str(object, {"metadata", "name"});
      if (state->known.count(ns + "/" + name)) continue;
      if (!scope_namespace.empty() && ns != scope_namespace) continue;
      if (!only_name.empty() && name != only_name) continue;
      state->pending.emplace_back("DELETED", std::move(object));
    }
  }
  bool table = WantsTable(request);
  auto encode = [request, table](const std::string& type, const json& object) {
    json encoded = object;
    if (table) {
      http::Response one = http::Response::Json(200, object);
      encoded = json::parse(ToTable(request, one).body, nullptr, false);
    }
    return json{{"type", type}, {"object", encoded}}.dump(-1, ' ', false,
                                                          json::error_handler_t::replace) +
           "\n";
  };
  http::Response response;
  response.status = 200;
  response.content_type = "application/json";
  response.stream = [state, list, list_request, journal, stopping, encode](std::string* chunk) {
    for (;;) {
      if (!state->pending.empty()) {
        auto [type, object] = std::move(state->pending.front());
        state->pending.pop_front();
        *chunk = encode(type, object);
        return true;
      }
      if ((stopping && stopping->load()) || std::chrono::steady_clock::now() >= state->deadline) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      http::Response now = list(list_request);
      if (now.status != 200) continue;
      json parsed = json::parse(now.body, nullptr, false);
      if (!parsed.is_object()) continue;
      std::map<std::string, Watched> current = Index(parsed);
      for (const auto& [key, watched] : current) {
        auto old = state->known.find(key);
        bool added = old == state->known.end();
        if (!added && old->second.resource_version == watched.resource_version) continue;
        std::vector<json> between;
        if (journal) {
          between = journal->Between(Str(watched.object, {"kind"}), key,
                                     added ? 0 : Number(old->second.resource_version),
                                     Number(watched.resource_version));
        }
        between.push_back(watched.object);
        for (json& object : between) {
          state->pending.emplace_back(added ? "ADDED" : "MODIFIED", std::move(object));
          added = false;
        }
      }
      for (const auto& [key, watched] : state->known) {
        if (!current.count(key)) state->pending.emplace_back("DELETED", watched.object);
      }
      state->known = std::move(current);
    }
  };
  return response;
}

std::string KubeconfigYaml(const std::string& server, const std::string& ca_pem,
                           const std::string& token, const std::string& user) {
  return "apiVersion: v1\n"
         "kind: Config\n"
         "clusters:\n"
         "- name: claimfs\n"
         "  cluster:\n"
         "    server: " +
         server +
         "\n"
         "    certificate-authority-data: " +
         Base64(ca_pem) +
         "\n"
         "users:\n"
         "- name: " +
         user +
         "\n"
         "  user:\n"
         "    token: " +
         token +
         "\n"
         "contexts:\n"
         "- name: claimfs\n"
         "  context:\n"
         "    cluster: claimfs\n"
         "    user: " +
         user +
         "\n"
         "    namespace: default\n"
         "current-context: claimfs\n";
}

void ApplyStrategicMergePatch(json* document, const json& patch) {
  if (!patch.is_object() || !document->is_object()) {
    *document = patch;
    return;
  }
  if (patch.contains("$patch") && patch["$patch"] == "replace") {
    json copy = patch;
    copy.erase("$patch");
    *document = copy;
    return;
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& key = it.key();
    if (key.rfind("$setElementOrder/", 0) == 0 || key == "$retainKeys" || key == "$patch") {
      continue;
    }
    if (key.rfind("$deleteFromPrimitiveList/", 0) == 0) {
      std::string field = key.substr(std::string("$deleteFromPrimitiveList/").size());
      auto target = document->find(field);
      if (target != document->end() && target->is_array() && it->is_array()) {
        json kept = json::array();
        for (const json& value : *target) {
          if (std::find(it->begin(), it->end(), value) == it->end()) kept.push_back(value);
        }
        *target = kept;
      }
      continue;
    }
    if (it->is_null()) {
      document->erase(key);
    } else if (it->is_object() && document->contains(key) && (*document)[key].is_object()) {
      if (it->contains("$patch") && (*it)["$patch"] == "delete") {
        document->erase(key);
      } else {
        ApplyStrategicMergePatch(&(*document)[key], *it);
      }
    } else if (key == "finalizers" && it->is_array() && document->contains(key) &&
               (*document)[key].is_array()) {
      json& merged = (*document)[key];
      for (const json& value : *it) {
        if (std::find(merged.begin(), merged.end(), value) == merged.end()) merged.push_back(value);
      }
    } else if (it->is_object()) {
      json fresh = json::object();
      ApplyStrategicMergePatch(&fresh, *it);
      (*document)[key] = fresh;
    } else {
      (*document)[key] = *it;
    }
  }
}

}  // namespace claimfs::api::internal
