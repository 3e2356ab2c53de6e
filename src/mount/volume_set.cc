#include "claimfs/mount/volume_set.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "claimfs/common/log.h"
#include "claimfs/mount/crash_point.h"

namespace claimfs::mount {
namespace {

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

}  // namespace

VolumeSet::VolumeSet(VolumeSetOptions options, MountRoot* root,
                     std::unique_ptr<fs::ServerPool> pool)
    : options_(std::move(options)), root_(root), pool_(std::move(pool)) {}

VolumeSet::~VolumeSet() { UnmountAll(); }

Result<std::unique_ptr<VolumeSet>> VolumeSet::Create(const VolumeSetOptions& options,
                                                     MountRoot* root) {
  if (root == nullptr) return Status::Invalid("a volume set needs its mount root");
  auto pool = fs::ServerPool::Create(options.threads);
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<VolumeSet>(new VolumeSet(options, root, std::move(*pool)));
}

std::string VolumeSet::MountPath(const std::string& claim) const {
  auto [ns, name] = SplitClaim(claim);
  return root_->path() + "/" + ns + "/" + name;
}

Status VolumeSet::Mount(const MountRequest& request) {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(request.volume);
  if (it != volumes_.end()) {
    if (it->second.request.claim == request.claim && it->second.volume->serving()) {
      return Status::Ok();
    }
    UnmountLocked(request.volume);  // a stale or differently bound mount is replaced
  }
  fs::VolumeOptions o;
  o.source = request.source;
  o.mountpoint = MountPath(request.claim);
  o.capacity_bytes = request.capacity_bytes;
  o.quota_errno = options_.quota_errno;
  o.allow_other = true;  // containers and every local user reach the volume
  o.fd_cache_budget = options_.fd_cache_budget;
  o.kernel_options.push_back("fsname=claimfs:" + request.volume);
  for (const std::string& option : request.mount_options) {
    if (SetByDaemon(option)) {
      return Status::Invalid("mount option \"" + option + "\" of " + request.volume +
                             " is not allowed: claimfsd sets it");
    }
    Status s = fs::ParseMountOptions(option, &o);
    if (!s.ok()) return Status::Invalid(request.volume + ": " + s.message());
  }
  if (request.read_only) o.read_only = true;
  if (o.read_only) o.kernel_options.emplace_back("ro");

  auto [ns, name] = SplitClaim(request.claim);
  Status s = root_->MakeDirectory(
      ns, options_.private_namespaces.count(ns) ? kPrivateNamespaceMode : kMountRootMode,
      /*existing_too=*/true);
  // Until the volume is mounted on it, the mountpoint is an empty directory of the read-only
  // mount root: every write there fails EROFS.
  if (s.ok()) s = root_->MakeDirectory(ns + "/" + name, 0700, /*existing_too=*/false);
  if (!s.ok()) return s;
  CrashPoint("mount.after_mkdir");
  auto volume = fs::Volume::Mount(o);
  if (!volume.ok()) {
    RemoveMountpoint(request.claim);
    return volume.status();
  }
  CrashPoint("mount.after_mount");
  s = (*volume)->Start(pool_.get());
  if (!s.ok()) {
    (*volume)->Stop();
    RemoveMountpoint(request.claim);
    return s;
  }
  Entry entry;
  entry.request = request;
  entry.mount_path = o.mountpoint;
  struct stat st;
  // The pool serves the mount already, so stat reaches our own GETATTR.
  if (stat(o.mountpoint.c_str(), &st) == 0) entry.device = st.st_dev;
  entry.volume = std::move(*volume);
  log::Info("mounted {} for claim {} at {} ({} bytes{})", request.volume, request.claim,
            entry.mount_path, request.capacity_bytes, o.read_only ? ", read-only" : "");
  volumes_[request.volume] = std::move(entry);
  return Status::Ok();
}

void VolumeSet::UnmountLocked(const std::string& name) {
  const std::string volume = name;  // `name` may be the key of the entry erased below
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return;
  std::string path = it->second.mount_path;
  std::string claim = it->second.request.claim;
  it->second.volume->Stop();
  volumes_.erase(it);
  CrashPoint("unmount.after_unmount");
  RemoveMountpoint(claim);
  log::Info("unmounted {} from {}", volume, path);
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
  Status s = it->second.volume->SetCapacity(bytes);
  if (s.ok()) it->second.request.capacity_bytes = bytes;
  return s;
}

MountedVolume VolumeSet::Describe(const Entry& entry) const {
  MountedVolume m;
  m.volume = entry.request.volume;
  m.claim = entry.request.claim;
  m.source = entry.request.source;
  m.mount_path = entry.mount_path;
  m.device = entry.device;
  m.read_only = entry.volume->options().read_only;
  m.serving = entry.volume->serving();
  m.usage = entry.volume->Usage();
  return m;
}

std::set<std::string> VolumeSet::MountedVolumes() const {
  std::lock_guard lock(mu_);
  std::set<std::string> names;
  for (const auto& [name, entry] : volumes_) names.insert(name);
  return names;
}

std::vector<MountedVolume> VolumeSet::List() const {
  std::lock_guard lock(mu_);
  std::vector<MountedVolume> out;
  for (const auto& [name, entry] : volumes_) out.push_back(Describe(entry));
  return out;
}

std::optional<MountedVolume> VolumeSet::Find(const std::string& volume) const {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return std::nullopt;
  return Describe(it->second);
}

std::vector<fs::OperationStats> VolumeSet::OperationStats() const { return pool_->Stats(); }
unsigned VolumeSet::threads() const { return pool_->threads(); }

}  // namespace claimfs::mount
