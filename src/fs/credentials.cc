#include "credentials.h"

#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace claimfs::fs {
namespace {

void RaiseCreateCapabilities() {
  // The daemon's permitted set, read once per thread.
  thread_local __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  thread_local bool loaded = false;
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  if (!loaded) {
    if (syscall(SYS_capget, &header, data) != 0) return;
    loaded = true;
  }
  __user_cap_data_struct raised[_LINUX_CAPABILITY_U32S_3];
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) raised[i] = data[i];
  constexpr uint32_t kWanted =
      (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH) | (1u << CAP_MKNOD);
  raised[0].effective |= kWanted & raised[0].permitted;
  syscall(SYS_capset, &header, raised);
}

}  // namespace

CallerCredentials::CallerCredentials(uid_t uid, gid_t gid) {
  if (uid == 0 && gid == 0) return;
  switched_ = true;
  setfsgid(gid);
  setfsuid(uid);
  RaiseCreateCapabilities();
}

CallerCredentials::~CallerCredentials() {
  if (!switched_) return;
  // Back to fsuid 0: the kernel restores the filesystem capabilities by itself.
  setfsuid(0);
  setfsgid(0);
}

}  // namespace claimfs::fs
