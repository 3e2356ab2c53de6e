// The API's handlers, registered on a http::Router by ApiServer: objects (StorageClass,
// PersistentVolume, PersistentVolumeClaim) and events, with the Kubernetes API server's semantics.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "claimfs/api/api_server.h"
#include "claimfs/api/http_server.h"
#include "claimfs/api/status_object.h"
#include "claimfs/store/state_store.h"
#include "claimfs/yaml/json_text.h"

namespace claimfs::api::internal {

// What the handlers work on; outlives the router.
struct Context {
  store::StateStore* store = nullptr;
  DaemonHooks* hooks = nullptr;
  // Held from a PersistentVolume's admission checks to its commit, so that two volumes whose
  // paths overlap cannot both pass the check before either is stored.
  mutable std::mutex volume_admission_mu;
};

// A Status object response: the reason from the HTTP code.
http::Response Failure(int http_code, std::string_view message, const StatusDetails& details = {});
// A Status object response for a failed claimfs::Status (see status_object.h for the codes).
http::Response Failure(const Status& status, const StatusDetails& details = {});

// The request body as JSON: application/json (also when Content-Type is missing, or curl's
// default application/x-www-form-urlencoded) or a single YAML document (application/yaml).
// 400 with the parser's message when it does not parse, is empty or nests too deeply; 415 for
// other media types. `numbers`, when given, receives the text of the JSON body's numbers (see
// yaml::ParseJsonKeepingNumbers); a number beyond a double's range arrives as a string.
std::variant<nlohmann::json, http::Response> ParseBody(const http::Request& request,
                                                       yaml::NumberTexts* numbers = nullptr);

// ?dryRun=All -> true; absent or empty -> false; anything else -> a 400 response.
std::variant<bool, http::Response> DryRun(const http::Request& request);

// Now as RFC 3339 UTC with seconds ("2026-11-25T10:00:00Z").
std::string NowRfc3339();

// Registers the object routes (see docs/api.md) and the event routes.
void AddObjectRoutes(http::Router* router, const Context* context);
void AddEventRoutes(http::Router* router, const Context* context);

}  // namespace claimfs::api::internal
