#include "claimfs/api/api_server.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "authz.h"
#include "claimfs/api/http_server.h"
#include "claimfs/api/status_object.h"
#include "claimfs/common/log.h"
#include "claimfs/yaml/field_error.h"
#include "handlers.h"
#include "identity.h"
#include "kube_api.h"
#include "kube_credentials.h"
#include "metrics.h"

namespace claimfs::api {

using nlohmann::json;

namespace {

constexpr char kClaimfsGroup[] = "claimfs.io";
constexpr char kClaimfsApiVersion[] = "claimfs.io/v1";
// A lease's holder, as a Kubernetes object name at most: it is kept and logged.
constexpr size_t kMaxHolderBytes = 253;

Status FieldTypeError(std::string_view what, std::string_view field, std::string_view expected) {
  return Status::Invalid(std::string(what) + ": " + std::string(field) +
                         ": Invalid value: " + std::string(expected));
}

// Reads an optional field of `object` into `out`; kInvalid naming the field when it has another
// type. `required` makes absence an error too.
template <typename T>
Status Field(const json& object, const char* what, const char* key, bool required, T* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return required ? Status::Invalid(std::string(what) + ": " + key + ": Required value")
                    : Status::Ok();
  }
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return FieldTypeError(what, key, "must be a string");
    *out = it->get<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return FieldTypeError(what, key, "must be a boolean");
    *out = it->get<bool>();
  } else {
    if (!it->is_number_integer() && !it->is_number_unsigned()) {
      return FieldTypeError(what, key, "must be an integer");
    }
    if constexpr (std::is_signed_v<T>) {
      if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t{INT64_MAX}) {
        return FieldTypeError(what, key, "out of range");
      }
      *out = static_cast<T>(it->get<int64_t>());
    } else {
      if (it->is_number_integer() && it->get<int64_t>() < 0) {
        return FieldTypeError(what, key, "must not be negative");
      }
      *out = static_cast<T>(it->get<uint64_t>());
    }
  }
  return Status::Ok();
}

}  // namespace

json LeaseToJson(const Lease& lease) {
  return json{{"id", lease.id},
              {"claim", lease.claim},
              {"holder", lease.holder},
              {"pid", lease.pid},
              {"acquired", lease.acquired}};
}

Result<Lease> LeaseFromJson(const json& j) {
  if (!j.is_object()) return Status::Invalid("lease: expected a JSON object");
  Lease lease;
  int64_t pid = 0;
  for (Status s :
       {Field(j, "lease", "id", true, &lease.id), Field(j, "lease", "claim", true, &lease.claim),
        Field(j, "lease", "holder", false, &lease.holder), Field(j, "lease", "pid", false, &pid),
        Field(j, "lease", "acquired", false, &lease.acquired)}) {
    if (!s.ok()) return s;
  }
  lease.pid = static_cast<int>(pid);
  return lease;
}

json VolumeStatsToJson(const VolumeStats& stats) {
  json out{{"volume", stats.volume},         {"claim", stats.claim},
           {"mountPath", stats.mount_path},  {"capacityBytes", stats.capacity_bytes},
           {"usedBytes", stats.used_bytes},  {"availableBytes", stats.available_bytes},
           {"usedInodes", stats.used_inodes}};
  if (stats.inode_limit) out["inodeLimit"] = *stats.inode_limit;
  out["quotaRejections"] = stats.quota_rejections;
  out["readOnly"] = stats.read_only;
  if (!stats.mode.empty()) out["mode"] = stats.mode;
  return out;
}

Result<VolumeStats> VolumeStatsFromJson(const json& j) {
  if (!j.is_object()) return Status::Invalid("volume stats: expected a JSON object");
  VolumeStats stats;
  uint64_t inode_limit = 0;
  const char* what = "volume stats";
  for (Status s :
       {Field(j, what, "volume", true, &stats.volume), Field(j, what, "claim", false, &stats.claim),
        Field(j, what, "mountPath", false, &stats.mount_path),
        Field(j, what, "capacityBytes", false, &stats.capacity_bytes),
        Field(j, what, "usedBytes", false, &stats.used_bytes),
        Field(j, what, "availableBytes", false, &stats.available_bytes),
        Field(j, what, "usedInodes", false, &stats.used_inodes),
        Field(j, what, "inodeLimit", false, &inode_limit),
        Field(j, what, "quotaRejections", false, &stats.quota_rejections),
        Field(j, what, "readOnly", false, &stats.read_only),
        Field(j, what, "mode", false, &stats.mode)}) {
    if (!s.ok()) return s;
  }
  if (j.contains("inodeLimit") && !j["inodeLimit"].is_null()) stats.inode_limit = inode_limit;
  return stats;
}

// ---------------------------------------------------------------------------------------------

class ApiServer::Impl {
 public:
  Impl(store::StateStore* store, DaemonHooks* hooks)
      : context_{store, hooks}, router_(&Impl::Error) {
    internal::AddObjectRoutes(&router_, &context_);
    internal::AddEventRoutes(&router_, &context_);
    internal::AddKubeRoutes(&router_, &context_);
    AddDaemonRoutes();
  }

  Status Start(const ApiServerOptions& options) {
    http::ServerOptions http;
    http.socket_path = options.socket_path;
    http.socket_mode = options.socket_mode;
    http.socket_group = options.socket_group;
    http.max_request_bytes = options.max_request_bytes;
    http.request_timeout_seconds = options.request_timeout_seconds;
    http.threads = options.threads;
    http.max_connections = options.max_connections;
    http.name = "api";
    http.error_responder = &Impl::Error;
    http.on_response = [this](const http::Request& request, const http::Response& response) {
      requests_.Add(request.method, response.status);
    };
    socket_group_ = options.socket_group.value_or(::getegid());
    if (!options.kube_host.empty()) {
      // Before the Unix socket: a listener that cannot start must not leave a half-started API.
      Status kube = StartKube(options, http);
      if (!kube.ok()) return kube;
    }
    Result<std::unique_ptr<http::Server>> server =
        http::Server::Start(std::move(http), [this](const http::Request& request) {
          if (request.method == "GET" &&
              http::SplitPath(request.path) ==
                  std::vector<std::string>{"apis", "claimfs.io", "v1", "kubeconfig"}) {
            return Kubeconfig(request);
          }
          return Serve(request, /*can_stream=*/false);
        });
    if (!server.ok()) {
      if (kube_server_) kube_server_->Stop();
      return server.status();
    }
    server_ = std::move(*server);
    return Status::Ok();
  }

  void Stop() {
    stopping_ = true;
    if (kube_server_) kube_server_->Stop();
    if (server_) server_->Stop();
  }

  uint16_t kube_port() const { return kube_server_ ? kube_server_->port() : 0; }

 private:
  static http::Response Error(int status, const std::string& message) {
    return internal::Failure(status, message);
  }

  // Both listeners, once the caller is known.
  http::Response Serve(const http::Request& request, bool can_stream) {
    // Only root may act for another user, whatever the request.
    auto caller = internal::ResolveCaller(request);
    if (auto* refused = std::get_if<http::Response>(&caller)) return std::move(*refused);
    if (request.method == "GET" && internal::IsWatch(request)) {
      if (!can_stream) {
        return internal::Failure(405, "watch is served on the Kubernetes API listener only "
                                      "(api.listen; claimctl kubeconfig)");
      }
      return internal::Watch(
          request, [this](const http::Request& list) { return router_.Dispatch(list); }, &journal_,
          &stopping_);
    }
    http::Response response = router_.Dispatch(request);
    if (request.method != "GET" && request.method != "HEAD" &&
        (response.status == 200 || response.status == 201) && !request.HasQuery("dryRun")) {
      json written = json::parse(response.body, nullptr, false);
      if (written.is_object() && written.contains("metadata")) journal_.Record(written);
    }
    if ((request.method == "GET" || request.method == "HEAD") && internal::WantsTable(request)) {
      return internal::ToTable(request, std::move(response));
    }
    return response;
  }

  static bool IsLoopback(const std::string& host) {
    unsigned char bytes[16];
    if (::inet_pton(AF_INET, host.c_str(), bytes) == 1) return bytes[0] == 127;
    return host == "::1";
  }

  Status StartKube(const ApiServerOptions& options, const http::ServerOptions& unix_options) {
    if (!IsLoopback(options.kube_host)) {
      return Status::Invalid(
          "the Kubernetes API listener must be on a loopback address "
          "(127.0.0.1 or ::1), not " +
          options.kube_host + ": its bearer tokens would cross the network");
    }
    if (options.state_dir.empty()) {
      return Status::Invalid("the Kubernetes API listener needs the state directory");
    }
    Result<internal::KubeCredentials> credentials =
        internal::LoadOrCreateKubeCredentials(options.state_dir, options.kube_host);
    if (!credentials.ok()) return credentials.status();
    credentials_ = *credentials;
    http::ServerOptions tls = unix_options;
    tls.socket_path.clear();
    tls.tls = http::TlsListener{options.kube_host, options.kube_port, credentials_.server_cert_pem,
                                credentials_.server_key_pem};
    tls.thread_per_connection = true;  // watches block their connection's thread
    tls.max_connections = std::min<unsigned>(options.max_connections, 64);
    tls.name = "kube-api";
    Result<std::unique_ptr<http::Server>> server =
        http::Server::Start(std::move(tls), [this](const http::Request& request) {
          auto authenticated = Authenticate(request);
          if (auto* refused = std::get_if<http::Response>(&authenticated)) {
            return std::move(*refused);
          }
          return Serve(std::get<http::Request>(authenticated), /*can_stream=*/true);
        });
    if (!server.ok()) return server.status();
    kube_server_ = std::move(*server);
    const std::string& host = options.kube_host;
    kube_url_ = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                std::to_string(kube_server_->port());
    return Status::Ok();
  }

  // Whether `uid` may use the Unix socket now: root, or a member of its group.
  bool MayUseSocket(uid_t uid, gid_t* gid, std::vector<gid_t>* groups) const {
    struct passwd pw_buffer;
    struct passwd* pw = nullptr;
    std::vector<char> buffer(16384);
    if (::getpwuid_r(uid, &pw_buffer, buffer.data(), buffer.size(), &pw) != 0 || !pw) {
      return false;
    }
    *gid = pw->pw_gid;
    int count = 64;
    groups->assign(static_cast<size_t>(count), 0);
    if (::getgrouplist(pw->pw_name, pw->pw_gid, groups->data(), &count) < 0) {
      groups->assign(static_cast<size_t>(count), 0);
      if (::getgrouplist(pw->pw_name, pw->pw_gid, groups->data(), &count) < 0) return false;
    }
    groups->resize(static_cast<size_t>(count));
    return uid == 0 || std::find(groups->begin(), groups->end(), socket_group_) != groups->end();
  }

  static http::Response Unauthorized() { return internal::Failure(401, "Unauthorized"); }

  // The HTTPS listener's requests: a bearer token from `claimctl kubeconfig` makes its user the
  // peer, as if it had come through the Unix socket; anything else is 401.
  std::variant<http::Request, http::Response> Authenticate(const http::Request& request) const {
    const std::string* authorization = request.Header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (!authorization || authorization->compare(0, kBearer.size(), kBearer) != 0) {
      return Unauthorized();
    }
    std::string_view token = std::string_view(*authorization).substr(kBearer.size());
    std::optional<uid_t> uid = internal::VerifyKubeToken(credentials_.token_secret, token);
    http::PeerCredentials peer;
    if (!uid || !MayUseSocket(*uid, &peer.gid, &peer.groups)) {
      log::Debug("kube-api: {} {}: refused a token", request.method, request.path);
      return Unauthorized();
    }
    peer.uid = *uid;
    http::Request authenticated = request;
    authenticated.peer = peer;
    return authenticated;
  }

  // GET /apis/claimfs.io/v1/kubeconfig, on the Unix socket only: whoever can use the socket gets
  // a token for itself (root impersonating a user gets that user's).
  http::Response Kubeconfig(const http::Request& request) {
    if (!kube_server_) {
      return internal::Failure(404,
                               "the Kubernetes API listener is off: set api.kubernetes.listen "
                               "in claimfsd.yaml, or start claimfsd with --kube-api ADDRESS");
    }
    auto caller = internal::ResolveCaller(request);
    if (auto* refused = std::get_if<http::Response>(&caller)) return std::move(*refused);
    const auto& who = std::get<std::optional<internal::Caller>>(caller);
    if (!who) return internal::Failure(403, "the caller's credentials are unknown");
    std::string name = who->name.empty() ? std::to_string(who->uid) : who->name;
    std::string text = internal::KubeconfigYaml(
        kube_url_, credentials_.ca_pem, internal::KubeTokenFor(credentials_.token_secret, who->uid),
        "claimfs-" + name);
    return http::Response::Text(200, std::move(text), "application/yaml");
  }

  static std::string ClaimKey(const http::PathParams& params) {
    return params.at("namespace") + "/" + params.at("name");
  }

  static StatusDetails ClaimDetails(const http::PathParams& params) {
    return StatusDetails{params.at("name"), "", "persistentvolumeclaims", {}};
  }

  static json LeaseList(const std::vector<Lease>& leases) {
    json items = json::array();
    for (const Lease& lease : leases) items.push_back(LeaseToJson(lease));
    return json{{"kind", "LeaseList"}, {"apiVersion", kClaimfsApiVersion}, {"items", items}};
  }

  // A tenant takes and releases leases only on its own claims (authz.h).
  std::optional<http::Response> LeaseRefused(const http::Request& request,
                                             const http::PathParams& params,
                                             const std::string& verb) {
    auto resolved = internal::Tenant(request);
    if (auto* error = std::get_if<http::Response>(&resolved)) return std::move(*error);
    const std::optional<internal::Caller>& tenant =
        std::get<std::optional<internal::Caller>>(resolved);
    if (!tenant) return std::nullopt;
    Result<model::PersistentVolumeClaim> claim =
        context_.store->GetPersistentVolumeClaim(params.at("namespace"), params.at("name"));
    if (!claim.ok()) return internal::Failure(claim.status(), ClaimDetails(params));
    return internal::CheckClaimWrite(*tenant, verb, *claim, "leases", kClaimfsGroup);
  }

  http::Response AcquireLease(const http::Request& request, const http::PathParams& params) {
    auto parsed = internal::ParseBody(request);
    if (auto* error = std::get_if<http::Response>(&parsed)) return std::move(*error);
    const json& body = std::get<json>(parsed);
    if (!body.is_object()) return Error(400, "the lease request must be a JSON object");
    std::string holder;
    int64_t pid = 0;
    yaml::ErrorList errors;
    auto holder_it = body.find("holder");
    if (holder_it != body.end() && !holder_it->is_null()) {
      if (holder_it->is_string()) {
        holder = holder_it->get<std::string>();
      } else {
        errors.push_back(yaml::TypeError(yaml::FieldPath().Child("holder"), "must be a string"));
      }
    }
    auto pid_it = body.find("pid");
    if (pid_it != body.end() && !pid_it->is_null()) {
      if (!pid_it->is_number_integer() && !pid_it->is_number_unsigned()) {
        errors.push_back(yaml::TypeError(yaml::FieldPath().Child("pid"), "must be an integer"));
      } else if (pid_it->is_number_unsigned()
                     ? pid_it->get<uint64_t>() > INT32_MAX
                     : (pid_it->get<int64_t>() < 0 || pid_it->get<int64_t>() > INT32_MAX)) {
        errors.push_back(yaml::InvalidRawError(yaml::FieldPath().Child("pid"), pid_it->dump(),
                                               "must be a process id (0 for none)"));
      } else {
        pid = pid_it->get<int64_t>();
      }
    }
    if (holder.size() > kMaxHolderBytes) {
      errors.push_back(
          yaml::TooLongError(yaml::FieldPath().Child("holder"),
                             "may not be more than " + std::to_string(kMaxHolderBytes) + " bytes"));
    } else if (std::any_of(holder.begin(), holder.end(),
                           [](char c) { return c < 0x20 || c == 0x7f; })) {
      errors.push_back(yaml::InvalidError(yaml::FieldPath().Child("holder"), holder,
                                          "must be printable (no control characters)"));
    }
    if (!errors.empty()) {
      return internal::Failure(422,
                               "lease for persistentvolumeclaim " + ClaimKey(params) +
                                   " is invalid: " + yaml::JoinErrors(errors),
                               StatusDetails{params.at("name"), kClaimfsGroup, "Lease", errors});
    }
    if (auto refused = LeaseRefused(request, params, "create")) return std::move(*refused);
    Result<Lease> lease =
        context_.hooks->AcquireLease(ClaimKey(params), holder, static_cast<int>(pid));
    if (!lease.ok()) return internal::Failure(lease.status(), ClaimDetails(params));
    return http::Response::Json(201, LeaseToJson(*lease));
  }

  http::Response ListLeases(const http::PathParams& params) {
    Result<model::PersistentVolumeClaim> claim =
        context_.store->GetPersistentVolumeClaim(params.at("namespace"), params.at("name"));
    if (!claim.ok()) return internal::Failure(claim.status(), ClaimDetails(params));
    return http::Response::Json(200, LeaseList(context_.hooks->ListLeases(ClaimKey(params))));
  }

  http::Response ListUsers(const http::PathParams& params) {
    Result<model::PersistentVolumeClaim> claim =
        context_.store->GetPersistentVolumeClaim(params.at("namespace"), params.at("name"));
    if (!claim.ok()) return internal::Failure(claim.status(), ClaimDetails(params));
    json items = json::array();
    for (const VolumeUser& user : context_.hooks->Users(ClaimKey(params))) {
      json item{{"kind", user.kind}};
      if (user.pid > 0) item["pid"] = user.pid;
      if (!user.command.empty()) item["command"] = user.command;
      if (!user.container.empty()) item["container"] = user.container;
      if (!user.path.empty()) item["path"] = user.path;
      items.push_back(std::move(item));
    }
    return http::Response::Json(
        200, json{{"kind", "VolumeUserList"}, {"apiVersion", kClaimfsApiVersion}, {"items", items}});
  }

  http::Response ReleaseLease(const http::Request& request, const http::PathParams& params) {
    if (auto refused = LeaseRefused(request, params, "delete")) return std::move(*refused);
    const std::string& id = params.at("id");
    Status status = context_.hooks->ReleaseLease(ClaimKey(params), id);
    if (!status.ok()) {
      return internal::Failure(status, StatusDetails{id, kClaimfsGroup, "leases", {}});
    }
    return http::Response::Json(200, SuccessObject(StatusDetails{id, kClaimfsGroup, "leases", {}}));
  }

  http::Response VolumeStatsList() {
    json items = json::array();
    for (const VolumeStats& stats : context_.hooks->Stats()) {
      items.push_back(VolumeStatsToJson(stats));
    }
    return http::Response::Json(
        200,
        json{{"kind", "VolumeStatsList"}, {"apiVersion", kClaimfsApiVersion}, {"items", items}});
  }

  http::Response Healthz() {
    Status health = context_.hooks->Health();
    if (!health.ok()) return http::Response::Text(503, health.message() + "\n");
    return http::Response::Text(200, "ok");
  }

  http::Response Metrics() {
    std::vector<VolumeStats> volumes = context_.hooks->Stats();
    Result<store::Snapshot> snapshot = context_.store->ReadSnapshot();
    if (!snapshot.ok()) {
      log::Warn("api: /metrics without object counts: {}", snapshot.status().message());
    }
    std::string text = internal::RenderMetrics(volumes, snapshot.ok() ? &*snapshot : nullptr,
                                               requests_, context_.hooks->DaemonMetrics());
    return http::Response::Text(200, std::move(text), internal::kMetricsContentType);
  }

  void AddDaemonRoutes() {
    const std::string claim_leases =
        "/apis/claimfs.io/v1/namespaces/{namespace}/persistentvolumeclaims/{name}/leases";
    router_.Add("POST", claim_leases,
                [this](const http::Request& request, const http::PathParams& p) {
                  return AcquireLease(request, p);
                });
    router_.Add("GET", claim_leases,
                [this](const http::Request&, const http::PathParams& p) { return ListLeases(p); });
    router_.Add("DELETE", claim_leases + "/{id}",
                [this](const http::Request& request, const http::PathParams& p) {
                  return ReleaseLease(request, p);
                });
    router_.Add("GET",
                "/apis/claimfs.io/v1/namespaces/{namespace}/persistentvolumeclaims/{name}/users",
                [this](const http::Request&, const http::PathParams& p) { return ListUsers(p); });
    router_.Add("GET", "/apis/claimfs.io/v1/leases",
                [this](const http::Request&, const http::PathParams&) {
                  return http::Response::Json(200, LeaseList(context_.hooks->ListLeases("")));
                });
    router_.Add(
        "GET", "/apis/claimfs.io/v1/volumestats",
        [this](const http::Request&, const http::PathParams&) { return VolumeStatsList(); });
    router_.Add("GET", "/healthz",
                [this](const http::Request&, const http::PathParams&) { return Healthz(); });
    router_.Add("GET", "/metrics",
                [this](const http::Request&, const http::PathParams&) { return Metrics(); });
  }

  internal::Context context_;
  http::Router router_;                // built in the constructor, read-only after
  gid_t socket_group_ = 0;             // set in Start, read-only after
  internal::KubeCredentials credentials_;  // set in Start, read-only after
  std::string kube_url_;                   // set in Start, read-only after
  std::atomic<bool> stopping_{false};      // ends watch streams
  internal::WriteJournal journal_;         // thread-safe
  std::unique_ptr<http::Server> kube_server_;
  internal::RequestCounter requests_;  // thread-safe
  std::unique_ptr<http::Server> server_;
};

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ApiServer::~ApiServer() { Stop(); }

Result<std::unique_ptr<ApiServer>> ApiServer::Start(const ApiServerOptions& options,
                                                    store::StateStore* store, DaemonHooks* hooks) {
  if (!store || !hooks) return Status::Internal("the API server needs a store and daemon hooks");
  auto impl = std::make_unique<Impl>(store, hooks);
  Status status = impl->Start(options);
  if (!status.ok()) return status;
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

void ApiServer::Stop() {
  if (impl_) impl_->Stop();
}

uint16_t ApiServer::kube_port() const { return impl_ ? impl_->kube_port() : 0; }

}  // namespace claimfs::api
