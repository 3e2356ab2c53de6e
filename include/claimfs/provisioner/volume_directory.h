// Volume directories inside storage pools: create, delete (reclaim policy Delete), scrub
// (Recycle), and the pool's filesystem size, with the safety rules a deleter needs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::provisioner {

// Who owns a new volume directory and with which mode. Unset fields: owner and group of the
// calling process, mode 0770: a claim's volume belongs to its owner and group, and others (not
// root) get EACCES on the mount, which enforces permissions (default_permissions).
struct DirectoryOwner {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<mode_t> mode;  // permission bits only (07777); the umask does not apply
};

inline constexpr mode_t kDefaultVolumeMode = 0770;
inline constexpr mode_t kPoolMode = 0700;

// Creates `path` and any missing parents; the directories it creates get mode 0700 (a pool's
// volumes are reached through their mounts, not through the pool). An existing directory (or a
// symlink to one) is fine and left as it is. Fails with kAlreadyExists when `path` exists and is
// not a directory, kInvalid for a relative or empty path, kIOError when mkdir fails.
// Thread-safe; concurrent calls for the same path both succeed.
Status EnsurePoolDirectory(const std::string& path);

// Creates the volume directory <pool_path>/<name> with `owner`'s owner, group and mode. The
// directory appears fully set up or not at all: it is made under a temporary name
// (".<name>.claimfs-new") and renamed into place, so a crash never leaves it with the wrong
// mode or owner. Idempotent: an existing directory <pool_path>/<name> is success and its owner
// and mode are not changed.
// Fails with kInvalid when `name` is empty, ".", "..", longer than 240 bytes, or holds '/' or NUL,
// or when `pool_path` is not an existing directory (pools are created by EnsurePoolDirectory);
// kAlreadyExists when <pool_path>/<name> exists as anything but a directory (a symlink
// included, even one to a directory); kIOError naming the path when a system call fails.
// Thread-safe for different names; calls for the same name must not overlap (they share the
// temporary name, so one of them may fail).
Status CreateVolumeDirectory(const std::string& pool_path, const std::string& name,
                             const DirectoryOwner& owner = {});

// Removes the directory `path` and everything below it.
// Safety rules (shared with ScrubVolumeDirectory):
//  - `path` must pass model::HostPathProblem (absolute, free of "..", no NUL, control or non-UTF-8
//    byte) and lie strictly below one of `allowed_roots`
//    (compared after collapsing "//" and "."; a root is trusted and may itself go through
//    symlinks). Otherwise kForbidden, naming the path and the roots; nothing is touched.
//  - No component of `path` below the root may be a symlink (kForbidden), and `path` must not
//    be or contain a mount point (kForbidden naming the mount point; checked against
//    /proc/self/mountinfo before anything is removed, and again at every directory the walk
//    enters, so a mount that appears meanwhile stops the walk there).
//  - Entries are never followed: a symlink inside is unlinked as an entry, whatever it points
//    at; fifos, sockets and devices are unlinked, never opened.
// A missing `path` (or root) is success, so a delete interrupted by a crash is finished by
// calling again. `path` not being a directory is kInvalid. When something cannot be removed
// (an immutable or append-only file: the message says so) the walk goes on, removes what it
// can and returns the first error, naming the entry that failed.
// The walk holds at most a few dozen file descriptors and no recursion, whatever the depth.
// Thread-safe; two concurrent calls on the same tree may both report errors but remove no more
// than the tree.
Status DeleteVolumeDirectory(const std::string& path,
                             const std::vector<std::string>& allowed_roots);

// Recycle: removes everything inside `path` and keeps `path` itself with its owner and mode.
// Same rules, results and thread-safety as DeleteVolumeDirectory, except that a missing `path`
// is kNotFound (there is nothing to recycle into).
Status ScrubVolumeDirectory(const std::string& path, const std::vector<std::string>& allowed_roots);

// Checks that `path`, the directory a static PersistentVolume (hostPath or local) exposes, may be
// served: passes model::HostPathProblem (no NUL, control or non-UTF-8 byte; absolute, without
// "..", within PATH_MAX and NAME_MAX), compared in its normal form, strictly below one of `allowed_roots` (the allowed hostPath
// prefixes and the pools), and reached from that root without following a symlink, so that no
// link planted in a shared directory such as /tmp can point a volume elsewhere. Components that
// do not exist yet are fine, or, with `create_missing`, created (and logged) one at a time
// beneath the root, never through a symlink: parents root's with mode 0700, so that the backing
// directory is reached only through the mount. kForbidden naming the path and the roots or the
// symlink; kInvalid when a component is not a directory; kIOError when a system call fails.
// `created_leaf`, when given, is set to whether this call made `path` itself (the directory
// claimfsd may later delete), not only some parent. Thread-safe.
Status CheckVolumeSource(const std::string& path, const std::vector<std::string>& allowed_roots,
                         bool create_missing, bool* created_leaf = nullptr);

// Which directory a check reached: compare with what a mount serves, so that a component
// swapped for a symlink after the check is caught.
struct DirectoryIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
};

// CheckVolumeSource, and the identity of the directory `path` names as the walk opened it
// (component by component from the root, never through a symlink); nullopt when `path` does not
// exist (yet) and `create_missing` is false. A `path` this call creates gets `leaf_owner`'s owner
// and mode, as CreateVolumeDirectory gives a volume root (default mode 0770).
Result<std::optional<DirectoryIdentity>> OpenVolumeSource(
    const std::string& path, const std::vector<std::string>& allowed_roots, bool create_missing,
    bool* created_leaf = nullptr, const DirectoryOwner& leaf_owner = {});

// True when `a` and `b`, absolute paths, are the same directory or one lies below the other,
// compared by components in model::HostPath's normal form ("//", "." and a trailing slash
// collapsed); false when either fails model::HostPathProblem (relative, "..", NUL, control or
// non-UTF-8 bytes): callers refuse such paths by a check of their own.
bool PathsOverlap(const std::string& a, const std::string& b);

// Bytes an unprivileged writer may still allocate on the filesystem that holds `path` (statvfs
// f_bavail × f_frsize). kIOError naming the path when statvfs fails. Thread-safe.
Result<int64_t> FilesystemAvailable(const std::string& path);

}  // namespace claimfs::provisioner
