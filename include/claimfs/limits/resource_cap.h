// CAP_SYS_RESOURCE and kernel-enforced limits (docs/dataplane.md 9.3). The kernel does a
// passthrough open's I/O with the credentials of the thread that called
// FUSE_DEV_IOC_BACKING_OPEN; with CAP_SYS_RESOURCE in them the generic quota code (ext4/XFS
// project quotas) lets writes pass the limit. btrfs qgroups ignore it, but the rule is one for
// every backend. Capabilities belong to threads, not processes.
#pragma once

#include <cstdint>
#include <string>

#include "claimfs/common/status.h"

namespace claimfs::limits {

struct CapabilitySets {
  uint64_t effective = 0;
  uint64_t permitted = 0;
};

enum class ResourceCapAction {
  kNone,   // not kernel mode, or CAP_SYS_RESOURCE is in neither set
  kDrop,   // drop it from the effective and permitted sets now (DropResourceCap)
  kLower,  // keep it permitted; leave it out of the effective set while BACKING_OPEN captures
           // the credentials (ResourceCapLowered)
};

struct ResourceCapDecision {
  ResourceCapAction action = ResourceCapAction::kNone;
  std::string why;  // for the log
};

// `caps`: the serving thread's sets. `kernel_mode`: the volume's I/O bypasses the daemon.
// `sole_thread_after_nofile`: the caller runs before any serving thread exists and after
// RLIMIT_NOFILE was raised (which may need the capability), so a drop reaches every thread
// that will open backing files; otherwise only lowering around BACKING_OPEN is safe (other
// threads' cached sets would no longer fit the permitted set, see fs/credentials.cc).
ResourceCapDecision DecideResourceCap(const CapabilitySets& caps, bool kernel_mode,
                                      bool sole_thread_after_nofile);

// The calling thread's sets.
Result<CapabilitySets> ReadCapabilities();

// Drops CAP_SYS_RESOURCE from the calling thread's effective and permitted sets.
Status DropResourceCap();

// Leaves CAP_SYS_RESOURCE out of the calling thread's effective set for its lifetime, if it is
// there; restores the set after. No allocation: for the data plane.
class ResourceCapLowered {
 public:
  ResourceCapLowered() noexcept;
  ~ResourceCapLowered();
  ResourceCapLowered(const ResourceCapLowered&) = delete;
  ResourceCapLowered& operator=(const ResourceCapLowered&) = delete;
  // True if the capability was in the effective set and is out of it now.
  bool lowered() const { return lowered_; }

 private:
  bool lowered_ = false;
  uint32_t saved_effective_[2] = {0, 0};
};

}  // namespace claimfs::limits
