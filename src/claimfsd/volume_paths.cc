// Daemon: where volume directories may lie, which overlap, and which claimfsd created (the only
// ones a reclaim may remove data from).
#include "daemon.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "claimfs/common/log.h"
#include "claimfs/model/host_path.h"
#include "claimfs/model/objects.h"
#include "claimfs/provisioner/volume_directory.h"
#include "daemon_internal.h"
#include "trusted_path.h"

namespace claimfs::claimfsd {
namespace {

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

}  // namespace

std::vector<std::string> Daemon::VolumeRoots() const {
  std::lock_guard lock(config_mu_);
  std::vector<std::string> roots = config_.allowed_host_path_prefixes;
  for (const yaml::PoolConfig& p : config_.pools) roots.push_back(p.path);
  return roots;
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

}  // namespace claimfs::claimfsd
