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

class Server {
 public:
  Server(const VolumeServerOptions& options, std::unique_ptr<fs::ServerPool> pool)
      : options_(options), pool_(std::move(pool)) {}

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
    if (op == "MOUNT") {
      dev_t device = 0;
      Status s = MountLocked(request, &device);
      return serve::Reply(s, {{"device", static_cast<uint64_t>(device)}});
    }
    if (op == "UNMOUNT") {
      UnmountLocked(request.value("volume", std::string()));
      return serve::Reply(Status::Ok());
    }
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

  Status MountLocked(const json& message, dev_t* device) {
    MountRequest request;
    serve::MountSettings settings;
    Status s = serve::ParseMountMessage(message, &request, &settings);
    if (!s.ok()) return s;
    if (volumes_.count(request.volume)) UnmountLocked(request.volume);
    if (volumes_.size() >= kMaxVolumesPerServer) {
      return Status::Unavailable("serving process " + std::to_string(options_.shard) +
                                 " already serves " + std::to_string(volumes_.size()) + " volumes");
    }
    fs::VolumeOptions o;
    o.source = request.source;
    o.mountpoint = settings.mountpoint;
    o.capacity_bytes = request.capacity_bytes;
    o.quota_errno = settings.quota_errno;
    o.allow_other = true;  // containers and every local user reach the volume
    o.fd_cache_budget = settings.fd_cache_budget;
    o.kernel_options.push_back("fsname=claimfs:" + request.volume);
    for (const std::string& option : request.mount_options) {
      s = fs::ParseMountOptions(option, &o);
      if (!s.ok()) return Status::Invalid(request.volume + ": " + s.message());
    }
    if (request.read_only) o.read_only = true;
    if (o.read_only) o.kernel_options.emplace_back("ro");

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
    Entry entry;
    entry.request = request;
    entry.mountpoint = o.mountpoint;
    struct stat st;
    // The pool serves the mount already, so stat reaches our own GETATTR.
    if (stat(o.mountpoint.c_str(), &st) == 0) entry.device = st.st_dev;
    entry.volume = std::move(*volume);
    *device = entry.device;
    log::Info("mounted {} for claim {} at {} ({} bytes{})", request.volume, request.claim,
              entry.mountpoint, request.capacity_bytes, o.read_only ? ", read-only" : "");
    volumes_[request.volume] = std::move(entry);
    Count();
    return Status::Ok();
  }

  void UnmountLocked(const std::string& name) {
    auto it = volumes_.find(name);
    if (it == volumes_.end()) return;
    it->second.volume->Stop();
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
  std::mutex mu_;                         // one request at a time
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
