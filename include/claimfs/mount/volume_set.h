// VolumeSet: the volumes claimfsd serves, each mounted at {mountRoot}/{namespace}/{claim} and
// served by one shared pool of FUSE threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/fs/server_pool.h"
#include "claimfs/fs/volume.h"
#include "claimfs/mount/mount_root.h"

namespace claimfs::mount {

struct MountRequest {
  std::string volume;  // PV name
  std::string claim;   // "namespace/name"
  std::string source;  // the volume's backing directory
  uint64_t capacity_bytes = 0;
  bool read_only = false;                  // the claim asks only for ReadOnlyMany
  std::vector<std::string> mount_options;  // the PV's mountOptions (Kubernetes' list)
};

struct MountedVolume {
  std::string volume;
  std::string claim;
  std::string source;
  std::string mount_path;
  dev_t device = 0;  // the FUSE mount's device number
  bool read_only = false;
  bool serving = false;  // false once unmounted behind the daemon's back
  fs::VolumeUsage usage;
};

// The mount root and namespace directories: owners reach their mounts by path (a volume's root
// decides who gets in), nobody lists them.
inline constexpr mode_t kMountRootMode = 0711;
// A namespace directory only root enters (the Docker volume plugin's, as /var/lib/docker/volumes).
inline constexpr mode_t kPrivateNamespaceMode = 0700;

struct VolumeSetOptions {
  std::set<std::string> private_namespaces;  // their directories are kPrivateNamespaceMode
  int quota_errno = ENOSPC;
  unsigned threads = 16;       // FUSE threads shared by every volume
  size_t fd_cache_budget = 0;  // per volume; 0: the fs library's default
};

// Thread-safe: every call holds mu_. Mount and Unmount block while the kernel mounts/unmounts.
class VolumeSet {
 public:
  // Mounts go to <root>/<namespace>/<claim>; `root` makes their directories and must outlive
  // the set.
  static Result<std::unique_ptr<VolumeSet>> Create(const VolumeSetOptions& options,
                                                   MountRoot* root);
  ~VolumeSet();  // unmounts everything

  // Where a claim ("namespace/name") is mounted.
  std::string MountPath(const std::string& claim) const;

  // Mounts the volume for its claim and serves it. Fails with kInvalid naming a mount option
  // that is unknown or that claimfsd sets itself (capacity, threads, ...); nothing is mounted
  // then. Mounting a volume that is already mounted for the same claim is a no-op.
  Status Mount(const MountRequest& request);
  // Unmounts (lazily: the kernel detaches the mount at once) and removes the mountpoint
  // directory. Unknown volumes are fine.
  Status Unmount(const std::string& volume);
  void UnmountAll();
  // Removes every directory below the mount root that no mounted volume uses (a crash between
  // an unmount and its rmdir, a deleted claim that was never mounted again after a restart).
  void RemoveStrayDirectories();
  // Raises (or lowers, when usage allows) the live quota.
  Status SetCapacity(const std::string& volume, uint64_t bytes);

  std::set<std::string> MountedVolumes() const;
  std::vector<MountedVolume> List() const;
  std::optional<MountedVolume> Find(const std::string& volume) const;
  std::vector<fs::OperationStats> OperationStats() const;
  unsigned threads() const;

 private:
  struct Entry {
    MountRequest request;
    std::string mount_path;
    dev_t device = 0;
    std::unique_ptr<fs::Volume> volume;
  };
  VolumeSet(VolumeSetOptions options, MountRoot* root, std::unique_ptr<fs::ServerPool> pool);
  MountedVolume Describe(const Entry& entry) const;
  void UnmountLocked(const std::string& name);
  // Removes a claim's mountpoint directory, and its namespace directory when that is empty.
  void RemoveMountpoint(const std::string& claim);

  const VolumeSetOptions options_;
  MountRoot* const root_;
  std::unique_ptr<fs::ServerPool> pool_;  // outlives every volume
  mutable std::mutex mu_;
  std::map<std::string, Entry> volumes_;  // by PV name; guarded by mu_
};

}  // namespace claimfs::mount
