#include "claimfs/model/objects.h"

#include <algorithm>

namespace claimfs::model {

const char* ToString(AccessMode mode) {
  switch (mode) {
    case AccessMode::kReadWriteOnce: return "ReadWriteOnce";
    case AccessMode::kReadOnlyMany: return "ReadOnlyMany";
    case AccessMode::kReadWriteMany: return "ReadWriteMany";
    case AccessMode::kReadWriteOncePod: return "ReadWriteOncePod";
  }
  return "";
}

const char* ToShortString(AccessMode mode) {
  switch (mode) {
    case AccessMode::kReadWriteOnce: return "RWO";
    case AccessMode::kReadOnlyMany: return "ROX";
    case AccessMode::kReadWriteMany: return "RWX";
    case AccessMode::kReadWriteOncePod: return "RWOP";
  }
  return "";
}

std::string AccessModesText(const std::vector<AccessMode>& modes) {
  static const AccessMode kOrder[] = {
      AccessMode::kReadWriteOnce, AccessMode::kReadOnlyMany,
      AccessMode::kReadWriteMany, AccessMode::kReadWriteOncePod};
  std::string out;
  for (AccessMode mode : kOrder) {
    if (std::find(modes.begin(), modes.end(), mode) == modes.end()) continue;
    if (!out.empty()) out += ",";
    out += ToShortString(mode);
  }
  return out;
}

const char* ToString(VolumeMode mode) {
  return mode == VolumeMode::kBlock ? "Block" : "Filesystem";
}

const char* ToString(ReclaimPolicy policy) {
  switch (policy) {
    case ReclaimPolicy::kRetain: return "Retain";
    case ReclaimPolicy::kDelete: return "Delete";
    case ReclaimPolicy::kRecycle: return "Recycle";
  }
  return "";
}

const char* ToString(VolumeBindingMode mode) {
  return mode == VolumeBindingMode::kWaitForFirstConsumer ? "WaitForFirstConsumer" : "Immediate";
}

const char* ToString(VolumePhase phase) {
  switch (phase) {
    case VolumePhase::kPending: return "Pending";
    case VolumePhase::kAvailable: return "Available";
    case VolumePhase::kBound: return "Bound";
    case VolumePhase::kReleased: return "Released";
    case VolumePhase::kFailed: return "Failed";
  }
  return "";
}

const char* ToString(ClaimPhase phase) {
  switch (phase) {
    case ClaimPhase::kPending: return "Pending";
    case ClaimPhase::kBound: return "Bound";
    case ClaimPhase::kLost: return "Lost";
  }
  return "";
}

const char* ToString(LabelSelectorRequirement::Operator op) {
  using Op = LabelSelectorRequirement::Operator;
  switch (op) {
    case Op::kIn: return "In";
    case Op::kNotIn: return "NotIn";
    case Op::kExists: return "Exists";
    case Op::kDoesNotExist: return "DoesNotExist";
  }
  return "";
}

std::optional<AccessMode> ParseAccessMode(std::string_view text) {
  for (auto m : {AccessMode::kReadWriteOnce, AccessMode::kReadOnlyMany, AccessMode::kReadWriteMany,
                 AccessMode::kReadWriteOncePod}) {
    if (text == ToString(m)) return m;
  }
  return std::nullopt;
}

std::optional<VolumeMode> ParseVolumeMode(std::string_view text) {
  for (auto m : {VolumeMode::kFilesystem, VolumeMode::kBlock}) {
    if (text == ToString(m)) return m;
  }
  return std::nullopt;
}

std::optional<ReclaimPolicy> ParseReclaimPolicy(std::string_view text) {
  for (auto p : {ReclaimPolicy::kRetain, ReclaimPolicy::kDelete, ReclaimPolicy::kRecycle}) {
    if (text == ToString(p)) return p;
  }
  return std::nullopt;
}

std::optional<VolumeBindingMode> ParseVolumeBindingMode(std::string_view text) {
  for (auto m : {VolumeBindingMode::kImmediate, VolumeBindingMode::kWaitForFirstConsumer}) {
    if (text == ToString(m)) return m;
  }
  return std::nullopt;
}

std::optional<LabelSelectorRequirement::Operator> ParseSelectorOperator(std::string_view text) {
  using Op = LabelSelectorRequirement::Operator;
  for (auto op : {Op::kIn, Op::kNotIn, Op::kExists, Op::kDoesNotExist}) {
    if (text == ToString(op)) return op;
  }
  return std::nullopt;
}

}  // namespace claimfs::model
