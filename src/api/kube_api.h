// What the real kubectl asks of a Kubernetes API server beyond the objects themselves: version,
// discovery, OpenAPI, Table responses, watch streams, the empty pod list `describe` looks for,
// and the kubeconfig `claimctl kubeconfig` prints.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "claimfs/api/http_server.h"
#include "handlers.h"

namespace claimfs::api::internal {

// The Kubernetes version claimfsd answers as: its tables have that release's columns.
inline constexpr char kKubeGitVersion[] = "v1.28.0-claimfs";

// Registers /version, /api, /api/v1, /apis, /apis/storage.k8s.io[/v1] and the
// (always empty) pod lists.
void AddKubeRoutes(http::Router* router, const Context* context);
// Registers /openapi/v2, /openapi/v3 and its per-group-version documents (kube_openapi.cc).
void AddOpenApiRoutes(http::Router* router);

// Whether the request's Accept header asks for a meta.k8s.io Table.
bool WantsTable(const http::Request& request);
// `response` (a 200 object or list of ours, or an EventList) as a Table for `request`
// (includeObject=None|Metadata|Object); other responses unchanged.
http::Response ToTable(const http::Request& request, http::Response response);

// The objects the API wrote lately, so that a watch also reports states that the daemon changed
// again before the watch's next look (a claim's Pending before its Bound). Thread-safe.
class WriteJournal {
 public:
  // Records a written object (one with kind and metadata.resourceVersion); keeps the last 1000.
  void Record(const nlohmann::json& object);
  // The states of `kind` `key` ("namespace/name") written with after < resourceVersion < before,
  // oldest first.
  std::vector<nlohmann::json> Between(const std::string& kind, const std::string& key,
                                      uint64_t after, uint64_t before) const;
  // The last state of each `kind` object written with resourceVersion > after.
  std::vector<nlohmann::json> LatestSince(const std::string& kind, uint64_t after) const;

 private:
  struct Entry {
    std::string kind, key;
    uint64_t version = 0;
    nlohmann::json object;
  };
  mutable std::mutex mu_;
  std::deque<Entry> entries_;  // GUARDED_BY(mu_), oldest first
};

// Whether the request is a watch (?watch=true or =1).
bool IsWatch(const http::Request& request);
// Answers a watch on a collection (objects or events): a stream of {"type","object"} lines for
// what changed after ?resourceVersion= (all current objects as ADDED when it is absent or "0"),
// ending after ?timeoutSeconds= (default 30 min) or when `stopping` becomes true. `list` answers
// the same path as a list (the router's GET); watches poll it.
http::Response Watch(const http::Request& request,
                     std::function<http::Response(const http::Request&)> list,
                     const WriteJournal* journal, const std::atomic<bool>* stopping);

// A kubeconfig (YAML) for `server` ("https://127.0.0.1:6443") trusting `ca_pem`, with `token`.
std::string KubeconfigYaml(const std::string& server, const std::string& ca_pem,
                           const std::string& token, const std::string& user);

// Strips what a strategic merge patch adds to a merge patch ($setElementOrder/…, $retainKeys,
// $patch) and applies $deleteFromPrimitiveList/… to `document`, so the rest can be applied as a
// merge patch. Lists are replaced, except metadata.finalizers, which is merged as Kubernetes
// does (its patch strategy is merge).
void ApplyStrategicMergePatch(nlohmann::json* document, const nlohmann::json& patch);

}  // namespace claimfs::api::internal
