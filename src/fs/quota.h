// Quota arithmetic for one volume: used bytes and inodes, in-flight reservations, the limits.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "claimfs/common/status.h"

namespace claimfs::fs {

// Every operation that may allocate first reserves its worst case, then commits what the
// backing filesystem really allocated (measured with fstat). While reservations cover every
// in-flight operation, used + reserved never passes the capacity, so concurrent writers can
// overshoot only by allocations the worst case did not foresee (backing-filesystem metadata;
// ops.cc settles writes near full exactly, see kNearFullBlocks). Thread-safe; one short
// critical section per call.
class Quota {
 public:
  Quota(std::optional<uint64_t> capacity, std::optional<uint64_t> inode_limit,
        uint64_t used_bytes, uint64_t used_inodes);

  bool enabled() const { return enabled_; }

  // All or nothing: reserves `bytes` if used + reserved + bytes <= capacity.
  bool TryReserveBytes(uint64_t bytes);
  // Bytes still free for new reservations (capacity - used - reserved, never negative).
  uint64_t AvailableBytes() const;
  // Ends a reservation of `reserved` bytes and applies the measured change in allocation.
  void Commit(uint64_t reserved, int64_t measured_delta);
  // Applies a change seen outside any reservation (frees, drift noticed by getattr).
  void Adjust(int64_t bytes_delta, int64_t inodes_delta);

  // Reserves one inode if the inode limit allows it.
  bool TryReserveInode();
  // Ends an inode reservation; `created` says whether the object now exists.
  void CommitInode(bool created);

  void RecordRejection();

  // Fails with kForbidden when `capacity` is below what is used now.
  Status SetCapacity(uint64_t capacity);
  Status SetInodeLimit(std::optional<uint64_t> limit);

  struct Figures {
    uint64_t capacity = 0;
    std::optional<uint64_t> inode_limit;
    uint64_t used_bytes = 0;
    uint64_t used_inodes = 0;
    uint64_t reserved_bytes = 0;
    uint64_t rejections = 0;
  };
  Figures figures() const;

 private:
  const bool enabled_;
  mutable std::mutex mu_;
  uint64_t capacity_;                    // guarded by mu_
  std::optional<uint64_t> inode_limit_;  // guarded by mu_
  uint64_t used_bytes_;                  // guarded by mu_
  uint64_t used_inodes_;                 // guarded by mu_
  uint64_t reserved_bytes_ = 0;          // guarded by mu_
  uint64_t reserved_inodes_ = 0;         // guarded by mu_
  uint64_t rejections_ = 0;              // guarded by mu_
};

// The largest power of two, at most 4096, that divides `capacity`: statfs reports
// f_blocks × f_frsize == capacity exactly.
uint32_t FragmentSizeFor(uint64_t capacity);

// Bytes of whole `block`-sized blocks touched by [offset, offset + length).
uint64_t BlockSpan(uint64_t offset, uint64_t length, uint64_t block);

}  // namespace claimfs::fs
