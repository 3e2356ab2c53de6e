#include "serve_protocol.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "claimfs/common/log.h"

namespace claimfs::mount::serve {
namespace {

using nlohmann::json;

// A reply that takes longer than this means a hung server: main must not hang with it.
constexpr int kReplyTimeoutSeconds = 120;

Result<sockaddr_un> Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::Invalid("socket path " + path + " is too long for a Unix socket");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

bool PeerIsUs(int fd, pid_t* pid) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  if (pid != nullptr) *pid = cred.pid;
  return cred.uid == geteuid();
}

// Both ends read these top-level fields with json::value(), which throws on a wrong type (in a
// server's connection thread: std::terminate, and every volume of the process with it). A
// message that has one of the wrong type is refused as a whole.
Status CheckFieldTypes(const json& j) {
  for (const char* field : {"op", "volume", "after", "only", "build", "message"}) {
    auto it = j.find(field);
    if (it != j.end() && !it->is_string()) {
      return Status::Invalid(std::string("a message whose \"") + field + "\" is not a string");
    }
  }
  for (const char* field : {"bytes", "device", "threads"}) {
    auto it = j.find(field);
    if (it != j.end() && !it->is_number_unsigned()) {
      return Status::Invalid(std::string("a message whose \"") + field +
                             "\" is not an unsigned integer");
    }
  }
  for (const char* field : {"code", "version"}) {
    auto it = j.find(field);
    if (it != j.end() && !it->is_number_integer()) {
      return Status::Invalid(std::string("a message whose \"") + field + "\" is not an integer");
    }
  }
  if (auto it = j.find("more"); it != j.end() && !it->is_boolean()) {
    return Status::Invalid("a message whose \"more\" is not a boolean");
  }
  return Status::Ok();
}

}  // namespace

std::string SocketPath(const std::string& run_dir, int shard) {
  return run_dir + "/serve-" + std::to_string(shard) + ".sock";
}

int ShardOfSocketName(const std::string& name) {
  constexpr std::string_view kPrefix = "serve-", kSuffix = ".sock";
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.rfind(kPrefix, 0) != 0 ||
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return -1;
  }
  std::string digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.empty() || digits.size() > 6 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return -1;
  }
  return std::stoi(digits);
}

Result<int> Listen(const std::string& path) {
  auto addr = Address(path);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket for " + path, errno);
  (void)unlink(path.c_str());
  mode_t old = umask(077);
  int rv = bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  int err = errno;
  umask(old);
  if (rv != 0 || chmod(path.c_str(), 0600) != 0 || listen(fd, 8) != 0) {
    if (rv == 0) err = errno;
    close(fd);
    return Status::FromErrno("cannot listen on " + path, err);
  }
  return fd;
}

Result<int> Connect(const std::string& path, pid_t* peer_pid) {
  auto addr = Address(path);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket for " + path, errno);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    int err = errno;
    close(fd);
    return Status::Unavailable("nobody answers on " + path + ": " + std::strerror(err));
  }
  if (!PeerIsUs(fd, peer_pid)) {
    close(fd);
    return Status::Forbidden("the process on " + path + " runs as another user");
  }
  timeval tv{kReplyTimeoutSeconds, 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

int Accept(int listen_fd) {
  int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return -1;
  if (!PeerIsUs(fd, nullptr)) {
    log::Warn("serve: refused a connection from another user");
    close(fd);
    return -1;
  }
  return fd;
}

Status Send(int fd, const json& message) {
  std::string text = message.dump();
  while (true) {
    ssize_t n = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(text.size())) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      return Status::Unavailable("the serving process is gone");
    }
    return Status::FromErrno("cannot send to the serving process", n < 0 ? errno : EMSGSIZE);
  }
}

Result<json> Receive(int fd) {
  while (true) {
    ssize_t size = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC);
    if (size < 0 && errno == EINTR) continue;
    if (size < 0 && errno == ECONNRESET) return Status::Unavailable("the peer is gone");
    if (size < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Status::Unavailable("the serving process did not answer in time");
    }
    if (size < 0) return Status::FromErrno("cannot receive from the peer", errno);
    std::string text(static_cast<size_t>(size), '\0');
    ssize_t n = recv(fd, text.data(), text.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("cannot receive from the peer", errno);
    if (n == 0 && size == 0) return Status::Unavailable("the peer is gone");
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Status::Invalid("a message that is not JSON");
    Status typed = CheckFieldTypes(j);
    if (!typed.ok()) return typed;
    return j;
  }
}

Result<json> Call(int fd, const json& request) {
  Status s = Send(fd, request);
  if (!s.ok()) return s;
  auto reply = Receive(fd);
  if (!reply.ok()) return reply.status();
  s = StatusOf(*reply);
  if (!s.ok()) return s;
  return reply;
}

json Reply(const Status& status, json body) {
  body["code"] = static_cast<int>(status.code());
  body["message"] = status.message();
  return body;
}

Status StatusOf(const json& reply) {
  int code = reply.value("code", static_cast<int>(StatusCode::kInternal));
  if (code == 0) return Status::Ok();
  if (code < 0 || code > static_cast<int>(StatusCode::kInternal))
    code = static_cast<int>(StatusCode::kInternal);
  return Status(static_cast<StatusCode>(code),
                reply.value("message", std::string("unknown error")));
}

namespace {

json RequestJson(const MountRequest& r) {
  return {{"volume", r.volume},       {"claim", r.claim},
          {"source", r.source},       {"capacity", r.capacity_bytes},
          {"read_only", r.read_only}, {"mount_options", r.mount_options}};
}

Status RequestFromJson(const json& j, MountRequest* r) {
  try {
    r->volume = j.at("volume").get<std::string>();
    r->claim = j.at("claim").get<std::string>();
    r->source = j.at("source").get<std::string>();
    r->capacity_bytes = j.at("capacity").get<uint64_t>();
    r->read_only = j.at("read_only").get<bool>();
    r->mount_options = j.at("mount_options").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    return Status::Invalid(std::string("a mount request that does not parse: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace

json MountMessage(const MountRequest& request, const MountSettings& settings) {
  return {{"op", "MOUNT"},
          {"request", RequestJson(request)},
          {"mountpoint", settings.mountpoint},
          {"quota_errno", settings.quota_errno},
          {"fd_cache_budget", settings.fd_cache_budget}};
}

Status ParseMountMessage(const json& message, MountRequest* request, MountSettings* settings) {
  if (!message.contains("request")) return Status::Invalid("MOUNT without a request");
  Status s = RequestFromJson(message["request"], request);
  if (!s.ok()) return s;
  try {
    settings->mountpoint = message.at("mountpoint").get<std::string>();
    settings->quota_errno = message.at("quota_errno").get<int>();
    settings->fd_cache_budget = message.at("fd_cache_budget").get<size_t>();
  } catch (const json::exception& e) {
    return Status::Invalid(std::string("a MOUNT that does not parse: ") + e.what());
  }
  return Status::Ok();
}

json ToJson(const ListedVolume& v) {
  const MountedVolume& m = v.mounted;
  json usage = {{"used_bytes", m.usage.used_bytes},
                {"used_inodes", m.usage.used_inodes},
                {"quota_rejections", m.usage.quota_rejections},
                {"mode", m.usage.mode}};
  if (m.usage.capacity_bytes) usage["capacity_bytes"] = *m.usage.capacity_bytes;
  if (m.usage.inode_limit) usage["inode_limit"] = *m.usage.inode_limit;
  return {{"request", RequestJson(v.request)},
          {"mount_path", m.mount_path},
          {"device", static_cast<uint64_t>(m.device)},
          {"read_only", m.read_only},
          {"serving", m.serving},
          {"usage", usage}};
}

Result<ListedVolume> ListedVolumeFromJson(const json& j) {
  ListedVolume v;
  if (!j.is_object() || !j.contains("request"))
    return Status::Invalid("a LIST entry without a request");
  Status s = RequestFromJson(j["request"], &v.request);
  if (!s.ok()) return s;
  try {
    MountedVolume& m = v.mounted;
    m.volume = v.request.volume;
    m.claim = v.request.claim;
    m.source = v.request.source;
    m.mount_path = j.at("mount_path").get<std::string>();
    m.device = static_cast<dev_t>(j.at("device").get<uint64_t>());
    m.read_only = j.at("read_only").get<bool>();
    m.serving = j.at("serving").get<bool>();
    const json& u = j.at("usage");
    m.usage.used_bytes = u.at("used_bytes").get<uint64_t>();
    m.usage.used_inodes = u.at("used_inodes").get<uint64_t>();
    m.usage.quota_rejections = u.at("quota_rejections").get<uint64_t>();
    m.usage.mode = u.at("mode").get<std::string>();
    if (u.contains("capacity_bytes")) m.usage.capacity_bytes = u["capacity_bytes"].get<uint64_t>();
    if (u.contains("inode_limit")) m.usage.inode_limit = u["inode_limit"].get<uint64_t>();
  } catch (const json::exception& e) {
    return Status::Invalid(std::string("a LIST entry that does not parse: ") + e.what());
  }
  return v;
}

json ToJson(const fs::OperationStats& op) {
  return {{"operation", op.operation},
          {"count", op.count},
          {"total_seconds", op.total_seconds},
          {"buckets", op.bucket_counts}};
}

fs::OperationStats OperationStatsFromJson(const json& j) {
  fs::OperationStats op;
  op.operation = j.value("operation", std::string());
  op.count = j.value("count", uint64_t{0});
  op.total_seconds = j.value("total_seconds", 0.0);
  op.bucket_counts = j.value("buckets", std::vector<uint64_t>());
  return op;
}

}  // namespace claimfs::mount::serve
