#include "quota.h"

#include <string>

namespace claimfs::fs {
namespace {

uint64_t SaturatingAdd(uint64_t value, int64_t delta) {
  if (delta >= 0) return value + static_cast<uint64_t>(delta);
  uint64_t decrease = static_cast<uint64_t>(-(delta + 1)) + 1;
  return decrease > value ? 0 : value - decrease;
}

}  // namespace

Quota::Quota(std::optional<uint64_t> capacity, std::optional<uint64_t> inode_limit,
             uint64_t used_bytes, uint64_t used_inodes)
    : enabled_(capacity.has_value()),
      capacity_(capacity.value_or(UINT64_MAX)),
      inode_limit_(inode_limit),
      used_bytes_(used_bytes),
      used_inodes_(used_inodes) {}

bool Quota::TryReserveBytes(uint64_t bytes) {
  std::lock_guard lock(mu_);
  uint64_t committed = used_bytes_ + reserved_bytes_;
  if (committed > capacity_ || bytes > capacity_ - committed) return false;
  reserved_bytes_ += bytes;
  return true;
}

uint64_t Quota::AvailableBytes() const {
  std::lock_guard lock(mu_);
  uint64_t committed = used_bytes_ + reserved_bytes_;
  return committed >= capacity_ ? 0 : capacity_ - committed;
}

void Quota::Commit(uint64_t reserved, int64_t measured_delta) {
  std::lock_guard lock(mu_);
  reserved_bytes_ -= reserved < reserved_bytes_ ? reserved : reserved_bytes_;
  used_bytes_ = SaturatingAdd(used_bytes_, measured_delta);
}

void Quota::Adjust(int64_t bytes_delta, int64_t inodes_delta) {
  std::lock_guard lock(mu_);
  used_bytes_ = SaturatingAdd(used_bytes_, bytes_delta);
  used_inodes_ = SaturatingAdd(used_inodes_, inodes_delta);
}

bool Quota::TryReserveInode() {
  std::lock_guard lock(mu_);
  if (inode_limit_ && used_inodes_ + reserved_inodes_ + 1 > *inode_limit_) return false;
  ++reserved_inodes_;
  return true;
}

void Quota::CommitInode(bool created) {
  std::lock_guard lock(mu_);
  if (reserved_inodes_ > 0) --reserved_inodes_;
  if (created) ++used_inodes_;
}

void Quota::RecordRejection() {
  std::lock_guard lock(mu_);
  ++rejections_;
}

Status Quota::SetCapacity(uint64_t capacity) {
  std::lock_guard lock(mu_);
  if (!enabled_) return Status::Forbidden("the volume was mounted without a capacity");
  if (capacity < used_bytes_ + reserved_bytes_) {
    return Status::Forbidden("cannot set capacity to " + std::to_string(capacity) +
                             " bytes: the volume already uses " + std::to_string(used_bytes_) +
                             " bytes");
  }
  capacity_ = capacity;
  return Status::Ok();
}

Status Quota::SetInodeLimit(std::optional<uint64_t> limit) {
  std::lock_guard lock(mu_);
  if (limit && *limit < used_inodes_ + reserved_inodes_) {
    return Status::Forbidden("cannot set the inode limit to " + std::to_string(*limit) +
                             ": the volume already has " + std::to_string(used_inodes_) +
                             " inodes");
  }
  inode_limit_ = limit;
  return Status::Ok();
}

Quota::Figures Quota::figures() const {
  std::lock_guard lock(mu_);
  return Figures{capacity_, inode_limit_, used_bytes_, used_inodes_, reserved_bytes_, rejections_};
}

uint32_t FragmentSizeFor(uint64_t capacity) {
  uint32_t size = 4096;
  while (size > 1 && capacity % size != 0) size /= 2;
  return size;
}

uint64_t BlockSpan(uint64_t offset, uint64_t length, uint64_t block) {
  if (length == 0) return 0;
  uint64_t first = offset / block;
  uint64_t last = (offset + length - 1) / block;
  return (last - first + 1) * block;
}

}  // namespace claimfs::fs
