// The mount root: a read-only tmpfs that claimfsd mounts over {mountRoot}, so that a path below
// it is either a live volume or refuses every write (EROFS), whoever writes and whenever the
// daemon died; claimfsd changes it only through a private writable view (docs/dataplane.md, 4).
#pragma once

#include <sys/types.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::mount {

// The tmpfs's source in the mount table: how a later start recognises its own mount root.
inline constexpr char kMountRootSource[] = "claimfs-root";
// The lock file inside the tmpfs that names the claimfsd using it.
inline constexpr char kMountRootLockName[] = ".claimfsd.lock";

// Thread-safe: after Open, every call is a few system calls on descriptors that do not change.
class MountRoot {
 public:
  // Takes the mount root at `path` for this process. When the top mount at `path` is already
  // claimfsd's tmpfs (a restart, also after kill -9), it is reused; otherwise (first start,
  // reboot, or an upgrade from a claimfsd that used a plain directory) a new tmpfs (mode 0711,
  // root's) is mounted read-only, nosuid, nodev, noexec and MS_SHARED on it, and claimfs mounts
  // left in the plain directory below are detached afterwards through a descriptor of that
  // directory, so their paths never lead to the host disk; their empty mountpoint directories are
  // removed. The writable view is a detached clone of the tmpfs (open_tree + mount_setattr), or,
  // where the kernel refuses, a private bind at `fallback_dir` (mode 0700). kUnavailable, naming
  // the holder's pid, when another claimfsd uses the root. Needs CAP_SYS_ADMIN.
  static Result<std::unique_ptr<MountRoot>> Open(const std::string& path,
                                                 const std::string& fallback_dir);
  ~MountRoot();  // closes the view and the lock; the tmpfs stays (see Release)
  MountRoot(const MountRoot&) = delete;
  MountRoot& operator=(const MountRoot&) = delete;

  // The configured path (lexically normal), and the same directory as the kernel names it in
  // the mount table (symlinks resolved at Open).
  const std::string& path() const { return path_; }
  const std::string& real_path() const { return real_path_; }
  // The tmpfs's mount id in this process's mount table (for DetachOptions).
  int mount_id() const { return mount_id_; }

  // Creates the directory `relative` ("ns" or "ns/name": names without '/', ".", "..") through
  // the view with exactly `mode`; no symlink is followed. An existing directory is fine and gets
  // `mode` only with `existing_too` (a mountpoint may have a volume mounted on it).
  Status MakeDirectory(const std::string& relative, mode_t mode, bool existing_too);
  // Removes the empty directory `relative` through the view. Ok when it is missing; an error
  // when something is mounted on it (EBUSY) or it is not empty.
  Status RemoveDirectory(const std::string& relative);
  // Every "ns/name" directory below the root, and every "ns" directory (namespace directories
  // are listed before their entries).
  Result<std::vector<std::string>> Directories() const;
  // A clean stop: detaches the tmpfs when nothing is mounted below it any more, so that the
  // machine is left as it was before claimfsd ran. Returns kUnavailable (and keeps the
  // tmpfs) when a mount is still there.
  Status Release();

 private:
  MountRoot() = default;
  Status OpenView(const std::string& fallback_dir);
  // The directory that holds the last of `parts` (the view itself, or a namespace directory
  // reached without following a symlink); -1 with errno on failure.
  int OpenParent(const std::vector<std::string>& parts) const;

  std::string path_;
  std::string real_path_;
  int mount_id_ = 0;
  int view_fd_ = -1;  // the writable view's root
  std::string fallback_mount_;  // set when the view is the fallback bind
  int lock_fd_ = -1;
};

// Start-up reconciliation of the mount root: detaches every claimfs mount below it but those
// whose device is in `live` (a serving process that outlived an earlier main serves them; the
// others' connections died, and EROFS is what appears below them), then removes every
// directory `keep` does not name ("ns/name", the mount paths of the Bound claims) and every
// namespace directory left empty. Returns the mount points detached. Directories that cannot be
// removed are logged and left.
Result<std::vector<std::string>> ReconcileMounts(MountRoot& root, const std::set<std::string>& keep,
                                                 const std::set<dev_t>& live = {});

}  // namespace claimfs::mount
