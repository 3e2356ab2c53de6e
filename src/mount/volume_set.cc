#include "claimfs/mount/volume_set.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "claimfs/common/log.h"

namespace claimfs::mount {
namespace {

// Mount options claimfsd decides itself; a PV's or class's mountOptions cannot override them.
bool SetByDaemon(const std::string& option) {
  std::string key = option.substr(0, option.find('='));
  return key == "capacity" || key == "size" || key == "threads" || key == "debug" ||
         key == "allow_other" || key == "fsname";
}

// Creates `path` with exactly `mode` (the umask does not apply). With `existing_too`, an existing
// directory gets that mode as well (an older claimfsd made them 0755); without, it is left alone
// (a mountpoint may have something mounted on it).
Status MakeDirectory(const std::string& path, mode_t mode, bool existing_too) {
  if (mkdir(path.c_str(), mode) != 0) {
    if (errno != EEXIST) {
      return Status::FromErrno("cannot create mountpoint directory " + path, errno);
    }
    if (!existing_too) return Status::Ok();
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return Status::FromErrno("cannot stat " + path, errno);
  if (!S_ISDIR(st.st_mode)) return Status::AlreadyExists(path + " exists and is not a directory");
  if ((st.st_mode & 07777) != mode && chmod(path.c_str(), mode) != 0) {
    return Status::FromErrno("cannot set the mode of " + path, errno);
  }
  return Status::Ok();
}

}  // namespace

VolumeSet::VolumeSet(VolumeSetOptions options, std::unique_ptr<fs::ServerPool> pool)
    : options_(std::move(options)), pool_(std::move(pool)) {}

VolumeSet::~VolumeSet() { UnmountAll(); }

Result<std::unique_ptr<VolumeSet>> VolumeSet::Create(const VolumeSetOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.mount_root, ec);
  if (ec) {
    return Status::IOError("cannot create mount root " + options.mount_root + ": " + ec.message());
  }
  // Owners reach their mounts by path; nobody lists whose claims there are.
  struct stat st;
  if (stat(options.mount_root.c_str(), &st) == 0 && (st.st_mode & 07777) != kMountRootMode) {
    if (chmod(options.mount_root.c_str(), kMountRootMode) != 0) {
      return Status::FromErrno("cannot set the mode of mount root " + options.mount_root, errno);
    }
    log::Info("mount root {}: mode {:04o} -> {:04o}", options.mount_root, st.st_mode & 07777,
              kMountRootMode);
  }
  auto pool = fs::ServerPool::Create(options.threads);
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<VolumeSet>(new VolumeSet(options, std::move(*pool)));
}

std::string VolumeSet::MountPath(const std::string& claim) const {
  size_t slash = claim.find('/');
  std::string ns = slash == std::string::npos ? "default" : claim.substr(0, slash);
  std::string name = slash == std::string::npos ? claim : claim.substr(slash + 1);
  return options_.mount_root + "/" + ns + "/" + name;
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

  std::string ns_dir = o.mountpoint.substr(0, o.mountpoint.rfind('/'));
  std::string ns = ns_dir.substr(ns_dir.rfind('/') + 1);
  Status s = MakeDirectory(
      ns_dir, options_.private_namespaces.count(ns) ? kPrivateNamespaceMode : kMountRootMode,
      /*existing_too=*/true);
  // Until the volume is mounted on it, the mountpoint is an empty directory of root's.
  if (s.ok()) s = MakeDirectory(o.mountpoint, 0700, /*existing_too=*/false);
  if (!s.ok()) return s;
  auto volume = fs::Volume::Mount(o);
  if (!volume.ok()) return volume.status();
  s = (*volume)->Start(pool_.get());
  if (!s.ok()) return s;
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
  it->second.volume->Stop();
  volumes_.erase(it);
  if (rmdir(path.c_str()) != 0 && errno != ENOENT) {
    log::Warn("cannot remove mountpoint directory {}: {}", path, std::strerror(errno));
  }
  std::string ns_dir = path.substr(0, path.rfind('/'));
  rmdir(ns_dir.c_str());  // only when empty: another claim of the namespace keeps it
  log::Info("unmounted {} from {}", volume, path);
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
