// An exclusive flock(2) on a file in the state directory, held for as long as the object lives,
// so that one claimfsd at a time owns a state directory.
#pragma once

#include <string>

#include "claimfs/common/status.h"

namespace claimfs::store {

class LockFile {
 public:
  // Locks `path` (created if missing) and writes this process's pid into it. Fails with
  // kUnavailable, naming `state_dir` and the holder's pid when it is known, if another open file
  // description holds the lock (another process, or another LockFile in this one).
  static Result<LockFile> Acquire(const std::string& path, const std::string& state_dir);

  LockFile(LockFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  LockFile& operator=(LockFile&&) = delete;
  LockFile(const LockFile&) = delete;
  ~LockFile();

 private:
  explicit LockFile(int fd) : fd_(fd) {}
  int fd_;  // the lock goes with the descriptor: closing it (or dying) releases it
};

}  // namespace claimfs::store
