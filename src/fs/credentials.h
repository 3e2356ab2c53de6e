// Runs a creating syscall with the caller's filesystem uid/gid, so the backing filesystem gives
// new objects the owner and group ext4 would (setgid directories included).
#pragma once

#include <sys/types.h>

namespace claimfs::fs {

// RAII, per thread. setfsuid()/setfsgid() are thread-local on Linux. Moving the fsuid off 0
// drops the filesystem capabilities; the permission checks were already done by the kernel
// (default_permissions), so the ones a create needs are raised again, as the daemon's own.
class CallerCredentials {
 public:
  CallerCredentials(uid_t uid, gid_t gid);
  ~CallerCredentials();
  CallerCredentials(const CallerCredentials&) = delete;
  CallerCredentials& operator=(const CallerCredentials&) = delete;

 private:
  bool switched_ = false;
};

}  // namespace claimfs::fs
