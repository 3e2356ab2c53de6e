// Daemon: start-up and recovery (store, pools, mount root, the first reconcile, the API),
// stop, config reload and health.
#include "daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "claimfs/common/log.h"
#include "claimfs/model/objects.h"
#include "claimfs/mount/mount_root.h"
#include "claimfs/provisioner/volume_directory.h"
#include "daemon_internal.h"
#include "serve_role.h"
#include "trusted_path.h"

namespace claimfs::claimfsd {
namespace {

constexpr char kDefaultClassName[] = "local";
constexpr char kProvisionerName[] = "claimfs.io/local";
constexpr char kDefaultClassAnnotation[] = "storageclass.kubernetes.io/is-default-class";

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
#ifdef CLAIMFS_TEST_HOOKS
  // How long an emptied serving process waits for a new volume (tests: not the 60 s default).
  if (const char* idle = std::getenv("CLAIMFS_SERVER_IDLE_SECONDS")) {
    vo.server_idle = std::chrono::seconds(std::atoi(idle));
  }
#endif
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

Status Daemon::Health() {
  if (!Alive()) return Status::Unavailable("the control loop has not finished a pass for 20 s");
  auto version = store_->ResourceVersion();
  if (!version.ok()) return version.status();
  return Status::Ok();
}


}  // namespace claimfs::claimfsd
