// Size limits that the kernel itself enforces on a volume directory, so that I/O which never
// reaches the daemon (FUSE passthrough) still stops at the volume's capacity, at the call.
//
// One backend ships: btrfs, where a volume is a subvolume and its limit the `max_referenced` of
// the subvolume's level-0 qgroup. The interface is shaped for ext4/XFS project quotas too (a
// volume = a directory with a project id and PROJINHERIT; limit and usage through quotactl on
// PRJQUOTA, live, no lag), which this kernel cannot run (no CONFIG_QFMT_V2, no XFS quota), so no
// code for them ships.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "claimfs/common/status.h"

namespace claimfs::limits {

struct LimitUsage {
  uint64_t used_bytes = 0;   // btrfs: referenced + rsv_data (referenced alone lags a commit)
  uint64_t limit_bytes = 0;  // 0: no limit set
  // False when the kernel no longer enforces the limit (btrfs quotas turned off under a mounted
  // volume): used_bytes is then the last figure read while it did, limit_bytes the limit set.
  bool enforced = true;
};

// The kernel-enforced limit of one volume directory. Thread-safe.
class VolumeLimit {
 public:
  virtual ~VolumeLimit() = default;

  // "btrfs qgroup 0/257", followed by what is wrong with it now, if anything: "btrfs qgroup
  // 0/257, limit gone: btrfs quotas were turned off".
  virtual std::string Describe() const = 0;
  // Sets the limit to `bytes` (> 0), live. Does not check usage: see Resize().
  virtual Status SetLimit(uint64_t bytes) = 0;
  // Raises or lowers the limit; a limit below what is used now fails with kForbidden and
  // changes nothing.
  virtual Status Resize(uint64_t bytes) = 0;
  // The figures; when the limit went away under the volume (quotas turned off) the last figures
  // read while it was enforced, `enforced` false, and one warning in the log. Quotas turned on
  // again: the limit last set is set again.
  virtual Result<LimitUsage> Usage() const = 0;
  // The data plane's reader of the same figures (statfs): 0 or -errno, no allocation.
  virtual int ReadUsage(LimitUsage* out) const noexcept = 0;
};

// The limit of the volume whose root directory is `dir_fd` (an fd opened for reading, not
// O_PATH; not kept). Fails, with the reason in the message, when the kernel cannot enforce a
// limit there: kInvalid for a file system or directory that cannot carry one (not btrfs, a
// plain directory rather than a subvolume, the top-level subvolume), kUnavailable when it
// could but is not set up for it (quotas off or inconsistent).
Result<std::unique_ptr<VolumeLimit>> OpenVolumeLimit(int dir_fd);

// Why volumes made under the pool directory `pool_fd` could not get a kernel-enforced limit
// ("not on btrfs", "btrfs quotas are off (...)"); empty when they can.
std::string PoolLimitProblem(int pool_fd);

// Makes the empty root `name` of a new volume in the pool directory `pool_fd` as a btrfs
// subvolume, mode 0700, whose limit the volume's mount sets (see OpenVolumeLimit). For pools
// where PoolLimitProblem() is empty. A subvolume is removed like a directory (rmdir of the empty
// subvolume; its qgroup goes with it).
Status CreateSubvolume(int pool_fd, const std::string& name);

// Removes the volume root `name` in `pool_fd`, which must be empty (as rmdir), and, when it was a
// subvolume, its qgroup 0/<id> too once btrfs has dropped the subvolume (btrfs may keep a
// qgroup of a deleted subvolume, "<stale>" in `btrfs qgroup show`). A plain directory is just
// removed. Waits at most `wait_ms` for the drop; kUnavailable if the qgroup is still there then.
Status DestroyVolume(int pool_fd, const std::string& name, int wait_ms = 10000);

}  // namespace claimfs::limits
