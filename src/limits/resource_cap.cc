#include "claimfs/limits/resource_cap.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace claimfs::limits {
namespace {

constexpr uint64_t kResourceBit = uint64_t{1} << CAP_SYS_RESOURCE;

int CapGet(__user_cap_data_struct (&data)[_LINUX_CAPABILITY_U32S_3]) noexcept {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capget, &header, data) == 0 ? 0 : -errno;
}

int CapSet(__user_cap_data_struct (&data)[_LINUX_CAPABILITY_U32S_3]) noexcept {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capset, &header, data) == 0 ? 0 : -errno;
}

constexpr int kWord = CAP_SYS_RESOURCE / 32;
constexpr uint32_t kWordBit = 1u << (CAP_SYS_RESOURCE % 32);

}  // namespace

ResourceCapDecision DecideResourceCap(const CapabilitySets& caps, bool kernel_mode,
                                      bool sole_thread_after_nofile) {
  if (!kernel_mode) {
    return {ResourceCapAction::kNone, "accounted volume: the daemon refuses at the limit itself"};
  }
  if (((caps.effective | caps.permitted) & kResourceBit) == 0) {
    return {ResourceCapAction::kNone,
            "no CAP_SYS_RESOURCE: backing files are opened with credentials the limit binds"};
  }
  if (sole_thread_after_nofile) {
    return {ResourceCapAction::kDrop,
            "CAP_SYS_RESOURCE dropped from the effective and permitted sets (RLIMIT_NOFILE is "
            "raised already)"};
  }
  return {ResourceCapAction::kLower,
          "CAP_SYS_RESOURCE kept permitted but left out of the credentials backing files are "
          "opened with: the serving threads already run, and dropping it from their permitted "
          "sets would break their later capability changes"};
}

Result<CapabilitySets> ReadCapabilities() {
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (int rv = CapGet(data); rv < 0) return Status::FromErrno("capget", -rv);
  CapabilitySets sets;
  sets.effective = (uint64_t{data[1].effective} << 32) | data[0].effective;
  sets.permitted = (uint64_t{data[1].permitted} << 32) | data[0].permitted;
  return sets;
}

Status DropResourceCap() {
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (int rv = CapGet(data); rv < 0) return Status::FromErrno("capget", -rv);
  data[kWord].effective &= ~kWordBit;
  data[kWord].permitted &= ~kWordBit;
  data[kWord].inheritable &= ~kWordBit;
  if (int rv = CapSet(data); rv < 0) return Status::FromErrno("cannot drop CAP_SYS_RESOURCE", -rv);
  return Status::Ok();
}

ResourceCapLowered::ResourceCapLowered() noexcept {
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (CapGet(data) < 0 || (data[kWord].effective & kWordBit) == 0) return;
  saved_effective_[0] = data[0].effective;
  saved_effective_[1] = data[1].effective;
  data[kWord].effective &= ~kWordBit;
  lowered_ = CapSet(data) == 0;
}

ResourceCapLowered::~ResourceCapLowered() {
  if (!lowered_) return;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (CapGet(data) < 0) return;
  data[0].effective = saved_effective_[0];
  data[1].effective = saved_effective_[1];
  CapSet(data);
}

}  // namespace claimfs::limits
