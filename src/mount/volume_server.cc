#include "claimfs/mount/volume_server.h"

#include <fuse3/fuse_log.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "claimfs/common/log.h"
#include "claimfs/fs/server_pool.h"
#include "claimfs/fs/volume.h"
#include "claimfs/handoff/bundle_name.h"
#include "claimfs/handoff/holder_client.h"
#include "claimfs/mount/crash_point.h"
#include "serve_protocol.h"

namespace claimfs::mount {
namespace {

using nlohmann::json;

// libfuse's own messages, captured while a mount is set up, so that a refused mount says what
// libfuse refused (fuse_session_new fails with a generic result when it runs out of pthread
// keys, for instance).
std::mutex g_fuse_log_mu;
std::string g_fuse_log;  // GUARDED_BY(g_fuse_log_mu)

void CaptureFuseLog(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string line(buf);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (level <= FUSE_LOG_ERR) {
    std::lock_guard lock(g_fuse_log_mu);
    if (!g_fuse_log.empty()) g_fuse_log += "; ";
    g_fuse_log += line;
  }
  log::Debug("libfuse: {}", line);
}

std::string TakeFuseLog() {
  std::lock_guard lock(g_fuse_log_mu);
  return std::exchange(g_fuse_log, std::string());
}

// The holder's side of orphans (files unlinked while open, docs/dataplane.md 6): one holder
// connection of its own, shared by every volume of this process and used from FUSE worker
// threads, so apart from the request loop's holder_.
class OrphanHolder {
 public:
  OrphanHolder(std::string run_dir, std::string build_id)
      : run_dir_(std::move(run_dir)), build_id_(std::move(build_id)) {}

  int Put(const std::string& name, int fd) {
    std::lock_guard lock(mu_);
    Status s = Status::Unavailable("no holder");
    // Twice: a holder restarted since the last call needs a new connection.
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!ConnectLocked()) break;
      s = client_->Put(name, fd);
      if (s.code() == StatusCode::kAlreadyExists) {  // left by a server that died mid-release
        (void)client_->Drop(name);
        s = client_->Put(name, fd);
      }
      if (s.ok()) return 0;
      if (s.code() != StatusCode::kIOError && s.code() != StatusCode::kUnavailable) break;
      client_.reset();
    }
    log::Warn("the holder does not keep {}: {}", name, s.message());
    return -EIO;
  }

  void Drop(const std::string& name) {
    std::lock_guard lock(mu_);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!ConnectLocked()) return;
      Status s = client_->Drop(name);
      if (s.ok() || s.code() == StatusCode::kNotFound) return;
      client_.reset();
    }
  }

 private:
  bool ConnectLocked() {
    if (client_) return true;
    auto client = handoff::HolderClient::Connect(run_dir_, build_id_);
    if (!client.ok()) return false;
    client_ = std::make_unique<handoff::HolderClient>(std::move(*client));
    return true;
  }

  const std::string run_dir_, build_id_;
  std::mutex mu_;  // a leaf lock
  std::unique_ptr<handoff::HolderClient> client_;  // GUARDED_BY(mu_)
};

// Keeps one volume's orphans as claimfs.1.<pv>.orphan.<slot>.<gen> in the holder.
class HolderOrphanKeeper : public fs::OrphanKeeper {
 public:
  HolderOrphanKeeper(std::shared_ptr<OrphanHolder> holder, std::string volume)
      : holder_(std::move(holder)), volume_(std::move(volume)) {}

  int Keep(uint32_t slot, uint32_t generation, int fd) override {
    auto name = handoff::OrphanName(volume_, slot, generation);
    if (!name.ok()) {
      log::Warn("{}: an unlinked open file cannot be kept: {}", volume_, name.status().message());
      return -ENAMETOOLONG;
    }
    return holder_->Put(*name, fd);
  }

  void Forget(uint32_t slot, uint32_t generation) override {
    if (auto name = handoff::OrphanName(volume_, slot, generation); name.ok()) holder_->Drop(*name);
  }

 private:
  std::shared_ptr<OrphanHolder> holder_;
  const std::string volume_;
};

class Server {
 public:
  Server(const VolumeServerOptions& options, std::unique_ptr<fs::ServerPool> pool)
      : options_(options),
        pool_(std::move(pool)),
        orphans_(std::make_shared<OrphanHolder>(options.run_dir, options.build_id)) {}

  // One connection (main) until it closes.
  void Serve(int fd) {
    while (true) {
      auto request = serve::Receive(fd);
      if (!request.ok()) break;
      bool shutdown = false;
      json reply = Handle(*request, &shutdown);
      Status s = serve::Send(fd, reply);
      if (shutdown) {
        log::Info("serve {}: shut down by main", options_.shard);
        std::fflush(nullptr);
        _exit(0);
      }
      if (!s.ok()) break;
    }
    close(fd);
  }

 private:
  struct Entry {
    MountRequest request;
    std::string mountpoint;
    dev_t device = 0;
    std::unique_ptr<fs::Volume> volume;
  };

  json Handle(const json& request, bool* shutdown) {
    std::string op = request.value("op", std::string());
    std::lock_guard lock(mu_);
    if (op == "HELLO") {
      return serve::Reply(Status::Ok(), {{"version", serve::kProtocolVersion},
                                         {"build", options_.build_id},
                                         {"pid", getpid()},
                                         {"shard", options_.shard},
                                         {"threads", pool_->threads()},
                                         {"volumes", volumes_.size()}});
    }
    if (op == "MOUNT" || op == "ADOPT") {
      dev_t device = 0;
      Status s = op == "MOUNT" ? MountLocked(request, &device) : AdoptLocked(request, &device);
      if (!s.ok()) return serve::Reply(s);
      return serve::Reply(s, {{"device", static_cast<uint64_t>(device)}});
    }
    if (op == "UNMOUNT") {
      UnmountLocked(request.value("volume", std::string()));
      return serve::Reply(Status::Ok());
    }
    if (op == "RELEASE") return serve::Reply(ReleaseLocked(request.value("volume", std::string())));
    if (op == "SET_CAPACITY") {
      auto it = volumes_.find(request.value("volume", std::string()));
      if (it == volumes_.end()) {
        return serve::Reply(Status::NotFound("volume " + request.value("volume", std::string()) +
                                             " is not mounted"));
      }
      Status s = it->second.volume->SetCapacity(request.value("bytes", uint64_t{0}));
      if (s.ok()) it->second.request.capacity_bytes = request.value("bytes", uint64_t{0});
      return serve::Reply(s);
    }
    if (op == "LIST") {
      return ListLocked(request.value("after", std::string()),
                        request.value("only", std::string()));
    }
    if (op == "STATS") {
      json ops = json::array();
      for (const fs::OperationStats& s : pool_->Stats()) ops.push_back(serve::ToJson(s));
      return serve::Reply(Status::Ok(), {{"threads", pool_->threads()}, {"ops", ops}});
    }
    if (op == "SHUTDOWN") {
      while (!volumes_.empty()) UnmountLocked(volumes_.begin()->first);
      *shutdown = true;
      return serve::Reply(Status::Ok());
    }
    return serve::Reply(Status::Invalid("unknown request \"" + op + "\""));
  }

  // The volume's options as main asked for them; the same for a fresh mount and an adoption.
  Status OptionsFor(const json& message, MountRequest* request, fs::VolumeOptions* o) {
    serve::MountSettings settings;
    Status s = serve::ParseMountMessage(message, request, &settings);
    if (!s.ok()) return s;
    o->source = request->source;
    o->mountpoint = settings.mountpoint;
    o->capacity_bytes = request->capacity_bytes;
    o->quota_errno = settings.quota_errno;
    o->allow_other = true;  // containers and every local user reach the volume
    o->fd_cache_budget = settings.fd_cache_budget;
    o->kernel_options.push_back("fsname=claimfs:" + request->volume);
    o->orphan_keeper = std::make_shared<HolderOrphanKeeper>(orphans_, request->volume);
    for (const std::string& option : request->mount_options) {
      s = fs::ParseMountOptions(option, o);
      if (!s.ok()) return Status::Invalid(request->volume + ": " + s.message());
    }
    if (request->read_only) o->read_only = true;
    if (o->read_only) o->kernel_options.emplace_back("ro");
    if (volumes_.count(request->volume)) UnmountLocked(request->volume);
    if (volumes_.size() >= kMaxVolumesPerServer) {
      return Status::Unavailable("serving process " + std::to_string(options_.shard) +
                                 " already serves " + std::to_string(volumes_.size()) + " volumes");
    }
    return Status::Ok();
  }

  Status MountLocked(const json& message, dev_t* device) {
    MountRequest request;
    fs::VolumeOptions o;
    Status s = OptionsFor(message, &request, &o);
    if (!s.ok()) return s;
    (void)TakeFuseLog();
    auto volume = fs::Volume::Mount(o);
    std::string fuse_said = TakeFuseLog();
    if (!volume.ok()) {
      if (fuse_said.empty()) return volume.status();
      return Status(volume.status().code(), volume.status().message() + ": libfuse: " + fuse_said);
    }
    s = (*volume)->Start(pool_.get());
    if (!s.ok()) {
      (*volume)->Stop();
      return s;
    }
    DepositLocked(request.volume, **volume);
    AddLocked(request, o, std::move(*volume), device);
    log::Info("mounted {} for claim {} at {} ({} bytes{})", request.volume, request.claim,
              o.mountpoint, request.capacity_bytes, o.read_only ? ", read-only" : "");
    return Status::Ok();
  }

  // Serves a volume whose connection a dead (or released) server served, from the bundle the
  // holder kept: the programs using it see a pause, not an error (docs/dataplane.md 7). Main
  // makes sure no other process serves the connection.
  Status AdoptLocked(const json& message, dev_t* device) {
    MountRequest request;
    fs::VolumeOptions o;
    Status s = OptionsFor(message, &request, &o);
    if (!s.ok()) return s;
    handoff::HolderClient* holder = HolderLocked();
    if (holder == nullptr) return Status::Unavailable("no holder keeps " + request.volume);
    auto connection_name = handoff::ConnectionName(request.volume);
    auto arena_name = handoff::ArenaName(request.volume);
    if (!connection_name.ok()) return connection_name.status();
    if (!arena_name.ok()) return arena_name.status();
    auto connection = holder->Take(*connection_name);
    if (!connection.ok()) return connection.status();
    auto arena = holder->Take(*arena_name);
    if (!arena.ok()) return arena.status();
    fs::VolumeBundle bundle{connection->release(), arena->release(), {}};
    TakeOrphansLocked(holder, request.volume, &bundle);
    auto volume = fs::Volume::Adopt(o, bundle);
    if (!volume.ok()) return volume.status();
    s = (*volume)->Start(pool_.get());
    if (!s.ok()) {
      (*volume)->Release();
      return s;
    }
    AddLocked(request, o, std::move(*volume), device);
    log::Info("adopted {} for claim {} at {}: its connection and open files carried over",
              request.volume, request.claim, o.mountpoint);
    return Status::Ok();
  }

  // The files of `volume` that were unlinked while open, as the holder keeps them (Adopt
  // checks each against the arena). One that cannot be taken is left to the holder: its open
  // files then answer errors, the rest of the volume is served.
  void TakeOrphansLocked(handoff::HolderClient* holder, const std::string& volume,
                         fs::VolumeBundle* bundle) {
    auto names = holder->List();
    if (!names.ok()) {
      log::Warn("{}: cannot list the files unlinked while open: {}", volume, names.status().message());
      return;
    }
    for (const std::string& n : *names) {
      auto parsed = handoff::ParseBundleName(n);
      if (!parsed.ok() || parsed->pv != volume || parsed->part != handoff::BundlePart::kOrphan) continue;
      auto fd = holder->Take(n);
      if (!fd.ok()) {
        log::Warn("{}: cannot take {}: {}", volume, n, fd.status().message());
        continue;
      }
      bundle->orphans.push_back({parsed->orphan_slot, parsed->orphan_generation, fd->release()});
    }
  }

  // Stops serving a volume without unmounting it, for a server of main's build to adopt
  // (docs/dataplane.md 7.4): only once the holder keeps its bundle. Requests wait in the kernel.
  Status ReleaseLocked(const std::string& name) {
    auto it = volumes_.find(name);
    if (it == volumes_.end()) return Status::NotFound("volume " + name + " is not served here");
    auto connection_name = handoff::ConnectionName(name);
    auto arena_name = handoff::ArenaName(name);
    if (!connection_name.ok()) return connection_name.status();
    if (!arena_name.ok()) return arena_name.status();
    auto held = [&] {
      handoff::HolderClient* holder = HolderLocked();
      if (holder == nullptr) return false;
      auto names = holder->List();
      if (!names.ok()) return false;
      bool connection = false, arena = false;
      for (const std::string& n : *names) {
        connection = connection || n == *connection_name;
        arena = arena || n == *arena_name;
      }
      return connection && arena;
    };
    // Under systemd the bundle went on to the fd store: the holder gets a fresh copy.
    if (!held()) DepositLocked(name, *it->second.volume);
    if (!held()) return Status::Unavailable("the holder does not keep " + name);
    it->second.volume->Release();
    CrashPoint("serve.after_release");  // served by nobody, and main not told yet
    log::Info("released {} (claim {}) for another serving process", name, it->second.request.claim);
    volumes_.erase(it);
    Count();
    return Status::Ok();
  }

  void AddLocked(const MountRequest& request, const fs::VolumeOptions& o,
                 std::unique_ptr<fs::Volume> volume, dev_t* device) {
    Entry entry;
    entry.request = request;
    entry.mountpoint = o.mountpoint;
    struct stat st;
    // The pool serves the mount already, so stat reaches our own GETATTR.
    if (stat(o.mountpoint.c_str(), &st) == 0) entry.device = st.st_dev;
    *device = entry.device;
    entry.volume = std::move(volume);
    volumes_[request.volume] = std::move(entry);
    Count();
  }

  // The holder (`claimfsd: hold`, started by main) keeps a copy of each volume's connection and
  // arena, so that the volume outlives this process.
  handoff::HolderClient* HolderLocked() {
    if (!holder_) {
      auto client = handoff::HolderClient::Connect(options_.run_dir, options_.build_id);
      if (!client.ok()) {
        log::Warn("serve {}: no holder: {}", options_.shard, client.status().message());
        return nullptr;
      }
      holder_ = std::make_unique<handoff::HolderClient>(std::move(*client));
    }
    return holder_.get();
  }

  void DepositLocked(const std::string& name, const fs::Volume& volume) {
    auto bundle = volume.Bundle();
    if (!bundle.ok()) {
      log::Warn("{} does not outlive its serving process: {}", name, bundle.status().message());
      return;
    }
    handoff::UniqueFd connection(bundle->connection_fd), arena(bundle->arena_fd);
    auto connection_name = handoff::ConnectionName(name);
    auto arena_name = handoff::ArenaName(name);
    auto prefix = handoff::VolumePrefix(name);
    Status s = !connection_name.ok() ? connection_name.status()
               : !arena_name.ok()    ? arena_name.status()
                                     : prefix.status();
    // Twice: a holder restarted since the last call needs a new connection.
    for (int attempt = 0; s.ok() && attempt < 2; ++attempt) {
      handoff::HolderClient* holder = HolderLocked();
      if (holder == nullptr) {
        s = Status::Unavailable("no holder");
        break;
      }
      (void)holder->DropPrefix(*prefix);  // an earlier mount's bundle
      // The connection last: a bundle with a connection is complete.
      s = holder->Put(*arena_name, arena.get());
      if (s.ok()) s = holder->Put(*connection_name, connection.get());
      if (s.ok()) return;
      holder_.reset();
      if (attempt == 0) s = Status::Ok();
    }
    log::Warn("{} does not outlive its serving process: {}", name, s.message());
  }

  void UnmountLocked(const std::string& name) {
    auto it = volumes_.find(name);
    if (it == volumes_.end()) return;
    it->second.volume->Stop();
    // The holder's copy would keep the connection alive, unserved, under files still open.
    if (auto prefix = handoff::VolumePrefix(name); prefix.ok()) {
      if (handoff::HolderClient* holder = HolderLocked()) (void)holder->DropPrefix(*prefix);
    }
    log::Info("unmounted {} from {}", name, it->second.mountpoint);
    volumes_.erase(it);
    Count();
  }

  json ListLocked(const std::string& after, const std::string& only) {
    json out = json::array();
    auto it = after.empty() ? volumes_.begin() : volumes_.upper_bound(after);
    if (!only.empty()) it = volumes_.find(only);
    for (; it != volumes_.end() && out.size() < serve::kListPage; ++it) {
      if (!only.empty() && it->first != only) break;
      const Entry& e = it->second;
      serve::ListedVolume v;
      v.request = e.request;
      v.mounted.mount_path = e.mountpoint;
      v.mounted.device = e.device;
      v.mounted.read_only = e.volume->options().read_only;
      v.mounted.serving = e.volume->serving();
      v.mounted.usage = e.volume->Usage();
      out.push_back(serve::ToJson(v));
    }
    bool more = only.empty() && it != volumes_.end();
    return serve::Reply(Status::Ok(), {{"volumes", out}, {"more", more}});
  }

  void Count() {
    if (options_.on_volume_count) options_.on_volume_count(volumes_.size());
  }

  const VolumeServerOptions options_;
  std::unique_ptr<fs::ServerPool> pool_;  // outlives every volume
  const std::shared_ptr<OrphanHolder> orphans_;  // the volumes' OrphanKeepers share it
  std::mutex mu_;                         // one request at a time
  std::unique_ptr<handoff::HolderClient> holder_;  // GUARDED_BY(mu_)
  std::map<std::string, Entry> volumes_;  // by PV name; GUARDED_BY(mu_)
};

}  // namespace

int RunVolumeServer(const VolumeServerOptions& options) {
  // Main drives the lifecycle: a terminal's Ctrl-C or a stop of main's process group must not
  // end the volumes.
  (void)setsid();
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(sig, SIG_IGN);
  // The run directory as the working directory: a leftover server is recognisable by it.
  if (chdir(options.run_dir.c_str()) != 0) {
    log::Error("serve {}: cannot enter {}: {}", options.shard, options.run_dir, strerror(errno));
    return 1;
  }
  fuse_set_log_func(CaptureFuseLog);
  auto pool = fs::ServerPool::Create(options.threads);
  if (!pool.ok()) {
    log::Error("serve {}: {}", options.shard, pool.status().message());
    return 1;
  }
  auto listen_fd = serve::Listen(serve::SocketPath(options.run_dir, options.shard));
  if (!listen_fd.ok()) {
    log::Error("serve {}: {}", options.shard, listen_fd.status().message());
    return 1;
  }
  auto server = std::make_shared<Server>(options, std::move(*pool));
  if (options.on_volume_count) options.on_volume_count(0);
  log::Debug("serve {}: listening with {} FUSE threads", options.shard, options.threads);
  while (true) {
    int fd = serve::Accept(*listen_fd);
    if (fd < 0) {
      if (errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    std::thread([server, fd] { server->Serve(fd); }).detach();
  }
}

}  // namespace claimfs::mount
