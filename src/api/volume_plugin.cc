#include "claimfs/api/volume_plugin.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "authz.h"
#include "claimfs/api/http_server.h"
#include "claimfs/common/log.h"
#include "claimfs/controller/controller.h"
#include "claimfs/yaml/defaults.h"
#include "claimfs/yaml/field_error.h"
#include "claimfs/yaml/validation.h"

namespace claimfs::api {

using nlohmann::json;

namespace {

// What Docker's plugin helpers answer with; Docker and Podman accept any JSON.
constexpr char kPluginContentType[] = "application/vnd.docker.plugins.v1.1+json";
// A lease a Mount takes is held by "docker <mount id>": the daemon lists it as such, and a
// restarted plugin finds its mounts again by it.
constexpr char kHolderPrefix[] = "docker ";
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// How often a delete is retried when the controller wrote the claim between our read and write.
constexpr int kMaxAttempts = 5;
// Docker's `local` driver makes a volume root-owned 0755; plugin volumes do the same (their
// mountpoints sit in a namespace directory only root can enter, as /var/lib/docker/volumes is).
constexpr char kDockerVolumeMode[] = "0755";
constexpr char kKnownOptions[] = "size, class, accessMode, reclaimPolicy, uid, gid, mode";

http::Response Reply(json body) {
  if (!body.contains("Err")) body["Err"] = "";
  http::Response response = http::Response::Json(200, body);
  response.content_type = kPluginContentType;
  return response;
}

// Errors carry a non-200 status: Podman reads Err only then (Docker reads it either way).
http::Response Fail(const std::string& message, int status = 500) {
  http::Response response = http::Response::Json(status, json{{"Err", message}});
  response.content_type = kPluginContentType;
  return response;
}

std::string Join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const std::string& part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

// A claim a Docker volume name stands for.
struct ClaimName {
  std::string namespace_;
  std::string name;
  std::string Key() const { return namespace_ + "/" + name; }
};

struct Request {
  std::string name;
  std::string id;
  json opts = json::object();
  // A non-root peer (Docker and Podman run as root): it writes only its own volumes.
  std::optional<internal::Caller> tenant;
};

// Docker's mount IDs are 64 hex digits; an ID becomes part of a lease holder, which is kept and
// logged.
constexpr size_t kMaxMountIdBytes = 200;

bool IsTerminating(const model::PersistentVolumeClaim& claim) {
  return claim.metadata.deletion_timestamp.has_value();
}

// An unsigned number of `base` no larger than `max`; nullopt otherwise.
std::optional<uint64_t> ParseNumber(const std::string& text, int base, uint64_t max) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (base == 8 && text.size() > 2 && text[0] == '0' && (text[1] == 'o' || text[1] == 'O')) {
    begin += 2;
  }
  auto [ptr, ec] = std::from_chars(begin, end, value, base);
  if (begin == end || ec != std::errc() || ptr != end || value > max) return std::nullopt;
  return value;
}

}  // namespace

class VolumePluginServer::Impl {
 public:
  Impl(const VolumePluginOptions& options, store::StateStore* store, DaemonHooks* hooks)
      : options_(options), store_(store), hooks_(hooks), router_(&Impl::RouterError) {
    AddRoutes();
  }

  Status Start() {
    for (const std::string& message : yaml::IsDNS1123Label(options_.namespace_)) {
      return Status::Invalid("volume plugin namespace \"" + options_.namespace_ +
                             "\" is not valid: " + message);
    }
    std::filesystem::path parent = std::filesystem::path(options_.socket_path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) {
      return Status::IOError("cannot create the volume plugin's socket directory " +
                             parent.string() + ": " + ec.message());
    }
    RecoverMounts();
    http::ServerOptions http;
    http.socket_path = options_.socket_path;
    http.socket_mode = options_.socket_mode;
    http.socket_group = options_.socket_group;
    http.threads = std::max(1u, options_.threads);
    // A Mount may wait mount_wait for its claim; the request must not time out before.
    http.request_timeout_seconds =
        std::max<int>(10, static_cast<int>(options_.mount_wait.count() / 1000) + 5);
    http.max_request_bytes = 1 << 20;
    http.name = "volume-plugin";
    http.error_responder = &Impl::RouterError;
    auto server = http::Server::Start(std::move(http), [this](const http::Request& request) {
      return router_.Dispatch(request);
    });
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    log::Info("volume plugin serving {} (claims in namespace \"{}\")", options_.socket_path,
              options_.namespace_);
    return Status::Ok();
  }

  void Stop() {
    if (server_) server_->Stop();
  }

 private:
  // A mount Docker asked for: one lease, however many Mount calls with the same ID.
  struct HeldMount {
    std::string lease_id;
    int count = 0;
  };

  static http::Response RouterError(int status, const std::string& message) {
    return Fail("claimfs: " + message, status);
  }

  void AddRoutes() {
    auto route = [this](const char* path, http::Response (Impl::*handler)(const Request&)) {
      router_.Add(
          "POST", path,
          [this, handler](const http::Request& request, const http::PathParams&) -> http::Response {
            auto parsed = Parse(request);
            if (auto* error = std::get_if<http::Response>(&parsed)) return std::move(*error);
            return (this->*handler)(std::get<Request>(parsed));
          });
    };
    route("/Plugin.Activate", &Impl::Activate);
    route("/VolumeDriver.Create", &Impl::Create);
    route("/VolumeDriver.Remove", &Impl::Remove);
    route("/VolumeDriver.Mount", &Impl::Mount);
    route("/VolumeDriver.Unmount", &Impl::Unmount);
    route("/VolumeDriver.Path", &Impl::Path);
    route("/VolumeDriver.Get", &Impl::Get);
    route("/VolumeDriver.List", &Impl::List);
    route("/VolumeDriver.Capabilities", &Impl::Capabilities);
  }

  // The body as a request: any content type (Docker sends application/vnd.docker.plugins.v1.2+json,
  // Podman v1.1, curl users application/json), an empty body being {}.
  static std::variant<Request, http::Response> Parse(const http::Request& request) {
    Request out;
    if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) return out;
    json body;
    try {
      body = json::parse(request.body);
    } catch (const json::exception& e) {
      return Fail(std::string("claimfs: the request body is not valid JSON: ") + e.what(), 400);
    }
    if (!body.is_object()) return Fail("claimfs: the request body must be a JSON object", 400);
    for (auto [key, field] : {std::pair{"Name", &out.name}, std::pair{"ID", &out.id}}) {
      auto it = body.find(key);
      if (it == body.end() || it->is_null()) continue;
      if (!it->is_string()) {
        return Fail(std::string("claimfs: ") + key + " must be a string, not " + it->type_name(),
                    400);
      }
      *field = it->get<std::string>();
    }
    if (out.id.size() > kMaxMountIdBytes ||
        std::any_of(out.id.begin(), out.id.end(), [](char c) { return c < 0x20 || c == 0x7f; })) {
      return Fail("claimfs: ID must be at most " + std::to_string(kMaxMountIdBytes) +
                      " printable characters",
                  400);
    }
    auto tenant = internal::Tenant(request);
    if (std::holds_alternative<http::Response>(tenant)) {
      return Fail("claimfs: impersonation is forbidden on the plugin socket", 403);
    }
    out.tenant = std::get<std::optional<internal::Caller>>(std::move(tenant));
    auto opts = body.find("Opts");
    if (opts != body.end() && !opts->is_null()) {
      if (!opts->is_object()) return Fail("claimfs: Opts must be an object of strings", 400);
      out.opts = *opts;
    }
    return out;
  }

  // ---- names

  // The claim `volume` names (see volume_plugin.h), or why it cannot name one.
  Result<ClaimName> Resolve(const std::string& volume) const {
    if (volume.empty()) return Status::Invalid("claimfs: a volume name is required");
    ClaimName claim;
    size_t dot = volume.find('.');
    if (dot == std::string::npos) {
      claim = {options_.namespace_, volume};
    } else {
      claim = {volume.substr(0, dot), volume.substr(dot + 1)};
      std::vector<std::string> problems = yaml::IsDNS1123Label(claim.namespace_);
      if (!problems.empty()) {
        return Status::Invalid("claimfs: volume name \"" + volume + "\" is <namespace>.<claim>, " +
                               "and namespace \"" + claim.namespace_ +
                               "\" is not valid: " + Join(problems, "; "));
      }
    }
    std::vector<std::string> problems = yaml::IsDNS1123Subdomain(claim.name);
    if (!problems.empty()) {
      return Status::Invalid("claimfs: volume name \"" + volume +
                             "\" cannot name a claim (claim names are Kubernetes object names): " +
                             Join(problems, "; "));
    }
    return claim;
  }

  // The Docker name of a claim: bare for the plugin's namespace, else <namespace>.<name>.
  std::string DockerName(const model::PersistentVolumeClaim& claim) const {
    if (claim.metadata.namespace_ == options_.namespace_ &&
        claim.metadata.name.find('.') == std::string::npos) {
      return claim.metadata.name;
    }
    return claim.metadata.namespace_ + "." + claim.metadata.name;
  }

  // The claim, or "no such volume" (Docker's own words) when it is missing. A claim being
  // deleted is still there: Docker asks Get before every Unmount, and a volume it cannot get is
  // never unmounted, so its lease would hold the deletion back for ever.
  Result<model::PersistentVolumeClaim> Lookup(const ClaimName& name, const std::string& volume) {
    Result<model::PersistentVolumeClaim> claim =
        store_->GetPersistentVolumeClaim(name.namespace_, name.name);
    if (!claim.ok()) {
      if (claim.status().code() == StatusCode::kNotFound) {
        return Status::NotFound("no such volume: " + volume);
      }
      return Status(claim.status().code(), "claimfs: " + claim.status().message());
    }
    return claim;
  }

  // Where the daemon has the claim mounted; "" when it is not.
  std::string MountPath(const std::string& claim_key) const {
    for (const VolumeStats& stats : hooks_->Stats()) {
      if (stats.claim == claim_key && !stats.mount_path.empty()) return stats.mount_path;
    }
    return "";
  }

  // ---- endpoints

  http::Response Activate(const Request&) {
    return Reply(json{{"Implements", json::array({"VolumeDriver"})}});
  }

  http::Response Capabilities(const Request&) {
    return Reply(json{{"Capabilities", {{"Scope", "local"}}}});
  }

  http::Response Create(const Request& request) {
    Result<ClaimName> name = Resolve(request.name);
    if (!name.ok()) return Fail(name.status().message());
    Result<model::PersistentVolumeClaim> existing =
        store_->GetPersistentVolumeClaim(name->namespace_, name->name);
    if (existing.ok()) {
      if (IsTerminating(*existing)) {
        return Fail("claimfs: claim " + name->Key() +
                    " is being deleted; create the volume again once it is gone");
      }
      // Docker creates a volume it is about to use when it does not know it; it exists.
      return Reply(json::object());
    }
    if (existing.status().code() != StatusCode::kNotFound) {
      return Fail("claimfs: " + existing.status().message());
    }
    Result<model::PersistentVolumeClaim> claim = ClaimFromOptions(*name, request.opts);
    if (!claim.ok()) return Fail(claim.status().message());
    if (request.tenant) {
      if (auto refused = GiveToTenant(*request.tenant, request.opts, &*claim)) return *refused;
    }
    std::string size = claim->spec.request ? claim->spec.request->ToString() : "";
    Result<model::PersistentVolumeClaim> created = store_->Create(std::move(*claim));
    if (!created.ok()) {
      // Another Create of the same name got in first: the volume exists.
      if (created.status().code() == StatusCode::kAlreadyExists) return Reply(json::object());
      return Fail("claimfs: " + created.status().message());
    }
    hooks_->ObjectsChanged();
    log::Info("volume plugin: created claim {} ({}) for volume {}", name->Key(), size,
              request.name);
    return Reply(json::object());
  }

  // A tenant's volume is its own, as over the API: uid only its own, gid one of its groups, and
  // the API's default mode rather than Docker's 0755 convention.
  static std::optional<http::Response> GiveToTenant(const internal::Caller& tenant,
                                                    const json& opts,
                                                    model::PersistentVolumeClaim* claim) {
    auto& annotations = claim->metadata.annotations;
    auto uid = annotations.find(controller::kOwnerUidAnnotation);
    if (uid != annotations.end() && uid->second != std::to_string(tenant.uid)) {
      return Fail("claimfs: option uid=" + uid->second + " is forbidden: user \"" + tenant.name +
                      "\" may not give a volume to another user (only root may)",
                  403);
    }
    auto gid = annotations.find(controller::kOwnerGidAnnotation);
    if (gid != annotations.end() && !tenant.InGroup(static_cast<gid_t>(std::stoul(gid->second)))) {
      return Fail("claimfs: option gid=" + gid->second + " is forbidden: user \"" + tenant.name +
                      "\" is not a member of that group",
                  403);
    }
    annotations.try_emplace(controller::kOwnerUidAnnotation, std::to_string(tenant.uid));
    annotations.try_emplace(controller::kOwnerGidAnnotation, std::to_string(tenant.gid));
    if (!opts.contains("mode")) annotations.erase(controller::kModeAnnotation);
    return std::nullopt;
  }

  // nullopt when the request's peer may mount, unmount or remove the volume: root, or the
  // owner of its claim. A missing claim is left to the endpoint.
  std::optional<http::Response> NotOwner(const Request& request, const ClaimName& name,
                                         const char* verb) {
    if (!request.tenant) return std::nullopt;
    Result<model::PersistentVolumeClaim> claim =
        store_->GetPersistentVolumeClaim(name.namespace_, name.name);
    if (!claim.ok()) return std::nullopt;
    std::optional<uid_t> owner = internal::ClaimOwner(*claim);
    if (owner == std::optional<uid_t>(request.tenant->uid)) return std::nullopt;
    return Fail(std::string("claimfs: volume ") + request.name + " is forbidden: user \"" +
                    request.tenant->name + "\" may not " + verb + " it: its claim belongs to " +
                    (owner ? "uid " + std::to_string(*owner) : std::string("root")),
                403);
  }

  // A claim as the API's POST would store it, from Docker's options.
  Result<model::PersistentVolumeClaim> ClaimFromOptions(const ClaimName& name, const json& opts) {
    model::PersistentVolumeClaim claim;
    claim.metadata.name = name.name;
    claim.metadata.namespace_ = name.namespace_;
    claim.spec.access_modes = {model::AccessMode::kReadWriteOnce};
    std::map<std::string, std::string> values;
    for (const auto& [key, value] : opts.items()) {
      static const char* const kKnown[] = {"size", "class", "accessMode", "reclaimPolicy",
                                           "uid",  "gid",   "mode"};
      if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
        return Status::Invalid("claimfs: unknown option \"" + key + "\" (known: " + kKnownOptions +
                               ")");
      }
      if (value.is_string()) {
        values[key] = value.get<std::string>();
      } else if (value.is_number_integer() || value.is_number_unsigned()) {
        values[key] = value.dump();
      } else {
        return Status::Invalid("claimfs: option \"" + key + "\" must be a string, not " +
                               value.dump());
      }
    }
    auto bad = [](const std::string& key, const std::string& value, const std::string& why) {
      return Status::Invalid("claimfs: option " + key + "=\"" + value + "\" is not valid: " + why);
    };
    auto size = values.find("size");
    if (size == values.end() || size->second.empty()) {
      return Status::Invalid("claimfs: size is required, e.g. --opt size=1Gi");
    }
    Result<model::Quantity> quantity = model::Quantity::Parse(size->second);
    if (!quantity.ok()) return bad("size", size->second, quantity.status().message());
    if (quantity->value() <= 0) return bad("size", size->second, "must be greater than zero");
    claim.spec.request = *quantity;
    if (auto it = values.find("class"); it != values.end()) {
      if (!it->second.empty()) {
        Result<model::StorageClass> sc = store_->GetStorageClass(it->second);
        if (!sc.ok()) {
          if (sc.status().code() != StatusCode::kNotFound) {
            return Status(sc.status().code(), "claimfs: " + sc.status().message());
          }
          return bad("class", it->second, "there is no StorageClass \"" + it->second + "\"");
        }
      }
      claim.spec.storage_class_name = it->second;  // "" = no class: a static volume only
    }
    if (auto it = values.find("accessMode"); it != values.end()) {
      std::optional<model::AccessMode> mode = model::ParseAccessMode(it->second);
      if (!mode) {
        return bad("accessMode", it->second,
                   "must be ReadWriteOnce, ReadWriteMany, ReadOnlyMany or ReadWriteOncePod");
      }
      claim.spec.access_modes = {*mode};
    }
    auto& annotations = claim.metadata.annotations;
    if (auto it = values.find("reclaimPolicy"); it != values.end()) {
      if (it->second != "Delete" && it->second != "Retain") {
        return bad("reclaimPolicy", it->second, "must be Delete or Retain");
      }
      annotations[controller::kReclaimPolicyAnnotation] = it->second;
    }
    for (auto [key, annotation] : {std::pair{"uid", controller::kOwnerUidAnnotation},
                                   std::pair{"gid", controller::kOwnerGidAnnotation}}) {
      auto it = values.find(key);
      if (it == values.end()) continue;
      // (uid_t)-1 means "no change" to chown(2), so it is nobody's id.
      std::optional<uint64_t> id = ParseNumber(it->second, 10, 0xfffffffeULL);
      if (!id) return bad(key, it->second, "must be a number from 0 to 4294967294");
      annotations[annotation] = std::to_string(*id);
    }
    if (auto it = values.find("mode"); it != values.end()) {
      std::optional<uint64_t> mode = ParseNumber(it->second, 8, 07777);
      if (!mode) return bad("mode", it->second, "must be octal permission bits, e.g. 0755");
      char text[8];
      std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(*mode));
      annotations[controller::kModeAnnotation] = text;
    } else {
      annotations[controller::kModeAnnotation] = kDockerVolumeMode;
    }
    yaml::SetDefaults(&claim);
    yaml::ErrorList errors = yaml::ValidatePersistentVolumeClaim(claim);
    if (!errors.empty()) {
      return Status::Invalid(
          "claimfs: " + yaml::InvalidStatus("PersistentVolumeClaim", name.name, errors).message());
    }
    return claim;
  }

  http::Response Remove(const Request& request) {
    Result<ClaimName> name = Resolve(request.name);
    if (!name.ok()) return Fail(name.status().message());
    if (auto refused = NotOwner(request, *name, "remove")) return *refused;
    for (int attempt = 1;; ++attempt) {
      Result<model::PersistentVolumeClaim> claim =
          store_->GetPersistentVolumeClaim(name->namespace_, name->name);
      if (!claim.ok()) {
        // Already gone (deleted with claimctl, say): Docker may forget it.
        if (claim.status().code() == StatusCode::kNotFound) return Reply(json::object());
        return Fail("claimfs: " + claim.status().message());
      }
      if (IsTerminating(*claim)) return Reply(json::object());
      std::vector<Lease> leases = hooks_->ListLeases(name->Key());
      if (!leases.empty()) {
        std::vector<std::string> holders;
        for (const Lease& lease : leases) {
          std::string holder = lease.holder;
          if (holder.rfind(kHolderPrefix, 0) == 0) holder.erase(0, sizeof(kHolderPrefix) - 1);
          if (holder.empty()) holder = "lease " + lease.id;
          holders.push_back(holder);
        }
        // Docker's own words: "remove v1: volume is in use - [3f2a..., 9c1b...]".
        return Fail("volume is in use - [" + Join(holders, ", ") + "]", 409);
      }
      // As the API's DELETE: finalizers hold the claim (Terminating until its last user goes).
      Status status;
      if (!claim->metadata.finalizers.empty()) {
        model::PersistentVolumeClaim next = *claim;
        next.metadata.deletion_timestamp = Now();
        status = store_->Update(std::move(next)).status();
      } else {
        status = store_->Delete(store::Kind::kPersistentVolumeClaim, name->namespace_, name->name,
                                claim->metadata.resource_version);
      }
      if (status.code() == StatusCode::kConflict && attempt < kMaxAttempts) continue;
      if (status.code() == StatusCode::kNotFound) return Reply(json::object());
      if (!status.ok()) return Fail("claimfs: " + status.message());
      hooks_->ObjectsChanged();
      log::Info("volume plugin: deleting claim {} for volume {}", name->Key(), request.name);
      return Reply(json::object());
    }
  }

  http::Response Mount(const Request& request) {
    Result<ClaimName> name = Resolve(request.name);
    if (!name.ok()) return Fail(name.status().message());
    if (auto refused = NotOwner(request, *name, "mount")) return *refused;
    const std::string key = name->Key();
    const std::pair<std::string, std::string> mount_key{key, request.id};
    {
      std::lock_guard lock(mu_);
      auto it = mounts_.find(mount_key);
      if (it != mounts_.end()) {
        std::string path = MountPath(key);
        if (!path.empty()) {
          ++it->second.count;
          return Reply(json{{"Mountpoint", path}});
        }
      }
    }
    Result<Lease> lease = WaitAndLease(*name, request.name, request.id);
    if (!lease.ok()) return Fail(lease.status().message());
    std::string path = MountPath(key);
    std::string extra_lease;
    {
      std::lock_guard lock(mu_);
      HeldMount& held = mounts_[mount_key];
      if (held.lease_id.empty()) {
        held.lease_id = lease->id;
      } else {
        extra_lease = lease->id;  // a concurrent Mount with the same ID took one first
      }
      ++held.count;
    }
    if (!extra_lease.empty()) (void)hooks_->ReleaseLease(key, extra_lease);
    log::Info("volume plugin: mounted {} for {} at {}", key, request.id, path);
    return Reply(json{{"Mountpoint", path}});
  }

  // Waits up to mount_wait for the claim to be Bound and mounted, then takes a lease on it.
  Result<Lease> WaitAndLease(const ClaimName& name, const std::string& volume,
                             const std::string& mount_id) {
    const std::string key = name.Key();
    const auto deadline = std::chrono::steady_clock::now() + options_.mount_wait;
    bool asked = false;
    model::PersistentVolumeClaim last;
    while (true) {
      Result<model::PersistentVolumeClaim> claim = Lookup(name, volume);
      if (!claim.ok()) return claim.status();
      if (IsTerminating(*claim)) {
        return Status::Forbidden("claimfs: claim " + key + " is being deleted");
      }
      last = *claim;
      bool bound = claim->status.phase == model::ClaimPhase::kBound;
      // The first attempt also tells the daemon someone waits (a WaitForFirstConsumer claim
      // binds then); later ones only once the claim looks ready.
      if (!asked || (bound && !MountPath(key).empty())) {
        asked = true;
        Result<Lease> lease = hooks_->AcquireLease(key, kHolderPrefix + mount_id, 0);
        if (lease.ok()) return lease;
        if (lease.status().code() != StatusCode::kUnavailable) {
          return Status(lease.status().code(), "claimfs: " + lease.status().message());
        }
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(kPollInterval, deadline - now));
    }
    std::string state = last.status.phase == model::ClaimPhase::kBound
                            ? "Bound, but volume " + last.spec.volume_name + " is not mounted yet"
                            : std::string("still ") + model::ToString(last.status.phase);
    std::string why = LastEventMessage(last);
    return Status::Unavailable("claimfs: claim " + key + " is " + state +
                               (why.empty() ? "" : ": " + why));
  }

  // The newest event about the claim or its volume; "" when there is none.
  std::string LastEventMessage(const model::PersistentVolumeClaim& claim) {
    std::vector<model::Event> events;
    model::ObjectReference ref;
    ref.kind = "PersistentVolumeClaim";
    ref.namespace_ = claim.metadata.namespace_;
    ref.name = claim.metadata.name;
    if (auto got = store_->ListEvents(ref); got.ok()) events = std::move(*got);
    if (!claim.spec.volume_name.empty()) {
      model::ObjectReference pv;
      pv.kind = "PersistentVolume";
      pv.name = claim.spec.volume_name;
      if (auto got = store_->ListEvents(pv); got.ok()) {
        events.insert(events.end(), got->begin(), got->end());
      }
    }
    const model::Event* newest = nullptr;
    for (const model::Event& event : events) {
      if (!newest || event.last_timestamp >= newest->last_timestamp) newest = &event;
    }
    return newest ? newest->message : "";
  }

  http::Response Unmount(const Request& request) {
    Result<ClaimName> name = Resolve(request.name);
    if (!name.ok()) return Fail(name.status().message());
    if (auto refused = NotOwner(request, *name, "unmount")) return *refused;
    std::string release;
    {
      std::lock_guard lock(mu_);
      auto it = mounts_.find({name->Key(), request.id});
      // Unknown (a plugin restart lost the count, or a Mount that failed): nothing to release.
      if (it == mounts_.end()) return Reply(json::object());
      if (--it->second.count <= 0) {
        release = it->second.lease_id;
        mounts_.erase(it);
      }
    }
    if (!release.empty()) {
      Status status = hooks_->ReleaseLease(name->Key(), release);
      if (!status.ok() && status.code() != StatusCode::kNotFound) {
        return Fail("claimfs: " + status.message());
      }
      log::Info("volume plugin: unmounted {} for {}", name->Key(), request.id);
    }
    return Reply(json::object());
  }

  http::Response Path(const Request& request) {
    Result<ClaimName> name = Resolve(request.name);
    if (!name.ok()) return Fail(name.status().message());
    Result<model::PersistentVolumeClaim> claim = Lookup(*name, request.name);
    if (!claim.ok()) return Fail(claim.status().message());
    return Reply(json{{"Mountpoint", MountPath(name->Key())}});
  }

  http::Response Get(const Request& request) {
    Result<ClaimName> name = Resolve(request.name);
    if (!name.ok()) return Fail(name.status().message());
    Result<model::PersistentVolumeClaim> claim = Lookup(*name, request.name);
    if (!claim.ok()) return Fail(claim.status().message());
    const std::string key = name->Key();
    // kubectl's STATUS column says Terminating for a claim being deleted; so does inspect.
    json status = {{"phase", IsTerminating(*claim) ? std::string("Terminating")
                                                   : model::ToString(claim->status.phase)},
                   {"volume", claim->spec.volume_name},
                   {"claim", key}};
    std::string mount_path;
    bool mounted = false;
    for (const VolumeStats& stats : hooks_->Stats()) {
      if (stats.claim != key) continue;
      mounted = true;
      mount_path = stats.mount_path;
      status["capacity"] = stats.capacity_bytes;
      status["used"] = stats.used_bytes;
      status["available"] = stats.available_bytes;
      break;
    }
    if (!mounted) {
      if (claim->status.capacity) {
        status["capacity"] = claim->status.capacity->value();
      } else if (claim->spec.request) {
        status["capacity"] = claim->spec.request->value();
      }
    }
    json volume = {{"Name", request.name},
                   {"Mountpoint", mount_path},
                   {"CreatedAt", claim->metadata.creation_timestamp},
                   {"Status", status}};
    return Reply(json{{"Volume", volume}});
  }

  http::Response List(const Request&) {
    Result<std::vector<model::PersistentVolumeClaim>> claims = store_->ListPersistentVolumeClaims();
    if (!claims.ok()) return Fail("claimfs: " + claims.status().message());
    std::map<std::string, std::string> paths;
    for (const VolumeStats& stats : hooks_->Stats()) paths[stats.claim] = stats.mount_path;
    json volumes = json::array();
    for (const model::PersistentVolumeClaim& claim : *claims) {
      auto path = paths.find(claim.metadata.namespace_ + "/" + claim.metadata.name);
      volumes.push_back({{"Name", DockerName(claim)},
                         {"Mountpoint", path == paths.end() ? "" : path->second},
                         {"CreatedAt", claim.metadata.creation_timestamp}});
    }
    return Reply(json{{"Volumes", volumes}});
  }

  // Leases a previous plugin in this daemon took for mounts are found again by their holder,
  // so Unmount still releases them.
  void RecoverMounts() {
    std::vector<Lease> leases = hooks_->ListLeases("");
    std::lock_guard lock(mu_);
    for (const Lease& lease : leases) {
      if (lease.holder.rfind(kHolderPrefix, 0) != 0) continue;
      HeldMount& held = mounts_[{lease.claim, lease.holder.substr(sizeof(kHolderPrefix) - 1)}];
      if (held.lease_id.empty()) {
        held.lease_id = lease.id;
        held.count = 1;
      }
    }
  }

  static std::string Now() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buffer;
  }

  const VolumePluginOptions options_;
  store::StateStore* const store_;
  DaemonHooks* const hooks_;
  http::Router router_;  // built in the constructor, read-only after
  std::unique_ptr<http::Server> server_;

  std::mutex mu_;  // guards mounts_; never held while calling the daemon's lease hooks
  std::map<std::pair<std::string, std::string>, HeldMount> mounts_;  // by (claim key, mount ID)
};

VolumePluginServer::VolumePluginServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

VolumePluginServer::~VolumePluginServer() { Stop(); }

Result<std::unique_ptr<VolumePluginServer>> VolumePluginServer::Start(
    const VolumePluginOptions& options, store::StateStore* store, DaemonHooks* hooks) {
  if (!store || !hooks) return Status::Internal("the volume plugin needs a store and daemon hooks");
  auto impl = std::make_unique<Impl>(options, store, hooks);
  Status status = impl->Start();
  if (!status.ok()) return status;
  return std::unique_ptr<VolumePluginServer>(new VolumePluginServer(std::move(impl)));
}

void VolumePluginServer::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace claimfs::api
