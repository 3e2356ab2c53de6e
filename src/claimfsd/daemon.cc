#include "daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "claimfs/common/log.h"
#include "claimfs/model/host_path.h"
#include "claimfs/model/objects.h"
#include "claimfs/mount/mount_root.h"
#include "claimfs/provisioner/volume_directory.h"
#include "claimfs/store/write_batch.h"
#include "lease_file.h"
#include "serve_role.h"
#include "trusted_path.h"

namespace claimfs::claimfsd {
namespace {

using Clock = std::chrono::steady_clock;
using controller::Action;
using controller::ActionType;

constexpr char kDefaultClassName[] = "local";
constexpr char kProvisionerName[] = "claimfs.io/local";
constexpr char kDefaultClassAnnotation[] = "storageclass.kubernetes.io/is-default-class";
// A pass that keeps finding work stops after this many rounds and waits for the next tick.
constexpr int kMaxRoundsPerWake = 16;
constexpr auto kTick = std::chrono::seconds(1);
constexpr auto kMaxBackoff = std::chrono::seconds(60);

std::string Now() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 random(std::random_device{}());
  std::string out;
  static const char* digits = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(random() & 0xff);
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

// An RFC 4122 version 4 UUID.
std::string NewUid() {
  std::string h = RandomHex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

// Field 22 of /proc/<pid>/stat, the process's start time: with the pid it names one process
// even after the pid is reused. 0 when the process is gone.
unsigned long long ProcessStartTime(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return std::stoull(field);
  }
  return 0;
}

std::pair<std::string, std::string> SplitClaimKey(const std::string& key) {
  size_t slash = key.find('/');
  if (slash == std::string::npos) return {"default", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

std::string ActionKey(const Action& a) {
  return std::string(controller::ToString(a.type)) + " " + a.volume;
}

// Events: the controller hands back an event it already counted (count = total); the store
// folds a repeat into the event it keeps by adding counts, so it gets the increase only.
model::Event EventIncrement(model::Event event, const std::vector<model::Event>& known) {
  for (const model::Event& e : known) {
    if (e.metadata.name == event.metadata.name) {
      event.count = std::max(1, event.count - e.count);
      break;
    }
  }
  return event;
}

template <typename T>
bool Stored(const std::vector<T>& objects, const T& object) {
  for (const T& o : objects) {
    if (o.metadata.name == object.metadata.name && o.metadata.namespace_ == object.metadata.namespace_) {
      return true;
    }
  }
  return false;
}

// The store operations for controller writes: a kPut creates an object the snapshot did not
// hold and updates one it did; events go in as increments over the snapshot's.
store::WriteBatch ToBatch(const std::vector<controller::Write>& writes,
                          const store::Snapshot& stored, const std::vector<model::Event>& events) {
  store::WriteBatch batch;
  for (const controller::Write& w : writes) {
    std::visit(
        [&](const auto& object) {
          using T = std::decay_t<decltype(object)>;
          if constexpr (std::is_same_v<T, model::Event>) {
            if (w.op == controller::Write::Op::kPut) batch.AddEvent(EventIncrement(object, events));
          } else {
            store::Kind kind = std::is_same_v<T, model::PersistentVolume>
                                   ? store::Kind::kPersistentVolume
                                   : store::Kind::kPersistentVolumeClaim;
            if (w.op == controller::Write::Op::kRemove) {
              batch.Delete(kind, object.metadata.namespace_, object.metadata.name,
                           object.metadata.resource_version);
            } else if constexpr (std::is_same_v<T, model::PersistentVolume>) {
              if (Stored(stored.volumes, object)) {
                batch.Update(object);
              } else {
                batch.Create(object);
              }
            } else {
              if (Stored(stored.claims, object)) {
                batch.Update(object);
              } else {
                batch.Create(object);
              }
            }
          }
        },
        w.object);
  }
  return batch;
}

// Per-volume fd cache budget: half the fd limit, shared by as many volumes as may be mounted.
size_t FdCacheBudget(int max_volumes) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;  // systemd's LimitNOFILE sets the hard limit
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  size_t fds = limit.rlim_cur == RLIM_INFINITY ? 1 << 20 : limit.rlim_cur;
  size_t volumes = max_volumes > 0 ? static_cast<size_t>(max_volumes) : 256;
  return std::max<size_t>(64, fds / 2 / volumes);
}

std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// The directory a volume serves may only lie below a pool or an allowed hostPath prefix, and
// is reached without following symlinks. A hostPath PV whose type is unset or
// DirectoryOrCreate gets its directory when it is missing, as the kubelet and container
// runtimes do for such volumes; type Directory must exist. Returns the path in its normal form
// (the bytes the mount must use) and the identity of the directory the check reached. `created`
// says whether this call made the directory itself, even when a later step failed.
struct CheckedSource {
  std::string path;
  std::optional<provisioner::DirectoryIdentity> identity;
};
Result<CheckedSource> PrepareVolumeSource(const std::string& volume, const std::string& path,
                                          const std::vector<model::PersistentVolume>& volumes,
                                          const std::vector<std::string>& roots,
                                          const provisioner::DirectoryOwner& owner,
                                          bool* created) {
  auto normal = model::HostPath::Parse(path);
  if (!normal.ok()) {
    return Status::Forbidden("volume source " + model::EscapePathForMessage(path) + ": " +
                             model::HostPathProblem(path).value_or("not a usable path"));
  }
  bool create_missing = false;
  for (const model::PersistentVolume& pv : volumes) {
    if (pv.metadata.name != volume || !pv.spec.host_path) continue;
    std::string type = pv.spec.host_path->type.value_or("");
    create_missing = type.empty() || type == "DirectoryOrCreate";
  }
  auto identity = provisioner::OpenVolumeSource(normal->string(), roots, create_missing, created,
                                               owner);
  if (!identity.ok()) return identity.status();
  return CheckedSource{normal->string(), *identity};
}

// Whether the mount at `mount_path` serves the directory `expected`: its root reports the backing
// directory's inode (a forced GETATTR, not the kernel's cached root inode number).
Status VerifyMountedSource(const std::string& mount_path, const std::string& source,
                           const provisioner::DirectoryIdentity& expected) {
  struct statx st;
  if (::statx(AT_FDCWD, mount_path.c_str(), AT_STATX_FORCE_SYNC, STATX_INO, &st) != 0) {
    return Status::FromErrno("cannot stat the new mount " + mount_path, errno);
  }
  if (st.stx_ino != expected.ino) {
    return Status::Forbidden("volume source " + source +
                             " changed between its check and its mount (a component was "
                             "replaced, by a symlink perhaps): refusing to serve it");
  }
  return Status::Ok();
}

// Gives an existing directory of the daemon's exactly `mode` when it allows more, and says so: an
// older claimfsd made them reachable by every local user.
Status RestrictDirectory(const char* what, const std::string& path, mode_t mode) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("cannot open " + path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno("cannot stat " + path, err);
  }
  if ((st.st_mode & 07777 & ~mode) == 0) {
    ::close(fd);
    return Status::Ok();
  }
  int rc = ::fchmod(fd, mode);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::FromErrno("cannot restrict the mode of " + std::string(what) + " " + path, err);
  }
  log::Info("{} {}: mode {:04o} -> {:04o} (only root reaches it)", what, path, st.st_mode & 07777,
            mode);
  return Status::Ok();
}

std::string VolumePath(const model::PersistentVolume& pv) {
  if (pv.spec.host_path) return pv.spec.host_path->path;
  if (pv.spec.local) return pv.spec.local->path;
  return "";
}

// Ok when `records` (sorted by path, as the store lists them) say claimfsd created `path` for
// `volume` and it is still that directory (device and inode), or when nothing is at `path`;
// kForbidden otherwise.
Status IsCreatedDirectory(const std::string& volume, const std::string& path,
                          const std::vector<store::CreatedDirectory>& records) {
  if (path.empty()) return Status::Forbidden("volume " + volume + " has no path");
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();  // nothing there to lose
    return Status::FromErrno("cannot stat " + path, errno);
  }
  auto r = std::lower_bound(
      records.begin(), records.end(), path,
      [](const store::CreatedDirectory& record, const std::string& p) { return record.path < p; });
  if (r != records.end() && r->path == path && r->volume == volume && S_ISDIR(st.st_mode) &&
      r->device == static_cast<uint64_t>(st.st_dev) &&
      r->inode == static_cast<uint64_t>(st.st_ino)) {
    return Status::Ok();
  }
  return Status::Forbidden("claimfsd removes data only from directories it created, and " + path +
                           " is not one (or was replaced since); the data is kept");
}

// The owner and mode a claim asks for its new volume's root (a Docker volume's uid, gid and
// mode options), from its annotations.
Result<provisioner::DirectoryOwner> RequestedOwner(
    const std::string& claim_key, const std::vector<model::PersistentVolumeClaim>& claims) {
  provisioner::DirectoryOwner owner;
  for (const model::PersistentVolumeClaim& claim : claims) {
    if (controller::ClaimKey(claim) != claim_key) continue;
    auto number = [&](const char* annotation, int base) -> Result<std::optional<unsigned long>> {
      auto it = claim.metadata.annotations.find(annotation);
      if (it == claim.metadata.annotations.end()) return std::optional<unsigned long>();
      char* end = nullptr;
      errno = 0;
      unsigned long value = std::strtoul(it->second.c_str(), &end, base);
      if (it->second.empty() || *end != '\0' || errno != 0 || value > 0xffffffffUL) {
        return Status::Invalid("annotation " + std::string(annotation) + " of claim " +
                               claim_key + " is not a valid number: \"" + it->second + "\"");
      }
      return std::optional<unsigned long>(value);
    };
    auto uid = number(controller::kOwnerUidAnnotation, 10);
    if (!uid.ok()) return uid.status();
    auto gid = number(controller::kOwnerGidAnnotation, 10);
    if (!gid.ok()) return gid.status();
    auto mode = number(controller::kModeAnnotation, 8);
    if (!mode.ok()) return mode.status();
    if (*uid) owner.uid = static_cast<uid_t>(**uid);
    if (*gid) owner.gid = static_cast<gid_t>(**gid);
    if (*mode) owner.mode = static_cast<mode_t>(**mode & 07777);
  }
  return owner;
}

}  // namespace

Daemon::Daemon(yaml::DaemonConfig config) : config_(std::move(config)) {}

Daemon::~Daemon() { Stop(); }

Result<std::unique_ptr<Daemon>> Daemon::Start(const yaml::DaemonConfig& config) {
  std::unique_ptr<Daemon> d(new Daemon(config));
  Status s = d->Open();
  if (!s.ok()) {
    d->Stop();
    return s;
  }
  return d;
}

Status Daemon::Open() {
  const yaml::DaemonConfig config = config_;
  std::vector<std::pair<std::string, std::string>> trusted = {{"state directory", config.state_dir},
                                                              {"mount root", config.mount_root}};
  for (const yaml::PoolConfig& pool : config.pools) {
    trusted.emplace_back("pool " + pool.name, pool.path);
  }
  for (const auto& [what, path] : trusted) {
    Status s = CheckTrustedDirectory(what, path, Symlinks::kFollow);
    if (!s.ok()) return s;
  }
  for (const yaml::PoolConfig& pool : config.pools) {
    Status s = provisioner::EnsurePoolDirectory(pool.path);
    if (!s.ok()) return s;
    s = RestrictDirectory("pool directory", pool.path, provisioner::kPoolMode);
    if (!s.ok()) return s;
  }
  store::Options store_options;
  for (const yaml::PoolConfig& pool : config.pools) store_options.pool_paths.push_back(pool.path);
  auto store = store::StateStore::Open(config.state_dir, store_options);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  lease_path_ = config.state_dir + "/leases.json";
  RestoreLeases();

  // The mount root first: from here on a path below it is a volume or refuses writes.
  auto root = mount::MountRoot::Open(config.mount_root, config.state_dir + "/rw-root");
  if (!root.ok()) return root.status();
  mount_root_ = std::move(*root);

  mount::VolumeSetOptions vo;
  Status s = PrepareServing(config, &vo);
  if (!s.ok()) return s;
  vo.on_server_lost = [this](const mount::ServerLoss& loss) {
    RecordServerLost(loss);
  };
  vo.quota_errno = config.quota_errno;
  vo.threads = config.worker_threads;
  vo.fd_cache_budget = FdCacheBudget(config.max_volumes);
  // Docker's convention: its volumes are reachable by root only (their roots are 0755).
  if (config.volume_plugin.enabled.value_or(geteuid() == 0)) {
    vo.private_namespaces.insert(config.volume_plugin.namespace_);
  }
  // Serving processes that outlived an earlier main are taken over first: their mounts stay.
  auto volumes = mount::VolumeSet::Create(vo, mount_root_.get());
  if (!volumes.ok()) return volumes.status();
  volumes_ = std::move(*volumes);
  s = ReconcileMountRoot();
  if (!s.ok()) return s;

  s = CreateDefaultClassOnFirstStart();
  if (!s.ok()) return s;

  // Recovery: every Bound claim is mounted again (usage rescanned), half-done reclaims finish,
  // before any client sees the API.
  for (int round = 0; round < kMaxRoundsPerWake; ++round) {
    bool worked = false, failed = false;
    s = ReconcileOnce(&worked, &failed);
    if (!s.ok()) return s;
    if (!worked || failed) break;
  }
  volumes_->DropUnclaimedBundles();
  volumes_->RemoveStrayDirectories();
  WarnAboutUnnamedVolumeDirectories();

  api::ApiServerOptions ao;
  ao.socket_path = config.socket_path;
  ao.socket_mode = config.socket_mode;
  if (!config.socket_group.empty()) {
    if (struct group* g = getgrnam(config.socket_group.c_str())) {
      ao.socket_group = g->gr_gid;
    } else if (std::all_of(config.socket_group.begin(), config.socket_group.end(), ::isdigit)) {
      ao.socket_group = static_cast<gid_t>(std::stoul(config.socket_group));
    } else {
      return Status::Invalid("socket group \"" + config.socket_group + "\" does not exist");
    }
  }
  ao.max_request_bytes = static_cast<size_t>(config.api_max_request_bytes);
  ao.request_timeout_seconds = config.api_request_timeout_seconds;
  ao.state_dir = config.state_dir;
  if (!config.api_listen.empty()) {
    Status split = yaml::SplitListenAddress(config.api_listen, &ao.kube_host, &ao.kube_port);
    if (!split.ok())
      return Status::Invalid("api.listen " + config.api_listen + ": " + split.message());
  }
  auto api = api::ApiServer::Start(ao, store_.get(), this);
  if (!api.ok() && config.api_listen_optional && !ao.kube_host.empty() &&
      api.status().code() == StatusCode::kUnavailable &&
      api.status().message().find("address is already in use") != std::string::npos) {
    log::Warn(
        "the Kubernetes API for kubectl is not served: {}; start claimfsd with "
        "--kube-api ADDRESS to pick another",
        api.status().message());
    ao.kube_host.clear();
    api = api::ApiServer::Start(ao, store_.get(), this);
  }
  if (!api.ok()) return api.status();
  api_ = std::move(*api);
  if (api_->kube_port() != 0) {
    log::Info("serving the Kubernetes API for kubectl on https://{}:{} (claimctl kubeconfig)",
              ao.kube_host.find(':') != std::string::npos ? "[" + ao.kube_host + "]" : ao.kube_host,
              api_->kube_port());
  }

  // The Docker/Podman volume plugin: on by default for root (only root's engines use it). A
  // config that asks for it explicitly must get it; the default only warns.
  const yaml::VolumePluginConfig& vp = config.volume_plugin;
  if (vp.enabled.value_or(geteuid() == 0)) {
    api::VolumePluginOptions po;
    po.socket_path = vp.socket_path;
    po.socket_mode = ao.socket_mode;
    po.socket_group = ao.socket_group;
    po.namespace_ = vp.namespace_;
    auto plugin = api::VolumePluginServer::Start(po, store_.get(), this);
    if (plugin.ok()) {
      plugin_ = std::move(*plugin);
    } else if (vp.enabled.has_value()) {
      return plugin.status();
    } else {
      log::Warn("the Docker volume plugin is not served: {}", plugin.status().message());
    }
  }

  last_pass_ns_ = Clock::now().time_since_epoch().count();
  loop_ = std::thread([this] { Loop(); });
  log::Info("claimfsd is serving {} ({} volumes mounted under {})", config.socket_path,
            volumes_->MountedVolumes().size(), config.mount_root);
  return Status::Ok();
}

Status Daemon::CreateDefaultClassOnFirstStart() {
  auto version = store_->ResourceVersion();
  if (!version.ok()) return version.status();
  if (*version != "0") return Status::Ok();  // not a first start: the user's classes stand
  auto classes = store_->ListStorageClasses();
  if (!classes.ok()) return classes.status();
  if (!classes->empty()) return Status::Ok();
  model::StorageClass sc;
  sc.metadata.name = kDefaultClassName;
  sc.metadata.annotations[kDefaultClassAnnotation] = "true";
  sc.provisioner = kProvisionerName;
  {
    std::lock_guard lock(config_mu_);
    if (!config_.pools.empty()) sc.parameters["pool"] = config_.pools.front().name;
  }
  sc.reclaim_policy = model::ReclaimPolicy::kDelete;
  sc.allow_volume_expansion = true;
  sc.volume_binding_mode = model::VolumeBindingMode::kImmediate;
  auto created = store_->Create(sc);
  if (!created.ok()) return created.status();
  log::Info("first start: created the default StorageClass \"{}\"", kDefaultClassName);
  return Status::Ok();
}

void Daemon::Stop() {
  if (plugin_) plugin_->Stop();
  if (api_) api_->Stop();
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  plugin_.reset();
  api_.reset();
  if (volumes_) volumes_->UnmountAll();
  volumes_.reset();  // it makes its directories through mount_root_
  if (mount_root_) {
    Status s = mount_root_->Release();
    if (!s.ok()) log::Warn("{}", s.message());
    mount_root_.reset();
  }
}

Status Daemon::ReconcileMountRoot() {
  // Mount paths of the claims that stay: the first pass mounts them again on their directories.
  auto claims = store_->ListPersistentVolumeClaims("");
  if (!claims.ok()) return claims.status();
  std::set<std::string> keep;
  for (const model::PersistentVolumeClaim& claim : *claims) {
    if (claim.status.phase != model::ClaimPhase::kBound) continue;
    keep.insert(controller::ClaimKey(claim));
  }
  auto detached = mount::ReconcileMounts(*mount_root_, keep, volumes_->ServedDevices());
  if (!detached.ok()) return detached.status();
  return Status::Ok();
}

void Daemon::Reload(const yaml::DaemonConfig& config) {
  std::lock_guard lock(config_mu_);
  auto needs_restart = [&](const char* what, bool changed) {
    if (changed) log::Warn("config reload: a new {} takes effect at the next restart", what);
  };
  needs_restart("stateDir", config.state_dir != config_.state_dir);
  needs_restart("mountRoot", config.mount_root != config_.mount_root);
  needs_restart("socket", config.socket_path != config_.socket_path ||
                              config.socket_mode != config_.socket_mode ||
                              config.socket_group != config_.socket_group);
  needs_restart("workerThreads", config.worker_threads != config_.worker_threads);
  needs_restart("quotaErrno", config.quota_errno != config_.quota_errno);
  needs_restart("api limits", config.api_request_timeout_seconds != config_.api_request_timeout_seconds ||
                                  config.api_max_request_bytes != config_.api_max_request_bytes);
  bool same_pools = config.pools.size() == config_.pools.size();
  for (size_t i = 0; same_pools && i < config.pools.size(); ++i) {
    same_pools = config.pools[i].name == config_.pools[i].name &&
                 config.pools[i].path == config_.pools[i].path;
  }
  if (same_pools) {
    config_.pools = config.pools;  // capacities may change
  } else {
    needs_restart("list of pools", true);
  }
  config_.max_volumes = config.max_volumes;
  config_.allowed_host_path_prefixes = config.allowed_host_path_prefixes;
  config_.log_level = config.log_level;
  (void)log::SetLevel(config.log_level);
  log::Info("config reloaded");
  ObjectsChanged();
}

bool Daemon::Alive() const {
  auto last = Clock::time_point(Clock::duration(last_pass_ns_.load()));
  return Clock::now() - last < std::chrono::seconds(20);
}

std::string Daemon::StatusLine() const {
  size_t mounted = volumes_ ? volumes_->MountedVolumes().size() : 0;
  return std::to_string(mounted) + " volume" + (mounted == 1 ? "" : "s") + " mounted";
}

void Daemon::ObjectsChanged() {
  {
    std::lock_guard lock(wake_mu_);
    wake_ = true;
  }
  wake_cv_.notify_all();
}

void Daemon::Loop() {
  while (true) {
    {
      std::unique_lock lock(wake_mu_);
      wake_cv_.wait_for(lock, kTick, [this] { return wake_ || stopping_; });
      if (stopping_) return;
      wake_ = false;
    }
    DropLeasesOfExitedHolders();
    bool any_work = false;
    for (int round = 0; round < kMaxRoundsPerWake; ++round) {
      bool worked = false, failed = false;
      Status s = ReconcileOnce(&worked, &failed);
      any_work = any_work || worked;
      if (!s.ok()) {
        log::Error("reconcile: {}", s.message());
        break;
      }
      if (!worked || failed) break;
    }
    if (any_work) volumes_->RemoveStrayDirectories();
    passes_++;
    last_pass_ns_ = Clock::now().time_since_epoch().count();
  }
}

void Daemon::WarnAboutUnnamedVolumeDirectories() {
  auto stored = store_->ReadSnapshot();
  if (!stored.ok()) return;
  std::set<std::string> named;
  for (const model::PersistentVolume& pv : stored->volumes) {
    std::string path = pv.spec.host_path ? pv.spec.host_path->path
                       : pv.spec.local   ? pv.spec.local->path
                                         : "";
    if (!path.empty()) named.insert(std::filesystem::path(path).lexically_normal());
  }
  std::vector<std::pair<std::string, std::string>> pools;
  {
    std::lock_guard lock(config_mu_);
    for (const yaml::PoolConfig& p : config_.pools) pools.emplace_back(p.name, p.path);
  }
  for (const auto& [name, path] : pools) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
      std::string dir = entry.path().lexically_normal();
      if (entry.path().filename().string().rfind("pvc-", 0) != 0 || named.count(dir)) continue;
      log::Warn(
          "pool {} holds {}, which no PersistentVolume names: left in place (a deleted Retain "
          "volume keeps its data); remove it if its data is not wanted",
          name, dir);
    }
  }
}

// A pool promises no more than it can hold: what its mounted volumes already use plus what its
// filesystem has free, or its configured capacity if smaller. Data of volumes not mounted is
// not counted, which errs towards promising less.
std::vector<controller::Pool> Daemon::Pools() const {
  std::vector<yaml::PoolConfig> configured;
  {
    std::lock_guard lock(config_mu_);
    configured = config_.pools;
  }
  std::map<std::filesystem::path, int64_t> used_in;
  for (const mount::MountedVolume& m : volumes_->List()) {
    used_in[std::filesystem::path(m.source).lexically_normal().parent_path()] +=
        static_cast<int64_t>(m.usage.used_bytes);
  }
  std::vector<controller::Pool> pools;
  for (const yaml::PoolConfig& p : configured) {
    controller::Pool pool{p.name, p.path, p.capacity_bytes.value_or(0)};
    if (auto available = provisioner::FilesystemAvailable(p.path); available.ok()) {
      std::filesystem::path dir = std::filesystem::path(p.path).lexically_normal();
      if (!dir.has_filename()) dir = dir.parent_path();
      int64_t room = *available + used_in[dir];
      pool.capacity_bytes = p.capacity_bytes ? std::min(*p.capacity_bytes, room) : room;
    }
    pools.push_back(std::move(pool));
  }
  return pools;
}

std::vector<std::string> Daemon::VolumeRoots() const {
  std::lock_guard lock(config_mu_);
  std::vector<std::string> roots = config_.allowed_host_path_prefixes;
  for (const yaml::PoolConfig& p : config_.pools) roots.push_back(p.path);
  return roots;
}

std::set<std::string> Daemon::ClaimsInUse(const store::Snapshot& snapshot) {
  std::set<std::string> in_use;
  {
    std::lock_guard lock(leases_mu_);
    for (const auto& [id, held] : leases_) in_use.insert(held.lease.claim);
  }
  // The /proc scan costs a walk over every process: only claims on their way out need it.
  std::map<dev_t, std::string> primary;
  std::map<dev_t, std::string> claim_of;
  std::optional<std::vector<mount::MountedVolume>> mounted;  // one LIST of the servers a pass
  for (const model::PersistentVolumeClaim& claim : snapshot.claims) {
    if (!claim.metadata.deletion_timestamp) continue;
    std::string key = controller::ClaimKey(claim);
    if (!mounted) mounted = volumes_->List();
    for (const mount::MountedVolume& m : *mounted) {
      if (m.claim != key || m.device == 0) continue;
      primary[m.device] = m.mount_path;
      claim_of[m.device] = key;
    }
  }
  if (primary.empty()) {
    in_use_reason_.clear();
    return in_use;
  }
  std::map<std::string, std::string> reasons;
  for (const auto& [device, users] : scanner_.Scan(primary, volumes_->ServerPids())) {
    if (!users.any()) continue;
    in_use.insert(claim_of[device]);
    reasons[claim_of[device]] = users.Describe();
  }
  for (const auto& [claim, why] : reasons) {
    auto it = in_use_reason_.find(claim);
    if (it == in_use_reason_.end() || it->second != why) {
      log::Info("claim {} is being deleted but is in use ({}): waiting", claim, why);
    }
  }
  in_use_reason_ = std::move(reasons);
  return in_use;
}

Status Daemon::Perform(const Action& a, const std::vector<model::PersistentVolume>& volumes,
                       const std::vector<model::PersistentVolumeClaim>& claims) {
  switch (a.type) {
    case ActionType::kProvision: {
      std::string pool_path = a.path.substr(0, a.path.rfind('/'));
      auto owner = RequestedOwner(a.claim, claims);
      if (!owner.ok()) return owner.status();
      Status s = provisioner::CreateVolumeDirectory(pool_path, a.volume, *owner);
      if (!s.ok()) return s;
      Status r = RecordCreatedDirectory(a.volume, a.path);
      if (!r.ok()) {
        // The volume still works; only its Delete will refuse and keep the data.
        log::Error("cannot record that claimfsd created {}: {}", a.path, r.message());
      }
      return Status::Ok();
    }
    case ActionType::kExpand: {
      if (!volumes_->MountedVolumes().count(a.volume)) return Status::Ok();  // at the next mount
      Status s = volumes_->SetCapacity(a.volume, static_cast<uint64_t>(a.size_bytes));
      if (s.ok()) {
        auto size = [](int64_t bytes) {
          return model::Quantity::FromBytes(bytes, model::QuantityFormat::kBinarySI).ToString();
        };
        log::Info("claim {}: volume {} expanded from {} to {}", a.claim, a.volume,
                  size(a.old_size_bytes), size(a.size_bytes));
      }
      return s;
    }
    case ActionType::kMount: {
      auto owner = RequestedOwner(a.claim, claims);
      if (!owner.ok()) return owner.status();
      bool created = false;
      auto source =
          PrepareVolumeSource(a.volume, a.path, volumes, VolumeRoots(), *owner, &created);
      if (created) {
        Status r = RecordCreatedDirectory(a.volume, a.path);
        if (!r.ok()) log::Error("cannot record that claimfsd created {}: {}", a.path, r.message());
      }
      if (!source.ok()) return source.status();
      mount::MountRequest r;
      r.volume = a.volume;
      r.claim = a.claim;
      r.source = source->path;
      r.capacity_bytes = static_cast<uint64_t>(a.size_bytes);
      r.read_only = a.read_only;
      r.mount_options = a.mount_options;
      Status s = volumes_->Mount(r);
      if (!s.ok() || !source->identity) return s;
      // The volume layer opens the source by path again: a component swapped for a symlink
      // since the walk above would be followed there. Serve only the directory that was checked.
      s = VerifyMountedSource(volumes_->MountPath(a.claim), source->path, *source->identity);
      if (!s.ok()) (void)volumes_->Unmount(a.volume);
      return s;
    }
    case ActionType::kUnmount:
      return volumes_->Unmount(a.volume);
    case ActionType::kDeleteVolumeData: {
      Status s = CheckCreatedDirectory(a.volume, a.path);
      if (s.ok()) s = provisioner::DeleteVolumeDirectory(a.path, VolumeRoots());
      if (!s.ok()) return s;
      Status r = store_->ForgetCreatedDirectory(a.path);
      if (!r.ok()) log::Warn("cannot forget the record of {}: {}", a.path, r.message());
      return Status::Ok();
    }
    case ActionType::kRecycle: {
      Status s = CheckCreatedDirectory(a.volume, a.path);
      if (!s.ok()) return s;
      return provisioner::ScrubVolumeDirectory(a.path, VolumeRoots());
    }
  }
  return Status::Internal("unknown action");
}

Status Daemon::ReconcileOnce(bool* worked, bool* failed) {
  *worked = false;
  *failed = false;
  auto stored = store_->ReadSnapshot();
  if (!stored.ok()) return stored.status();
  auto events = store_->ListAllEvents();
  if (!events.ok()) return events.status();

  // A mount that went away behind our back is dropped, so the plan mounts it again.
  for (const mount::MountedVolume& m : volumes_->List()) {
    if (!m.serving) {
      log::Warn("{} was unmounted from outside claimfsd; mounting it again", m.mount_path);
      (void)volumes_->Unmount(m.volume);
    }
  }

  controller::Snapshot snapshot;
  snapshot.classes = stored->storage_classes;
  snapshot.volumes = stored->volumes;
  snapshot.claims = stored->claims;
  snapshot.events = *events;
  snapshot.pools = Pools();
  {
    std::lock_guard lock(config_mu_);
    snapshot.max_volumes = config_.max_volumes;
    snapshot.allowed_host_path_prefixes = config_.allowed_host_path_prefixes;
  }
  snapshot.overlaps = Overlaps(stored->volumes);
  snapshot.created_directories = CreatedDirectories(stored->volumes);
  snapshot.in_use = ClaimsInUse(*stored);
  {
    std::lock_guard lock(leases_mu_);
    snapshot.consumers = consumers_;
  }
  snapshot.mounted = volumes_->MountedVolumes();

  controller::Inputs inputs{Now(), NewUid};
  controller::Plan plan = controller::Reconcile(snapshot, inputs);
  if (plan.empty()) return Status::Ok();
  *worked = true;

  std::vector<std::optional<Status>> outcomes(plan.actions.size());
  auto now = Clock::now();
  for (size_t i = 0; i < plan.actions.size(); ++i) {
    const Action& a = plan.actions[i];
    if (a.guard && !(outcomes[*a.guard] && outcomes[*a.guard]->ok())) continue;
    std::string key = ActionKey(a);
    auto backoff = backoff_.find(key);
    if (backoff != backoff_.end() && now < backoff->second.next_try) continue;
    Status s = Perform(a, stored->volumes, stored->claims);
    if (s.ok()) {
      backoff_.erase(key);
    } else {
      *failed = true;
      failed_actions_++;
      Backoff& b = backoff_[key];
      b.failures++;
      auto delay = std::min<std::chrono::seconds>(kMaxBackoff, std::chrono::seconds(1 << std::min(b.failures - 1, 6)));
      b.next_try = now + delay;
      log::Warn("{} {} failed: {}", controller::ToString(a.type), a.volume, s.message());
    }
    outcomes[i] = std::move(s);
  }

  std::vector<controller::Write> writes =
      controller::WritesToCommit(snapshot, plan, outcomes, inputs);
  store::WriteBatch batch = ToBatch(writes, *stored, snapshot.events);
  if (batch.empty()) return Status::Ok();
  Status s = store_->Apply(batch);
  if (!s.ok()) {
    // The commit is all or nothing, but the actions happened. A volume directory provisioned in
    // this round is named only by its new PV: dropping that write would leave the directory to
    // no one (a claim deleted right after it was created made the claim's write fail). The PV
    // is committed alone; the next round binds it, or releases and reclaims it.
    std::vector<controller::Write> records = controller::ProvisionedVolumes(plan, outcomes);
    if (!records.empty()) {
      Status r = store_->Apply(ToBatch(records, *stored, snapshot.events));
      for (const controller::Write& w : records) {
        const auto& pv = std::get<model::PersistentVolume>(w.object);
        if (r.ok()) {
          log::Info(
              "recorded provisioned volume {} on its own ({}): the next round binds or "
              "reclaims it",
              pv.metadata.name, s.message());
        } else {
          log::Error(
              "cannot record provisioned volume {}: {}; its directory {} is named by no "
              "PersistentVolume",
              pv.metadata.name, r.message(),
              pv.spec.host_path ? pv.spec.host_path->path : std::string("?"));
        }
      }
    }
  }
  if (s.code() == StatusCode::kConflict || s.code() == StatusCode::kNotFound) {
    // A client changed an object since the snapshot: the next round sees its change.
    log::Debug("reconcile: {}; retrying with fresh state", s.message());
    return Status::Ok();
  }
  return s;
}

void Daemon::DropLeasesOfExitedHolders() {
  std::lock_guard lock(leases_mu_);
  bool dropped = false;
  for (auto it = leases_.begin(); it != leases_.end();) {
    const HeldLease& h = it->second;
    if (h.lease.pid > 0 && ProcessStartTime(h.lease.pid) != h.start_time) {
      log::Info("lease {} on {} released: its holder (pid {}) exited", h.lease.id, h.lease.claim,
                h.lease.pid);
      it = leases_.erase(it);
      dropped = true;
      continue;
    }
    ++it;
  }
  if (dropped) SaveLeasesLocked();
}

void Daemon::RestoreLeases() {
  auto stored = LoadLeases(lease_path_);
  if (!stored.ok()) {
    // Losing in-use protection is safer than refusing to start: claims stay, only leases go.
    log::Error("leases not restored: {}", stored.status().message());
    return;
  }
  std::lock_guard lock(leases_mu_);
  for (const StoredLease& s : *stored) {
    if (s.lease.pid > 0 && ProcessStartTime(s.lease.pid) != s.start_time) continue;
    log::Info("lease {} on {} held by {} restored", s.lease.id, s.lease.claim, s.lease.holder);
    leases_[s.lease.id] = HeldLease{s.lease, s.start_time};
  }
  SaveLeasesLocked();
}

void Daemon::SaveLeasesLocked() {
  std::vector<StoredLease> leases;
  for (const auto& [id, held] : leases_) leases.push_back({held.lease, held.start_time});
  Status s = SaveLeases(lease_path_, leases);
  if (!s.ok()) log::Warn("leases not saved (a restart would forget them): {}", s.message());
}

Result<api::Lease> Daemon::AcquireLease(const std::string& claim_key, const std::string& holder,
                                        int pid) {
  auto [ns, name] = SplitClaimKey(claim_key);
  auto claim = store_->GetPersistentVolumeClaim(ns, name);
  if (!claim.ok()) return claim.status();
  std::string key = ns + "/" + name;
  if (claim->metadata.deletion_timestamp) {
    return Status::Forbidden("persistentvolumeclaim \"" + name + "\" is being deleted");
  }
  if (claim->status.phase != model::ClaimPhase::kBound ||
      !volumes_->Find(claim->spec.volume_name)) {
    {
      std::lock_guard lock(leases_mu_);
      consumers_.insert(key);  // WaitForFirstConsumer claims bind once someone waits for them
    }
    ObjectsChanged();
    return Status::Unavailable("persistentvolumeclaim \"" + name + "\" is not bound and mounted yet");
  }
  unsigned long long start_time = 0;
  if (pid > 0) {
    start_time = ProcessStartTime(pid);
    if (start_time == 0) return Status::Invalid("process " + std::to_string(pid) + " does not exist");
  }
  bool once_pod = std::count(claim->spec.access_modes.begin(), claim->spec.access_modes.end(),
                             model::AccessMode::kReadWriteOncePod) > 0;
  std::lock_guard lock(leases_mu_);
  if (once_pod) {
    for (const auto& [id, held] : leases_) {
      if (held.lease.claim == key) {
        return Status::Conflict("persistentvolumeclaim \"" + name +
                                "\" is ReadWriteOncePod and already used by " + held.lease.holder);
      }
    }
  }
  HeldLease held;
  held.lease.id = RandomHex(8);
  held.lease.claim = key;
  held.lease.holder = holder;
  held.lease.pid = pid;
  held.lease.acquired = Now();
  held.start_time = start_time;
  leases_[held.lease.id] = held;
  SaveLeasesLocked();
  consumers_.erase(key);
  log::Info("lease {} on {} taken by {}", held.lease.id, key, holder);
  return held.lease;
}

Status Daemon::ReleaseLease(const std::string& claim_key, const std::string& lease_id) {
  {
    std::lock_guard lock(leases_mu_);
    auto it = leases_.find(lease_id);
    if (it == leases_.end() || it->second.lease.claim != claim_key) {
      return Status::NotFound("lease \"" + lease_id + "\" not found on " + claim_key);
    }
    leases_.erase(it);
    SaveLeasesLocked();
  }
  log::Info("lease {} on {} released", lease_id, claim_key);
  ObjectsChanged();  // a Terminating claim may be free now
  return Status::Ok();
}

std::vector<api::Lease> Daemon::ListLeases(const std::string& claim_key) {
  std::lock_guard lock(leases_mu_);
  std::vector<api::Lease> out;
  for (const auto& [id, held] : leases_) {
    if (claim_key.empty() || held.lease.claim == claim_key) out.push_back(held.lease);
  }
  return out;
}

std::vector<api::VolumeStats> Daemon::Stats() {
  std::vector<api::VolumeStats> out;
  for (const mount::MountedVolume& m : volumes_->List()) {
    api::VolumeStats s;
    s.volume = m.volume;
    s.claim = m.claim;
    s.mount_path = m.mount_path;
    s.capacity_bytes = m.usage.capacity_bytes.value_or(0);
    s.used_bytes = m.usage.used_bytes;
    s.available_bytes = s.capacity_bytes > s.used_bytes ? s.capacity_bytes - s.used_bytes : 0;
    s.used_inodes = m.usage.used_inodes;
    s.inode_limit = m.usage.inode_limit;
    s.quota_rejections = m.usage.quota_rejections;
    s.read_only = m.read_only;
    s.mode = m.usage.mode;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<api::VolumeUser> Daemon::Users(const std::string& claim_key) {
  std::vector<api::VolumeUser> users;
  for (const mount::MountedVolume& m : volumes_->List()) {
    if (m.claim != claim_key || m.device == 0) continue;
    mount::VolumeUsers found = scanner_.Scan({{m.device, m.mount_path}}, volumes_->ServerPids())[m.device];
    auto add = [&](const char* kind, pid_t pid) {
      api::VolumeUser user{kind, static_cast<int>(pid), found.commands[pid], "", ""};
      if (auto c = found.containers.find(pid); c != found.containers.end()) {
        user.container = c->second;
      }
      users.push_back(std::move(user));
    };
    for (pid_t pid : found.open_files) add("Process", pid);
    for (pid_t pid : found.other_namespaces) add("MountNamespace", pid);
    for (const std::string& path : found.bind_mounts) {
      users.push_back(api::VolumeUser{"BindMount", 0, "", "", path});
    }
  }
  return users;
}

std::string Daemon::DaemonMetrics() {
  std::ostringstream out;
  std::vector<fs::OperationStats> ops = volumes_->OperationStats();
  out << "# HELP claimfs_fuse_requests_total FUSE requests served, by operation, over all volumes.\n"
      << "# TYPE claimfs_fuse_requests_total counter\n";
  for (const fs::OperationStats& op : ops) {
    out << "claimfs_fuse_requests_total{operation=\"" << EscapeLabel(op.operation) << "\"} "
        << op.count << "\n";
  }
  out << "# HELP claimfs_fuse_request_duration_seconds Time to handle and answer a FUSE request.\n"
      << "# TYPE claimfs_fuse_request_duration_seconds histogram\n";
  const std::vector<double>& bounds = fs::LatencyBucketBounds();
  for (const fs::OperationStats& op : ops) {
    std::string label = "operation=\"" + EscapeLabel(op.operation) + "\"";
    for (size_t i = 0; i < bounds.size() && i < op.bucket_counts.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof le, "%g", bounds[i]);
      out << "claimfs_fuse_request_duration_seconds_bucket{" << label << ",le=\"" << le << "\"} "
          << op.bucket_counts[i] << "\n";
    }
    out << "claimfs_fuse_request_duration_seconds_bucket{" << label << ",le=\"+Inf\"} " << op.count
        << "\n";
    out << "claimfs_fuse_request_duration_seconds_sum{" << label << "} " << op.total_seconds << "\n";
    out << "claimfs_fuse_request_duration_seconds_count{" << label << "} " << op.count << "\n";
  }
  size_t leases = 0;
  {
    std::lock_guard lock(leases_mu_);
    leases = leases_.size();
  }
  out << "# HELP claimfs_mounted_volumes Volumes mounted and served now.\n"
      << "# TYPE claimfs_mounted_volumes gauge\n"
      << "claimfs_mounted_volumes " << volumes_->MountedVolumes().size() << "\n"
      << "# HELP claimfs_fuse_threads Threads serving FUSE requests, shared by every volume.\n"
      << "# TYPE claimfs_fuse_threads gauge\n"
      << "claimfs_fuse_threads " << volumes_->threads() << "\n"
      << "# HELP claimfs_leases Leases held on claims (claimctl use, container engines).\n"
      << "# TYPE claimfs_leases gauge\n"
      << "claimfs_leases " << leases << "\n"
      << "# HELP claimfs_reconcile_passes_total Control loop passes.\n"
      << "# TYPE claimfs_reconcile_passes_total counter\n"
      << "claimfs_reconcile_passes_total " << passes_.load() << "\n"
      << "# HELP claimfs_failed_actions_total Provision, mount, expand and reclaim actions that failed.\n"
      << "# TYPE claimfs_failed_actions_total counter\n"
      << "claimfs_failed_actions_total " << failed_actions_.load() << "\n";
  return out.str();
}

std::vector<std::pair<std::string, std::string>> Daemon::ManagedDirectories() const {
  std::vector<std::pair<std::string, std::string>> configured;
  {
    std::lock_guard lock(config_mu_);
    for (const yaml::PoolConfig& p : config_.pools) {
      configured.emplace_back("pool " + p.name, p.path);
    }
    configured.emplace_back("the state directory", config_.state_dir);
    configured.emplace_back("the mount root", config_.mount_root);
  }
  // A directory configured through a symlink is also reached by its real path.
  std::vector<std::pair<std::string, std::string>> managed;
  for (const auto& [what, dir] : configured) {
    managed.emplace_back(what, dir);
    std::string real = ResolvedPath(dir);
    if (model::LexicallyNormal(real) != model::LexicallyNormal(dir)) {
      managed.emplace_back(what, real);
    }
  }
  return managed;
}

std::map<std::string, std::string> Daemon::Overlaps(
    const std::vector<model::PersistentVolume>& volumes) const {
  std::vector<std::pair<std::string, std::string>> managed = ManagedDirectories();
  std::set<std::string> pools;
  for (const auto& [what, dir] : managed) {
    if (what.rfind("pool ", 0) == 0) pools.insert(model::LexicallyNormal(dir));
  }
  // Volumes by the normal form of their path, so that each one's equal, enclosing and enclosed
  // directories are a few look-ups, not a scan: a pass stays cheap with thousands of volumes.
  // A path that does not parse overlaps nothing here; the mount and reclaim checks refuse it.
  // Each volume is there by its path and, when a symlink leads elsewhere, by its real path.
  std::multimap<std::string, const model::PersistentVolume*> by_path;
  for (const model::PersistentVolume& pv : volumes) {
    auto path = model::HostPath::Parse(VolumePath(pv));
    if (!path.ok()) continue;
    by_path.emplace(path->string(), &pv);
    auto real = model::HostPath::Parse(ResolvedPath(path->string()));
    if (real.ok() && real->string() != path->string()) by_path.emplace(real->string(), &pv);
  }
  auto other_at = [&](const std::string& path,
                      const model::PersistentVolume* self) -> const model::PersistentVolume* {
    auto [first, last] = by_path.equal_range(path);
    for (auto it = first; it != last; ++it) {
      if (it->second != self) return it->second;
    }
    return nullptr;
  };
  std::map<std::string, std::string> overlaps;
  for (const auto& [path, pv] : by_path) {
    const model::PersistentVolume* other = other_at(path, pv);
    std::string below = path == "/" ? path : path + "/";
    for (auto it = by_path.lower_bound(below);
         !other && it != by_path.end() && it->first.compare(0, below.size(), below) == 0; ++it) {
      if (it->second != pv) other = it->second;
    }
    for (std::string parent = path; !other && parent != "/";) {
      size_t slash = parent.rfind('/');
      parent = slash == 0 ? "/" : parent.substr(0, slash);
      other = other_at(parent, pv);
    }
    const std::string& name = pv->metadata.name;
    if (overlaps.count(name)) continue;  // seen by its other path
    if (other) {
      overlaps[name] =
          "PersistentVolume \"" + other->metadata.name + "\" (" + VolumePath(*other) + ")";
      continue;
    }
    for (const auto& [what, dir] : managed) {
      std::string normal_dir = model::LexicallyNormal(dir);
      // A pool's own volumes are <pool>/<their name>.
      if (pools.count(normal_dir) && path == normal_dir + "/" + name) continue;
      if (provisioner::PathsOverlap(path, dir)) {
        overlaps[name] = what + " (" + dir + ")";
        break;
      }
    }
  }
  return overlaps;
}

std::set<std::string> Daemon::CreatedDirectories(
    const std::vector<model::PersistentVolume>& volumes) {
  std::set<std::string> created;
  auto records = store_->ListCreatedDirectories();
  if (!records.ok()) {
    log::Warn("cannot read which directories claimfsd created: {}", records.status().message());
    return created;  // no reclaim removes data this round
  }
  for (const model::PersistentVolume& pv : volumes) {
    if (IsCreatedDirectory(pv.metadata.name, VolumePath(pv), *records).ok()) {
      created.insert(pv.metadata.name);
    }
  }
  return created;
}

Status Daemon::RecordCreatedDirectory(const std::string& volume, const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::FromErrno("cannot stat " + path, errno);
  store::CreatedDirectory record{path, volume, static_cast<uint64_t>(st.st_dev),
                                 static_cast<uint64_t>(st.st_ino)};
  return store_->RecordCreatedDirectory(record);
}

Status Daemon::CheckCreatedDirectory(const std::string& volume, const std::string& path) {
  auto records = store_->ListCreatedDirectories();
  if (!records.ok()) return records.status();
  return IsCreatedDirectory(volume, path, *records);
}

Status Daemon::CheckVolumeOverlap(const std::string& name, const std::string& path) {
  auto volumes = store_->ListPersistentVolumes();
  if (!volumes.ok()) return volumes.status();
  std::string real = ResolvedPath(path);
  for (const model::PersistentVolume& pv : *volumes) {
    std::string other = VolumePath(pv);
    if (pv.metadata.name == name || other.empty()) continue;
    std::string other_real = ResolvedPath(other);
    if (provisioner::PathsOverlap(path, other) || provisioner::PathsOverlap(real, other_real)) {
      return Status::Forbidden("overlaps PersistentVolume \"" + pv.metadata.name + "\" (" + other +
                               ")");
    }
  }
  return Status::Ok();
}

Status Daemon::CheckVolumeSource(const std::string& path) {
  // A static volume over (or around) a pool would reach other claims' volumes, and deleting it
  // would delete theirs; over the state or the mounts, the daemon's own files.
  // Compared as written, then (a path with no symlink of its own may still reach a managed
  // directory configured through one) as the kernel reaches it now.
  std::vector<std::pair<std::string, std::string>> managed = ManagedDirectories();
  auto overlap = [&](const std::string& source) {
    for (const auto& [what, dir] : managed) {
      if (provisioner::PathsOverlap(source, dir)) {
        return Status::Forbidden("volume source " + path + " overlaps " + what + " (" + dir +
                                 "), which claimfsd manages");
      }
    }
    return Status::Ok();
  };
  Status s = overlap(path);
  if (s.ok()) s = provisioner::CheckVolumeSource(path, VolumeRoots(), /*create_missing=*/false);
  if (s.ok()) s = overlap(ResolvedPath(path));
  return s;
}

Status Daemon::Health() {
  if (!Alive()) return Status::Unavailable("the control loop has not finished a pass for 20 s");
  auto version = store_->ResourceVersion();
  if (!version.ok()) return version.status();
  return Status::Ok();
}

}  // namespace claimfs::claimfsd
