#include "claimctl/api_access.h"

#include <algorithm>
#include <set>

#include "claimfs/yaml/codec.h"

namespace claimfs::claimctl {

Api::Api(const GlobalOptions& options)
    : client_(options.socket.empty() ? api::DefaultSocketPath() : options.socket) {
  // `sudo claimctl apply` creates claims that belong to the user who ran sudo, not to root.
  client_.set_extra_headers(api::SudoImpersonationHeaders());
}

Result<nlohmann::json> Api::Call(std::string_view method, std::string_view target,
                                 const nlohmann::json* body, std::string_view content_type) {
  std::string text = body != nullptr ? body->dump() : std::string();
  Result<api::HttpResponse> response = client_.Request(method, target, text, content_type);
  if (!response.ok()) return response.status();
  Status status = api::StatusFromResponse(*response);
  if (!status.ok()) {
    std::string reason = api::ReasonFromResponse(*response);
    std::string line;
    if (reason == "Invalid" && status.message().find(" is invalid") != std::string::npos) {
      line = "The " + status.message();
    } else if (!reason.empty()) {
      line = "Error from server (" + reason + "): " + status.message();
    } else {
      line = "Error from server: " + status.message();
    }
    return Status(status.code(), line);
  }
  if (response->body.empty()) return nlohmann::json();
  nlohmann::json json = nlohmann::json::parse(response->body, nullptr, false);
  if (json.is_discarded()) {
    return Status::Internal(std::string(method) + " " + std::string(target) +
                            ": claimfsd answered with a body that is not JSON");
  }
  return json;
}

Result<std::vector<nlohmann::json>> Api::List(std::string_view target) {
  Result<nlohmann::json> list = Get(target);
  if (!list.ok()) return list.status();
  if (!list->is_object() || !list->contains("items") || !(*list)["items"].is_array()) {
    if (list->is_object() && list->contains("items") && (*list)["items"].is_null()) {
      return std::vector<nlohmann::json>();
    }
    return Status::Internal("GET " + std::string(target) + ": claimfsd answered without a list");
  }
  return (*list)["items"].get<std::vector<nlohmann::json>>();
}

Result<std::vector<model::Event>> Api::Events(Kind kind, std::string_view ns, std::string_view name,
                                              std::string_view uid) {
  std::string selector = std::string("involvedObject.kind=") + InfoOf(kind).name +
                         ",involvedObject.name=" + std::string(name);
  if (InfoOf(kind).namespaced) selector += ",involvedObject.namespace=" + std::string(ns);
  if (!uid.empty()) selector += ",involvedObject.uid=" + std::string(uid);
  Result<std::vector<nlohmann::json>> items =
      List("/api/v1/events?fieldSelector=" + UrlEncode(selector));
  if (!items.ok()) return items.status();
  std::vector<model::Event> events;
  for (const nlohmann::json& item : *items) {
    Result<model::Event> event = yaml::EventFromJson(item);
    if (event.ok()) events.push_back(std::move(*event));
  }
  return events;
}

Result<std::vector<VolumeStats>> Api::Stats() {
  Result<nlohmann::json> json = Get("/apis/claimfs.io/v1/volumestats");
  if (!json.ok()) return json.status();
  return VolumeStatsFromJson(*json);
}

namespace {

std::string DescribeUser(const nlohmann::json& user) {
  constexpr size_t kShortId = 12;  // as `docker ps` shows it
  std::string kind = user.value("kind", std::string());
  if (kind == "BindMount") return "bind mount at " + user.value("path", std::string());
  std::string pid = "pid " + std::to_string(user.value("pid", 0));
  std::string command = user.value("command", std::string());
  std::string container = user.value("container", std::string()).substr(0, kShortId);
  if (!container.empty()) {
    return "container " + container + " (" + pid + (command.empty() ? "" : ", " + command) + ")";
  }
  std::string who = command.empty() ? pid : pid + " (" + command + ")";
  return kind == "MountNamespace" ? "mount namespace of " + who : who;
}

}  // namespace

Result<std::vector<std::string>> Api::UsedBy(std::string_view ns, std::string_view claim) {
  Result<std::vector<nlohmann::json>> leases = List(LeasesPath(ns, claim));
  if (!leases.ok()) return leases.status();
  std::vector<std::string> used_by;
  for (const nlohmann::json& lease : *leases) {
    std::string holder = lease.value("holder", std::string());
    int pid = lease.value("pid", 0);
    if (pid > 0) holder += " (pid " + std::to_string(pid) + ")";
    used_by.push_back(std::move(holder));
  }
  Result<std::vector<nlohmann::json>> users =
      List("/apis/claimfs.io/v1/namespaces/" + UrlEncode(ns) + "/persistentvolumeclaims/" +
           UrlEncode(claim) + "/users");
  if (!users.ok()) return used_by;
  std::set<std::string> seen;
  for (const nlohmann::json& user : *users) {
    std::string line;
    try {
      line = DescribeUser(user);
    } catch (const nlohmann::json::exception&) {
      continue;  // not an object, or a field of the wrong type: nothing to print
    }
    if (seen.insert(line).second) used_by.push_back(std::move(line));
  }
  return used_by;
}

std::string LeasesPath(std::string_view ns, std::string_view claim) {
  return "/apis/claimfs.io/v1/namespaces/" + UrlEncode(ns) + "/persistentvolumeclaims/" +
         UrlEncode(claim) + "/leases";
}

std::string ErrorLine(const Status& status) {
  const std::string& m = status.message();
  if (m.rfind("Error from server", 0) == 0 ||
      (m.rfind("The ", 0) == 0 && m.find(" is invalid") != std::string::npos)) {
    return m;
  }
  return "error: " + m;
}

std::string NameOf(const nlohmann::json& object) {
  const nlohmann::json* meta =
      object.is_object() && object.contains("metadata") ? &object["metadata"] : nullptr;
  if (meta && meta->is_object() && meta->contains("name") && (*meta)["name"].is_string()) {
    return (*meta)["name"].get<std::string>();
  }
  return "";
}

std::string UidOf(const nlohmann::json& object) {
  const nlohmann::json* meta =
      object.is_object() && object.contains("metadata") ? &object["metadata"] : nullptr;
  if (meta && meta->is_object() && meta->contains("uid") && (*meta)["uid"].is_string()) {
    return (*meta)["uid"].get<std::string>();
  }
  return "";
}

std::string NamespaceOf(const nlohmann::json& object) {
  const nlohmann::json* meta =
      object.is_object() && object.contains("metadata") ? &object["metadata"] : nullptr;
  if (meta && meta->is_object() && meta->contains("namespace") &&
      (*meta)["namespace"].is_string()) {
    return (*meta)["namespace"].get<std::string>();
  }
  return "";
}

void SortByNamespaceAndName(std::vector<nlohmann::json>* objects) {
  std::stable_sort(objects->begin(), objects->end(),
                   [](const nlohmann::json& a, const nlohmann::json& b) {
                     return std::make_pair(NamespaceOf(a), NameOf(a)) <
                            std::make_pair(NamespaceOf(b), NameOf(b));
                   });
}

nlohmann::json WithoutVolatileFields(nlohmann::json object) {
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object()) {
    object["metadata"].erase("resourceVersion");
    object["metadata"].erase("managedFields");
  }
  return object;
}

}  // namespace claimfs::claimctl
