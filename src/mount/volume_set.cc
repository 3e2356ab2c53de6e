#include "claimfs/mount/volume_set.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "claimfs/common/log.h"
#include "claimfs/handoff/fd_store.h"
#include "claimfs/handoff/holder_client.h"
#include "claimfs/mount/crash_point.h"
#include "claimfs/mount/volume_server.h"
#include "serve_protocol.h"

extern char** environ;

namespace claimfs::mount {
namespace {

using nlohmann::json;

// How long a spawned server may take to answer on its socket.
constexpr auto kSpawnTimeout = std::chrono::seconds(10);
// How long a SHUTDOWN server may take to exit before it is killed.
constexpr auto kShutdownTimeout = std::chrono::seconds(10);

// Mount options claimfsd decides itself; a PV's or class's mountOptions cannot override them.
bool SetByDaemon(const std::string& option) {
  std::string key = option.substr(0, option.find('='));
  return key == "capacity" || key == "size" || key == "threads" || key == "debug" ||
         key == "allow_other" || key == "fsname";
}

// "ns/name" of a claim ("namespace/name", or a bare name in namespace default).
std::pair<std::string, std::string> SplitClaim(const std::string& claim) {
  size_t slash = claim.find('/');
  if (slash == std::string::npos) return {"default", claim};
  return {claim.substr(0, slash), claim.substr(slash + 1)};
}

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

bool Exited(int pidfd, int timeout_ms) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) > 0;
}

// Detaches whatever is mounted at `path` (a dead connection: nothing answers below it).
void Detach(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
    log::Info("detached the mount at {}", path);
  } else if (errno != EINVAL && errno != ENOENT) {
    log::Warn("cannot detach the mount at {}: {}", path, strerror(errno));
  }
}

}  // namespace

VolumeSet::VolumeSet(VolumeSetOptions options, MountRoot* root)
    : options_(std::move(options)), root_(root) {}

VolumeSet::~VolumeSet() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  WakeSupervisor();
  if (supervisor_.joinable()) supervisor_.join();
  UnmountAll();
  std::lock_guard lock(mu_);
  while (!servers_.empty()) ForgetServerLocked(servers_.begin()->first);
  // Nothing is mounted any more: the holder has nothing left to keep.
  if (holder_ && held_.empty()) {
    Status s = holder_->Shutdown();
    if (!s.ok()) log::Warn("the holder did not stop: {}", s.message());
  }
  if (wake_fd_ >= 0) close(wake_fd_);
}

Result<std::unique_ptr<VolumeSet>> VolumeSet::Create(const VolumeSetOptions& options,
                                                     MountRoot* root) {
  if (root == nullptr) return Status::Invalid("a volume set needs its mount root");
  if (options.server_binary_fd < 0 || options.run_dir.empty()) {
    return Status::Invalid("a volume set needs claimfsd's binary and a run directory");
  }
  std::unique_ptr<VolumeSet> set(new VolumeSet(options, root));
  set->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (set->wake_fd_ < 0) return Status::FromErrno("eventfd", errno);
  // First, before any process is started: systemd's fds are not close-on-exec.
  std::vector<handoff::NamedFd> stored;
  if (auto taken = handoff::TakeListenFds(); taken.ok()) {
    stored = std::move(*taken);
  } else {
    log::Warn("the fds systemd kept cannot be read: {}", taken.status().message());
  }
  Status s = set->Adopt();
  if (!s.ok()) return s;
  {
    std::lock_guard lock(set->mu_);
    set->ConnectHolderLocked(&stored);
    set->MoveOffOtherBuildsLocked();
  }
  set->supervisor_ = std::thread([p = set.get()] { p->Supervise(); });
  return set;
}

std::string VolumeSet::MountPath(const std::string& claim) const {
  auto [ns, name] = SplitClaim(claim);
  return root_->path() + "/" + ns + "/" + name;
}

unsigned VolumeSet::ThreadsForNewServerLocked() const {
  size_t planned = options_.max_volumes > 0
                       ? (static_cast<size_t>(options_.max_volumes) + kMaxVolumesPerServer - 1) /
                             kMaxVolumesPerServer
                       : 1;
  unsigned share = static_cast<unsigned>(options_.threads / std::max<size_t>(planned, 1));
  unsigned used = 0;
  for (const auto& [shard, server] : servers_) used += server.threads;
  unsigned left = used < options_.threads ? options_.threads - used : 0;
  return std::max(kMinThreadsPerServer, std::min(share, left));
}

// ---- servers ----

Result<VolumeSet::Server> VolumeSet::ConnectServer(int shard) {
  pid_t peer = -1;
  auto fd = serve::Connect(serve::SocketPath(options_.run_dir, shard), &peer);
  if (!fd.ok()) return fd.status();
  Server server;
  server.shard = shard;
  server.fd = *fd;
  auto hello = serve::Call(server.fd, {{"op", "HELLO"}});
  if (!hello.ok()) {
    close(server.fd);
    return hello.status();
  }
  if (hello->value("version", 0) != serve::kProtocolVersion) {
    close(server.fd);
    return Status::Unavailable("serving process " + std::to_string(shard) +
                               " speaks protocol version " +
                               std::to_string(hello->value("version", 0)));
  }
  if (hello->value("build", std::string()) != options_.build_id) {
    log::Info("serving process {} is of {} (this is {})", shard,
              hello->value("build", std::string()), options_.build_id);
    server.other_build = true;
  }
  server.pid = peer;
  server.threads = hello->value("threads", 0u);
  server.pidfd = PidfdOpen(peer);
  if (server.pidfd < 0) {
    int err = errno;
    close(server.fd);
    return Status::FromErrno("pidfd_open of serving process " + std::to_string(peer), err);
  }
  return server;
}

Status VolumeSet::Adopt() {
  std::lock_guard lock(mu_);
  std::error_code ec;
  std::vector<int> shards;
  for (const auto& e : std::filesystem::directory_iterator(options_.run_dir, ec)) {
    int shard = serve::ShardOfSocketName(e.path().filename().string());
    if (shard >= 0) shards.push_back(shard);
  }
  if (ec) return Status::FromErrno("cannot list the run directory " + options_.run_dir, ec.value());
  for (int shard : shards) {
    std::string path = serve::SocketPath(options_.run_dir, shard);
    auto server = ConnectServer(shard);
    if (!server.ok()) {
      log::Info("{}: {}; removed", path, server.status().message());
      (void)unlink(path.c_str());
      continue;
    }
    servers_[shard] = *server;
    Server& s = servers_[shard];
    std::string after;
    std::vector<std::string> foreign;  // mounted where this main would not mount them
    while (true) {
      auto page = serve::Call(s.fd, {{"op", "LIST"}, {"after", after}});
      if (!page.ok()) break;
      for (const json& j : (*page)["volumes"]) {
        auto v = serve::ListedVolumeFromJson(j);
        if (!v.ok()) continue;
        after = v->request.volume;
        if (volumes_.count(after) || v->mounted.mount_path != MountPath(v->request.claim)) {
          foreign.push_back(after);
          continue;
        }
        Entry entry;
        entry.request = v->request;
        entry.mount_path = v->mounted.mount_path;
        entry.device = v->mounted.device;
        entry.shard = shard;
        volumes_[after] = std::move(entry);
        ++s.volumes;
      }
      if (!page->value("more", false)) break;
    }
    for (const std::string& name : foreign) {
      (void)serve::Call(s.fd, {{"op", "UNMOUNT"}, {"volume", name}});
    }
    log::Info("serving process {} (pid {}) kept, with {} volumes", shard, s.pid, s.volumes);
    if (s.volumes == 0) ForgetServerLocked(shard);
  }
  return Status::Ok();
}

Result<int> VolumeSet::SpawnLocked() {
  int shard = 0;
  while (servers_.count(shard)) ++shard;
  std::vector<std::string> args = {"claimfsd",    "serve",
                                   "--run-dir",   options_.run_dir,
                                   "--shard",     std::to_string(shard),
                                   "--threads",   std::to_string(ThreadsForNewServerLocked()),
                                   "--log-level", options_.log_level};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Status::FromErrno("cannot start a serving process", errno);
  if (pid == 0) {
    // Async-signal-safe calls only: this is a copy of a multithreaded process.
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    // Nothing of main's but stdout and stderr (its log) reaches the server: an inherited socket
    // or pipe would outlive main in it.
    syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
    syscall(SYS_execveat, options_.server_binary_fd, "", argv.data(), environ, AT_EMPTY_PATH);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + kSpawnTimeout;
  Status last = Status::Unavailable("serving process did not answer");
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return Status::Unavailable("serving process " + std::to_string(shard) +
                                 " exited at start (wait status " + std::to_string(status) +
                                 "); see its log");
    }
    auto server = ConnectServer(shard);
    if (server.ok() && server->pid == pid) {
      server->child = true;
      servers_[shard] = *server;
      log::Info("started serving process {} (pid {}, {} FUSE threads)", shard, pid,
                server->threads);
      WakeSupervisor();
      return shard;
    }
    if (server.ok()) {  // someone else's socket: not ours to use
      close(server->fd);
      close(server->pidfd);
    } else {
      last = server.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return Status::Unavailable("serving process " + std::to_string(shard) +
                             " did not start: " + last.message());
}

Result<int> VolumeSet::PlaceLocked() {
  int best = -1;
  for (const auto& [shard, server] : servers_) {
    if (server.volumes >= kMaxVolumesPerServer || server.other_build) continue;
    if (best < 0 || server.volumes < servers_[best].volumes) best = shard;
  }
  if (best >= 0) return best;
  return SpawnLocked();
}

void VolumeSet::ForgetServerLocked(int shard) {
  auto it = servers_.find(shard);
  if (it == servers_.end()) return;
  Server server = it->second;
  servers_.erase(it);
  (void)serve::Call(server.fd, {{"op", "SHUTDOWN"}});
  close(server.fd);
  if (!Exited(server.pidfd,
              static_cast<int>(std::chrono::milliseconds(kShutdownTimeout).count()))) {
    log::Warn("serving process {} (pid {}) did not exit: killed", shard, server.pid);
    syscall(SYS_pidfd_send_signal, server.pidfd, SIGKILL, nullptr, 0);
    (void)Exited(server.pidfd, 1000);
  }
  waitpid(server.pid, nullptr, WNOHANG);  // also a child of this pid's image before SIGUSR2
  close(server.pidfd);
  log::Debug("serving process {} (pid {}) ended", shard, server.pid);
  WakeSupervisor();
}

void VolumeSet::WakeSupervisor() const {
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
}

void VolumeSet::Supervise() {
  while (true) {
    std::vector<pollfd> fds = {{wake_fd_, POLLIN, 0}};
    std::vector<std::pair<int, int>> watched;  // shard, pidfd
    std::chrono::milliseconds next_idle_end;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      next_idle_end = EndIdleServersLocked();
      for (const auto& [shard, server] : servers_) {
        fds.push_back({server.pidfd, POLLIN, 0});
        watched.emplace_back(shard, server.pidfd);
      }
    }
    if (poll(fds.data(), fds.size(), static_cast<int>(next_idle_end.count())) < 0 &&
        errno != EINTR) {
      log::Error("supervision of the serving processes: poll: {}", strerror(errno));
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    uint64_t n;
    (void)!read(wake_fd_, &n, sizeof(n));
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      auto [shard, pidfd] = watched[i - 1];
      std::vector<ServerLoss> lost;
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        auto it = servers_.find(shard);
        if (it == servers_.end() || it->second.pidfd != pidfd) continue;  // ended by us
        lost = ReplaceServerLocked(shard);
      }
      if (options_.on_server_lost) {
        for (const ServerLoss& loss : lost) options_.on_server_lost(loss);
      }
    }
  }
}

std::chrono::milliseconds VolumeSet::EndIdleServersLocked() {
  auto now = std::chrono::steady_clock::now();
  std::vector<int> due;
  auto next = std::chrono::milliseconds(-1);
  for (const auto& [shard, server] : servers_) {
    if (server.volumes > 0 || server.idle_since == std::chrono::steady_clock::time_point{}) {
      continue;
    }
    auto end = server.idle_since + options_.server_idle;
    if (end <= now) {
      due.push_back(shard);
      continue;
    }
    // Rounded up: a poll that wakes a little early would only sleep again.
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(end - now);
    if (next.count() < 0 || wait < next) next = wait;
  }
  for (int shard : due) {
    log::Info("serving process {} was empty for {} s: ending it", shard,
              std::chrono::duration_cast<std::chrono::seconds>(options_.server_idle).count());
    ForgetServerLocked(shard);
  }
  return next;
}

std::vector<ServerLoss> VolumeSet::ReplaceServerLocked(int shard) {
  Server dead = servers_[shard];
  servers_.erase(shard);
  waitpid(dead.pid, nullptr, WNOHANG);
  close(dead.fd);
  close(dead.pidfd);
  log::Error("serving process {} (pid {}) died; mounting its {} volumes again", shard, dead.pid,
             dead.volumes);
  std::vector<MountRequest> requests;
  for (auto it = volumes_.begin(); it != volumes_.end();) {
    if (it->second.shard != shard) {
      ++it;
      continue;
    }
    // The holder keeps the connection: a new server adopts it and callers only wait. Without
    // a holder, or when adoption fails, the mount is detached (the path then shows the
    // read-only mount root, EROFS) and mounted afresh.
    requests.push_back(it->second.request);
    it = volumes_.erase(it);
  }
  std::vector<ServerLoss> out;
  for (const MountRequest& request : requests) {
    ServerLoss loss;
    loss.volume.volume = request.volume;
    loss.volume.claim = request.claim;
    loss.volume.source = request.source;
    loss.volume.mount_path = MountPath(request.claim);
    loss.remounted = AdoptLocked(request);
    loss.adopted = loss.remounted.ok();
    if (!loss.adopted) {
      log::Warn("{} cannot be adopted ({}): mounted afresh, its open files fail", request.volume,
                loss.remounted.message());
      ForgetBundleLocked(request.volume);  // the connection dies with the holder's copy
      Detach(loss.volume.mount_path);
      loss.remounted = MountLocked(request);
      if (loss.remounted.ok()) {
        log::Info("{} mounted again at {} after its serving process died", request.volume,
                  loss.volume.mount_path);
      } else {
        log::Error("{} could not be mounted again after its serving process died: {}",
                   request.volume, loss.remounted.message());
      }
    }
    loss.volume.serving = loss.remounted.ok();
    out.push_back(std::move(loss));
  }
  return out;
}

// ---- volumes ----

Status VolumeSet::Mount(const MountRequest& request) {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(request.volume);
  if (it != volumes_.end()) {
    if (it->second.request.claim == request.claim) {
      std::vector<MountedVolume> listed = ListLocked(request.volume);
      if (!listed.empty() && listed.front().serving) return Status::Ok();
    }
    UnmountLocked(request.volume);  // a stale or differently bound mount is replaced
  }
  return MountLocked(request);
}

Status VolumeSet::MountLocked(const MountRequest& request) {
  if (held_.count(request.volume)) {
    // Its server died while main was down: the holder kept the connection.
    std::map<std::string, MountInfo> mounts = HeldMountsLocked();
    held_.erase(request.volume);
    auto m = mounts.find(request.volume);
    Status adopted = Status::Unavailable("its mount is not at " + MountPath(request.claim));
    const std::string real_path =
        root_->real_path() + MountPath(request.claim).substr(root_->path().size());
    if (m != mounts.end() && m->second.mount_point == real_path) {
      adopted = AdoptLocked(request);
      if (adopted.ok()) return adopted;
    }
    log::Warn("{} cannot be adopted ({}): mounted afresh, its open files fail", request.volume,
              adopted.message());
    ForgetBundleLocked(request.volume);
    if (m != mounts.end()) Detach(m->second.mount_point);
  }
  fs::VolumeOptions checked;  // the options are checked here, before any directory is made
  for (const std::string& option : request.mount_options) {
    if (SetByDaemon(option)) {
      return Status::Invalid("mount option \"" + option + "\" of " + request.volume +
                             " is not allowed: claimfsd sets it");
    }
    Status s = fs::ParseMountOptions(option, &checked);
    if (!s.ok()) return Status::Invalid(request.volume + ": " + s.message());
  }

  auto [ns, name] = SplitClaim(request.claim);
  Status s = root_->MakeDirectory(
      ns, options_.private_namespaces.count(ns) ? kPrivateNamespaceMode : kMountRootMode,
      /*existing_too=*/true);
  // Until the volume is mounted on it, the mountpoint is an empty directory of the read-only
  // mount root: every write there fails EROFS.
  if (s.ok()) s = root_->MakeDirectory(ns + "/" + name, 0700, /*existing_too=*/false);
  if (!s.ok()) return s;
  CrashPoint("mount.after_mkdir");
  auto shard = PlaceLocked();
  if (!shard.ok()) {
    RemoveMountpoint(request.claim);
    return shard.status();
  }
  Server& server = servers_[*shard];
  const std::string mount_path = MountPath(request.claim);
  auto reply = serve::Call(server.fd, MountMessageLocked(request, "MOUNT"));
  if (!reply.ok()) {
    if (reply.status().code() == StatusCode::kUnavailable && Exited(server.pidfd, 0)) {
      Detach(mount_path);  // it may have died with the mount made
      WakeSupervisor();
    }
    RemoveMountpoint(request.claim);
    return reply.status();
  }
  CrashPoint("mount.after_mount");
  AddEntryLocked(request, *shard, static_cast<dev_t>(reply->value("device", uint64_t{0})));
  log::Info("mounted {} for claim {} at {} (serving process {})", request.volume, request.claim,
            mount_path, *shard);
  return Status::Ok();
}

json VolumeSet::MountMessageLocked(const MountRequest& request, const char* op) const {
  serve::MountSettings settings;
  settings.mountpoint = MountPath(request.claim);
  settings.quota_errno = options_.quota_errno;
  settings.fd_cache_budget = options_.fd_cache_budget;
  json message = serve::MountMessage(request, settings);
  message["op"] = op;
  return message;
}

void VolumeSet::AddEntryLocked(const MountRequest& request, int shard, dev_t device) {
  Entry entry;
  entry.request = request;
  entry.mount_path = MountPath(request.claim);
  entry.device = device;
  entry.shard = shard;
  ++servers_[shard].volumes;
  volumes_[request.volume] = std::move(entry);
  StoreBundleLocked(request.volume);
}

void VolumeSet::UnmountLocked(const std::string& name) {
  const std::string volume = name;  // `name` may be the key of the entry erased below
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return;
  std::string path = it->second.mount_path;
  std::string claim = it->second.request.claim;
  int shard = it->second.shard;
  auto server = servers_.find(shard);
  bool unmounted = false;
  if (server != servers_.end()) {
    unmounted = serve::Call(server->second.fd, {{"op", "UNMOUNT"}, {"volume", volume}}).ok();
    if (server->second.volumes > 0) --server->second.volumes;
  }
  ForgetBundleLocked(volume);
  if (!unmounted) Detach(path);  // its server is gone: its connection with it
  volumes_.erase(it);
  CrashPoint("unmount.after_unmount");
  RemoveMountpoint(claim);
  log::Info("unmounted {} from {}", volume, path);
  // An empty server waits server_idle for a new volume (a claim on an idle daemon then costs
  // no server start), then ends: none is left behind for long when the last claim goes.
  if (server != servers_.end() && server->second.volumes == 0) {
    if (options_.server_idle.count() <= 0) {
      ForgetServerLocked(shard);
    } else {
      server->second.idle_since = std::chrono::steady_clock::now();
      WakeSupervisor();
    }
  }
}

void VolumeSet::RemoveMountpoint(const std::string& claim) {
  auto [ns, name] = SplitClaim(claim);
  Status s = root_->RemoveDirectory(ns + "/" + name);
  if (!s.ok()) log::Warn("{}", s.message());
  (void)root_->RemoveDirectory(ns);  // only when empty: another claim of the namespace keeps it
}

void VolumeSet::RemoveStrayDirectories() {
  std::lock_guard lock(mu_);
  auto dirs = root_->Directories();
  if (!dirs.ok()) {
    log::Warn("{}", dirs.status().message());
    return;
  }
  std::set<std::string> used;  // "ns/name" and "ns" of every volume mounted
  for (const auto& [name, entry] : volumes_) {
    auto [ns, claim] = SplitClaim(entry.request.claim);
    used.insert(ns + "/" + claim);
    used.insert(ns);
  }
  // Deepest first: a namespace directory is empty once its strays are gone.
  for (auto it = dirs->rbegin(); it != dirs->rend(); ++it) {
    if (used.count(*it)) continue;
    Status s = root_->RemoveDirectory(*it);
    if (!s.ok()) {
      log::Warn("{}", s.message());
    } else if (it->find('/') != std::string::npos) {
      log::Info("removed stray mountpoint directory {}/{}", root_->path(), *it);
    }
  }
}

Status VolumeSet::Unmount(const std::string& volume) {
  std::lock_guard lock(mu_);
  UnmountLocked(volume);
  return Status::Ok();
}

void VolumeSet::UnmountAll() {
  std::lock_guard lock(mu_);
  while (!volumes_.empty()) UnmountLocked(volumes_.begin()->first);
}

Status VolumeSet::SetCapacity(const std::string& volume, uint64_t bytes) {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return Status::NotFound("volume " + volume + " is not mounted");
  auto server = servers_.find(it->second.shard);
  if (server == servers_.end()) {
    return Status::Unavailable("the serving process of " + volume + " is gone");
  }
  auto reply = serve::Call(server->second.fd,
                           {{"op", "SET_CAPACITY"}, {"volume", volume}, {"bytes", bytes}});
  if (!reply.ok()) return reply.status();
  it->second.request.capacity_bytes = bytes;
  return Status::Ok();
}

std::vector<MountedVolume> VolumeSet::ListLocked(const std::string& only) const {
  std::map<std::string, MountedVolume> listed;
  std::set<int> shards;
  std::set<int> silent;  // servers that did not answer (dead: the supervisor is replacing them)
  if (!only.empty()) {
    auto it = volumes_.find(only);
    if (it == volumes_.end()) return {};
    shards.insert(it->second.shard);
  } else {
    for (const auto& [shard, server] : servers_) shards.insert(shard);
  }
  for (int shard : shards) {
    auto server = servers_.find(shard);
    if (server == servers_.end()) continue;
    std::string after;
    while (true) {
      json request = {{"op", "LIST"}, {"after", after}};
      if (!only.empty()) request["only"] = only;
      auto page = serve::Call(server->second.fd, request);
      if (!page.ok()) {
        silent.insert(shard);
        WakeSupervisor();
        break;
      }
      for (const json& j : (*page)["volumes"]) {
        auto v = serve::ListedVolumeFromJson(j);
        if (!v.ok()) continue;
        after = v->request.volume;
        listed[after] = v->mounted;
      }
      if (!page->value("more", false)) break;
    }
  }
  std::vector<MountedVolume> out;
  for (const auto& [name, entry] : volumes_) {
    if (!only.empty() && name != only) continue;
    MountedVolume m;
    auto found = listed.find(name);
    if (found != listed.end()) m = found->second;
    // A server that died has its volumes adopted (or mounted again) by the supervisor; until
    // then they are not "unmounted behind our back", which would have them mounted afresh.
    if (silent.count(entry.shard)) m.serving = true;
    m.volume = name;
    m.claim = entry.request.claim;
    m.source = entry.request.source;
    m.mount_path = entry.mount_path;
    m.device = entry.device;
    out.push_back(std::move(m));
  }
  return out;
}

std::set<std::string> VolumeSet::MountedVolumes() const {
  std::lock_guard lock(mu_);
  std::set<std::string> names;
  for (const auto& [name, entry] : volumes_) names.insert(name);
  return names;
}

std::vector<MountedVolume> VolumeSet::List() const {
  std::lock_guard lock(mu_);
  return ListLocked("");
}

std::optional<MountedVolume> VolumeSet::Find(const std::string& volume) const {
  std::lock_guard lock(mu_);
  if (!volumes_.count(volume)) return std::nullopt;
  std::vector<MountedVolume> listed = ListLocked(volume);
  if (listed.empty()) return std::nullopt;
  return listed.front();
}

std::vector<fs::OperationStats> VolumeSet::OperationStats() const {
  std::lock_guard lock(mu_);
  std::map<std::string, fs::OperationStats> sum;
  std::vector<std::string> order;
  for (const auto& [shard, server] : servers_) {
    auto reply = serve::Call(server.fd, {{"op", "STATS"}});
    if (!reply.ok()) continue;
    for (const json& j : (*reply)["ops"]) {
      fs::OperationStats op = serve::OperationStatsFromJson(j);
      auto [it, fresh] = sum.try_emplace(op.operation, op);
      if (fresh) {
        order.push_back(op.operation);
        continue;
      }
      it->second.count += op.count;
      it->second.total_seconds += op.total_seconds;
      if (it->second.bucket_counts.size() < op.bucket_counts.size()) {
        it->second.bucket_counts.resize(op.bucket_counts.size());
      }
      for (size_t i = 0; i < op.bucket_counts.size(); ++i)
        it->second.bucket_counts[i] += op.bucket_counts[i];
    }
  }
  std::vector<fs::OperationStats> out;
  for (const std::string& name : order) out.push_back(sum[name]);
  return out;
}

unsigned VolumeSet::threads() const {
  std::lock_guard lock(mu_);
  unsigned total = 0;
  for (const auto& [shard, server] : servers_) total += server.threads;
  return total;
}

std::set<dev_t> VolumeSet::ServedDevices() const {
  std::lock_guard lock(mu_);
  std::set<dev_t> devices;
  for (const auto& [name, entry] : volumes_) devices.insert(entry.device);
  for (const auto& [name, mount] : HeldMountsLocked()) devices.insert(mount.device);
  return devices;
}

std::set<pid_t> VolumeSet::ServerPids() const {
  std::lock_guard lock(mu_);
  std::set<pid_t> pids;
  for (const auto& [shard, server] : servers_) pids.insert(server.pid);
  return pids;
}

}  // namespace claimfs::mount
