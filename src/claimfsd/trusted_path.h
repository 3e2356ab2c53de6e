// Whether a directory claimfsd keeps its state, volumes or mounts in can be changed by nobody
// but root and claimfsd's own user (sshd's StrictModes).
#pragma once

#include <string>

#include "claimfs/common/status.h"

namespace claimfs::claimfsd {

enum class Symlinks { kFollow, kRefuse };

// Ok when `path` (called `what` in messages) does not exist, or when every directory from / to
// it, symlinks resolved, is owned by root or claimfsd's effective user and is not writable by
// group or others (ancestors may be sticky, like /tmp). With Symlinks::kRefuse `path` itself
// may not be a symlink. For a missing `path` its existing ancestors are checked. kForbidden
// names the directory at fault and its owner.
Status CheckTrustedDirectory(const std::string& what, const std::string& path, Symlinks symlinks);

// `path` as the kernel reaches it now: its longest existing prefix with symlinks resolved, the
// missing rest appended. `path` itself when even / cannot be resolved.
std::string ResolvedPath(const std::string& path);

}  // namespace claimfs::claimfsd
