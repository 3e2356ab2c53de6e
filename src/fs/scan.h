// Measures what a directory tree allocates, as `du` counts it.
#pragma once

#include <cstdint>

#include "claimfs/common/status.h"

namespace claimfs::fs {

struct TreeUsage {
  uint64_t bytes = 0;   // st_blocks × 512 of every object, hard links once, the root included
  uint64_t inodes = 0;  // distinct objects, the root included
};

// Walks the tree below `dir_fd` (not following symlinks, staying inside it). Fails with the
// path of the first object it could not read.
Result<TreeUsage> ScanTree(int dir_fd);

}  // namespace claimfs::fs
