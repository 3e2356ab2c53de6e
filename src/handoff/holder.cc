#include "claimfs/handoff/holder.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "claimfs/common/log.h"
#include "claimfs/handoff/bundle_name.h"
#include "claimfs/handoff/holder_client.h"
#include "claimfs/handoff/holder_protocol.h"

namespace claimfs::handoff {
namespace {

using Clock = std::chrono::steady_clock;

class Holder {
 public:
  explicit Holder(const HolderOptions& options) : options_(options) {}

  Status Start();
  Status Serve();

 private:
  struct Client {
    UniqueFd socket;
    PeerCredentials peer;
  };

  void Accept();
  // False when the client is to be closed.
  bool HandleOne(Client& client);
  Message Handle(Client& client, Message& request);
  bool Reply(Client& client, Message reply, int fd = -1);
  void Finish();

  HolderOptions options_;
  UniqueFd lock_;
  UniqueFd listen_;
  ino_t socket_inode_ = 0;
  std::string socket_path_;
  std::map<std::string, UniqueFd> held_;
  std::vector<Client> clients_;
  bool shutdown_ = false;
};

Message Error(int err, std::string text) {
  Message reply;
  reply.op = Op::kReply;
  reply.result = err;
  reply.name = std::move(text);
  return reply;
}

Message Ok(std::string body = "") {
  Message reply;
  reply.op = Op::kReply;
  reply.name = std::move(body);
  return reply;
}

Status Holder::Start() {
  Status s = CheckRunDirectory(options_.run_dir);
  if (!s.ok()) return s;
  // As the serving processes do: a holder is recognisable by the run directory it serves.
  if (::chdir(options_.run_dir.c_str()) != 0) {
    return Status::FromErrno("cannot enter the run directory " + options_.run_dir, errno);
  }
  socket_path_ = HolderSocketPath(options_.run_dir);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    return Status::Invalid("socket path " + socket_path_ + " is too long for a Unix socket");
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);

  std::string lock_path = options_.run_dir + "/hold.lock";
  auto lock = OpenLockFile(lock_path);
  if (!lock.ok()) return lock.status();
  lock_ = std::move(*lock);
  // A holder on its way out (idle exit) still has the lock for a moment: wait that long.
  auto give_up = Clock::now() + std::chrono::seconds(1);
  while (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return Status::FromErrno("cannot lock " + lock_path, errno);
    }
    if (Clock::now() > give_up) {
      return Status::AlreadyExists("another holder runs for " + options_.run_dir);
    }
    ::usleep(10'000);
  }

  // Whatever is at the path is a dead holder's: the live one would have the lock.
  if (::unlink(socket_path_.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("cannot remove stale " + socket_path_, errno);
  }
  listen_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_.valid()) return Status::FromErrno("cannot create the holder socket", errno);
  mode_t old_umask = ::umask(0177);  // one thread: no one else sees the umask change
  int rv = ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old_umask);
  if (rv != 0) return Status::FromErrno("cannot bind " + socket_path_, bind_errno);
  struct stat st;
  if (::stat(socket_path_.c_str(), &st) == 0) socket_inode_ = st.st_ino;
  if (::listen(listen_.get(), 128) != 0) {
    return Status::FromErrno("cannot listen on " + socket_path_, errno);
  }

  // Two fds a volume plus orphans: take every fd the hard limit allows.
  rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
  }
  log::Info("holder: serving {} (protocol {}, build {})", socket_path_, kHolderProtocolVersion,
            options_.build_id);
  return Status::Ok();
}

void Holder::Accept() {
  while (true) {
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        log::Warn("holder: accept: {}", std::strerror(errno));
      }
      return;
    }
    UniqueFd socket(fd);
    auto peer = GetPeerCredentials(socket.get());
    if (!peer.ok()) {
      log::Warn("holder: {}", peer.status().message());
      continue;
    }
    if (!TrustedPeer(*peer)) {
      log::Warn("holder: refused a client with uid {} (pid {})", peer->uid, peer->pid);
      continue;
    }
    if (clients_.size() >= options_.max_clients) {
      log::Warn("holder: refused pid {}: already {} clients", peer->pid, clients_.size());
      continue;
    }
    clients_.push_back(Client{std::move(socket), *peer});
  }
}

bool Holder::Reply(Client& client, Message reply, int fd) {
  std::vector<int> fds;
  if (fd >= 0) fds.push_back(fd);
  // Non-blocking: a client that does not read its replies is dropped, never waited for.
  int rv = SendMessage(client.socket.get(), reply, fds);
  if (rv < 0) {
    log::Warn("holder: cannot reply to pid {}: {}", client.peer.pid, std::strerror(-rv));
    return false;
  }
  return true;
}

bool Holder::HandleOne(Client& client) {
  Message request;
  std::string problem;
  int rv = ReceiveMessage(client.socket.get(), &request, &problem);
  if (rv == -EAGAIN) return true;
  if (rv == -ECONNRESET) return false;
  if (rv < 0) {
    if (rv != -EMSGSIZE && rv != -ETOOMANYREFS && rv != -EBADMSG) {
      log::Warn("holder: receive from pid {}: {}", client.peer.pid, std::strerror(-rv));
      return false;
    }
    log::Warn("holder: bad message from pid {}: {}", client.peer.pid, problem);
    return Reply(client, Error(-rv, "bad message: " + problem));
  }
  if (request.version != kHolderProtocolVersion) {
    request.fds.clear();
    return Reply(client, Error(EPROTO, "protocol version " + std::to_string(request.version) +
                                           " is not spoken here; this holder speaks " +
                                           std::to_string(kHolderProtocolVersion)));
  }
  if (request.op == Op::kTake) {
    auto parsed = ParseBundleName(request.name);
    if (!parsed.ok()) return Reply(client, Error(EINVAL, parsed.status().message()));
    if (!request.fds.empty()) {
      request.fds.clear();
      return Reply(client, Error(EINVAL, "TAKE carries no fds"));
    }
    auto it = held_.find(request.name);
    if (it == held_.end()) return Reply(client, Error(ENOENT, request.name + " is not held"));
    return Reply(client, Ok(), it->second.get());
  }
  Message reply = Handle(client, request);
  // Fds the request carried and Handle did not keep are closed before the client hears back.
  request.fds.clear();
  return Reply(client, std::move(reply));
}

Message Holder::Handle(Client& client, Message& request) {
  std::string_view op = OpName(request.op);
  if (request.op != Op::kPut && !request.fds.empty()) {
    return Error(EINVAL, std::string(op) + " carries no fds");
  }
  switch (request.op) {
    case Op::kHello:
      log::Debug("holder: hello from pid {} (build {})", client.peer.pid, request.name);
      return Ok(options_.build_id);
    case Op::kPut: {
      if (request.fds.size() != 1) return Error(EINVAL, "PUT carries exactly one fd");
      Status s = CheckFdMatchesName(request.name, request.fds[0].get());
      if (!s.ok()) return Error(EINVAL, s.message());
      if (held_.count(request.name)) return Error(EEXIST, request.name + " is already held");
      held_.emplace(request.name, std::move(request.fds[0]));
      return Ok();
    }
    case Op::kDrop: {
      auto parsed = ParseBundleName(request.name);
      if (!parsed.ok()) return Error(EINVAL, parsed.status().message());
      if (held_.erase(request.name) == 0) return Error(ENOENT, request.name + " is not held");
      return Ok();
    }
    case Op::kDropPrefix: {
      const std::string& prefix = request.name;
      Status s = ValidateFdName(prefix);
      std::string_view pv = prefix;
      if (s.ok() && (!pv.starts_with(kBundleNamePrefix) || !pv.ends_with('.'))) {
        s = Status::Invalid("prefix " + prefix + " is not claimfs.1.<pv>.");
      }
      if (s.ok()) {
        pv = pv.substr(kBundleNamePrefix.size(), pv.size() - kBundleNamePrefix.size() - 1);
        if (!IsDnsSubdomain(pv))
          s = Status::Invalid("prefix " + prefix + " is not claimfs.1.<pv>.");
      }
      if (!s.ok()) return Error(EINVAL, s.message());
      // "claimfs.1.a." also starts PV a.b's names: only the names of PV `pv` itself go.
      size_t dropped = 0;
      for (auto it = held_.lower_bound(prefix);
           it != held_.end() && std::string_view(it->first).starts_with(prefix);) {
        auto parsed = ParseBundleName(it->first);
        if (parsed.ok() && parsed->pv == pv) {
          it = held_.erase(it);
          ++dropped;
        } else {
          ++it;
        }
      }
      return Ok(std::to_string(dropped));
    }
    case Op::kList: {
      if (!request.name.empty()) {
        Status s = ValidateFdName(request.name);
        if (!s.ok()) return Error(EINVAL, s.message());
      }
      std::string body;
      for (auto it = held_.upper_bound(request.name);
           it != held_.end() && body.size() + it->first.size() + 1 <= kMaxBody; ++it) {
        body += it->first;
        body += '\n';
      }
      return Ok(std::move(body));
    }
    case Op::kShutdown:
      log::Info("holder: SHUTDOWN from pid {}; closing {} fd(s)", client.peer.pid, held_.size());
      shutdown_ = true;
      held_.clear();
      return Ok();
    default:
      return Error(EINVAL, "unknown op " + std::to_string(static_cast<int>(request.op)));
  }
}

Status Holder::Serve() {
  std::optional<Clock::time_point> idle_since;
  while (!shutdown_) {
    if (held_.empty() && clients_.empty()) {
      if (!idle_since) idle_since = Clock::now();
    } else {
      idle_since.reset();
    }
    int timeout_ms = -1;
    if (idle_since) {
      auto left = options_.idle_exit -
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - *idle_since);
      if (left.count() <= 0) {
        log::Info("holder: idle for {} ms with nothing held; exiting", options_.idle_exit.count());
        break;
      }
      timeout_ms = static_cast<int>(left.count());
    }
    std::vector<pollfd> fds;
    fds.push_back({listen_.get(), POLLIN, 0});
    for (const Client& c : clients_) fds.push_back({c.socket.get(), POLLIN, 0});
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("holder: poll", errno);
    }
    // Clients first (their indices match `fds`), then new ones.
    std::vector<bool> keep(clients_.size(), true);
    for (size_t i = 0; i < clients_.size() && !shutdown_; ++i) {
      short revents = fds[i + 1].revents;
      if (revents & POLLIN) {
        keep[i] = HandleOne(clients_[i]);
      } else if (revents & (POLLHUP | POLLERR | POLLNVAL)) {
        keep[i] = false;
      }
    }
    std::vector<Client> kept;
    for (size_t i = 0; i < clients_.size(); ++i) {
      if (keep[i]) kept.push_back(std::move(clients_[i]));
    }
    clients_ = std::move(kept);
    if (!shutdown_ && (fds[0].revents & POLLIN)) Accept();
  }
  Finish();
  return Status::Ok();
}

void Holder::Finish() {
  held_.clear();
  clients_.clear();
  // Remove the path only if it is still ours (not a successor's).
  struct stat st;
  if (::stat(socket_path_.c_str(), &st) == 0 && st.st_ino == socket_inode_) {
    ::unlink(socket_path_.c_str());
  }
  listen_.reset();
}

}  // namespace

Status RunHolder(const HolderOptions& options) {
  Holder holder(options);
  Status s = holder.Start();
  if (!s.ok()) return s;
  return holder.Serve();
}

}  // namespace claimfs::handoff
