#include "controller/matching.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <tuple>

#include "claimfs/model/host_path.h"
#include "claimfs/model/quantity.h"
#include "claimfs/model/selector.h"

namespace claimfs::controller::internal {

using model::AccessMode;
using model::PersistentVolume;
using model::PersistentVolumeClaim;

int64_t Capacity(const PersistentVolume& pv) {
  return pv.spec.capacity ? pv.spec.capacity->value() : 0;
}

int64_t Request(const PersistentVolumeClaim& claim) {
  return claim.spec.request ? claim.spec.request->value() : 0;
}

std::string ClaimClass(const PersistentVolumeClaim& claim) {
  return claim.spec.storage_class_name.value_or("");
}

bool HasAnnotation(const model::ObjectMeta& meta, const std::string& key) {
  return meta.annotations.count(key) > 0;
}

std::string Annotation(const model::ObjectMeta& meta, const std::string& key) {
  auto it = meta.annotations.find(key);
  return it == meta.annotations.end() ? "" : it->second;
}

bool HasFinalizer(const model::ObjectMeta& meta, const std::string& finalizer) {
  return std::find(meta.finalizers.begin(), meta.finalizers.end(), finalizer) !=
         meta.finalizers.end();
}

bool RemoveFinalizer(model::ObjectMeta& meta, const std::string& finalizer) {
  auto it = std::remove(meta.finalizers.begin(), meta.finalizers.end(), finalizer);
  bool found = it != meta.finalizers.end();
  meta.finalizers.erase(it, meta.finalizers.end());
  return found;
}

model::ObjectReference Ref(const PersistentVolume& pv) {
  return {kVolumeKind, "v1", "", pv.metadata.name, pv.metadata.uid, pv.metadata.resource_version};
}

model::ObjectReference Ref(const PersistentVolumeClaim& claim) {
  return {kClaimKind,
          "v1",
          claim.metadata.namespace_,
          claim.metadata.name,
          claim.metadata.uid,
          claim.metadata.resource_version};
}

bool IsVolumeBoundToClaim(const PersistentVolume& pv, const PersistentVolumeClaim& claim) {
  if (!pv.spec.claim_ref) return false;
  const model::ObjectReference& ref = *pv.spec.claim_ref;
  if (ref.name != claim.metadata.name || ref.namespace_ != claim.metadata.namespace_) return false;
  return ref.uid.empty() || ref.uid == claim.metadata.uid;
}

bool AccessModesContain(const std::vector<AccessMode>& offered,
                        const std::vector<AccessMode>& wanted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](AccessMode m) {
    return std::find(offered.begin(), offered.end(), m) != offered.end();
  });
}

bool VolumeModeMismatch(const PersistentVolume& pv, const PersistentVolumeClaim& claim) {
  return pv.spec.volume_mode.value_or(model::VolumeMode::kFilesystem) !=
         claim.spec.volume_mode.value_or(model::VolumeMode::kFilesystem);
}

bool OwnersAgree(const PersistentVolume& pv, const PersistentVolumeClaim& claim) {
  auto creator = pv.metadata.annotations.find(kCreatorUidAnnotation);
  if (creator == pv.metadata.annotations.end()) return true;
  auto owner = claim.metadata.annotations.find(kOwnerUidAnnotation);
  return owner != claim.metadata.annotations.end() && owner->second == creator->second;
}

std::optional<std::string> CheckVolumeSatisfiesClaim(const PersistentVolume& pv,
                                                     const PersistentVolumeClaim& claim) {
  if (pv.metadata.deletion_timestamp) {
    return "the volume is marked for deletion \"" + pv.metadata.name + "\"";
  }
  if (Capacity(pv) < Request(claim)) return "requested PV is too small";
  if (pv.spec.storage_class_name != ClaimClass(claim)) return "storageClassName does not match";
  if (VolumeModeMismatch(pv, claim)) return "incompatible volumeMode";
  if (!AccessModesContain(pv.spec.access_modes, claim.spec.access_modes)) {
    return "incompatible accessMode";
  }
  if (!OwnersAgree(pv, claim)) return "the volume was created by another user";
  return std::nullopt;
}

const PersistentVolume* FindBestMatch(const std::vector<const PersistentVolume*>& volumes,
                                      const PersistentVolumeClaim& claim, bool delay_binding) {
  auto rank = [](const PersistentVolume* pv) {
    return std::make_tuple(pv->spec.access_modes.size(), Capacity(*pv), pv->metadata.name);
  };
  const PersistentVolume* prebound = nullptr;
  const PersistentVolume* best = nullptr;
  for (const PersistentVolume* pv : volumes) {
    if (pv->spec.claim_ref && !IsVolumeBoundToClaim(*pv, claim)) continue;
    if (!AccessModesContain(pv->spec.access_modes, claim.spec.access_modes)) continue;
    if (Capacity(*pv) < Request(claim)) continue;
    if (VolumeModeMismatch(*pv, claim)) continue;
    if (pv->metadata.deletion_timestamp) continue;
    if (!OwnersAgree(*pv, claim)) continue;
    if (IsVolumeBoundToClaim(*pv, claim)) {
      // Pre-bound volumes skip the class, selector and phase checks, as in Kubernetes.
      if (!prebound || rank(pv) < rank(prebound)) prebound = pv;
      continue;
    }
    if (delay_binding) continue;
    if (pv->status.phase != model::VolumePhase::kAvailable) continue;
    if (claim.spec.selector && !model::Matches(*claim.spec.selector, pv->metadata.labels)) continue;
    if (pv->spec.storage_class_name != ClaimClass(claim)) continue;
    if (!best || rank(pv) < rank(best)) best = pv;
  }
  return prebound ? prebound : best;
}

std::string VolumePath(const PersistentVolume& pv) {
  if (pv.spec.host_path) return pv.spec.host_path->path;
  if (pv.spec.local) return pv.spec.local->path;
  return "";
}

bool IsStrictlyUnder(const std::string& path, const std::string& root) {
  auto p = model::HostPath::Parse(path);
  auto r = model::HostPath::Parse(root);
  return p.ok() && r.ok() && p->IsStrictlyBelow(*r);
}

const Pool* PoolOf(const std::string& path, const std::vector<Pool>& pools) {
  for (const Pool& pool : pools) {
    if (IsStrictlyUnder(path, pool.path)) return &pool;
  }
  return nullptr;
}

std::optional<std::string> ReclaimPathRefusal(const std::string& path, const char* what,
                                              const std::vector<Pool>& pools,
                                              const std::vector<std::string>& prefixes) {
  std::vector<std::string> roots;
  for (const Pool& pool : pools) roots.push_back(pool.path);
  roots.insert(roots.end(), prefixes.begin(), prefixes.end());
  std::string supported;
  for (const std::string& root : roots) {
    if (IsStrictlyUnder(path, root)) return std::nullopt;
    auto parsed = model::HostPath::Parse(root);
    std::string shown = parsed.ok() ? parsed->string() : model::EscapePathForMessage(root);
    if (!supported.empty()) supported += ", ";
    supported += (shown == "/" ? "" : shown) + "/.+";
  }
  if (supported.empty()) supported = "no path (no managed pool or allowed prefix is configured)";
  return std::string("host_path ") + what + " only supports " + supported +
         " but received provided " + (path.empty() ? "\"\"" : model::EscapePathForMessage(path));
}

std::optional<std::string> ReclaimOwnershipRefusal(
    const PersistentVolume& pv, const char* what,
    const std::map<std::string, std::string>& overlaps, bool created) {
  std::string path = VolumePath(pv);
  auto overlap = overlaps.find(pv.metadata.name);
  if (overlap != overlaps.end()) {
    return std::string("host_path ") + what + " refuses " + path + ": it overlaps " +
           overlap->second + "; the data is kept";
  }
  if (!created) {
    return std::string("host_path ") + what +
           " only removes directories claimfsd created but received provided " + path +
           ", which it did not create; the data is kept";
  }
  return std::nullopt;
}

std::string HumanBytes(int64_t bytes) {
  std::string binary =
      model::Quantity::FromBytes(bytes, model::QuantityFormat::kBinarySI).ToString();
  std::string decimal =
      model::Quantity::FromBytes(bytes, model::QuantityFormat::kDecimalSI).ToString();
  std::string exact = decimal.size() < binary.size() ? decimal : binary;
  constexpr size_t kMostDigitsPeopleWrite = 4;
  size_t digits = std::min(exact.find_first_not_of("0123456789"), exact.size());
  if (digits <= kMostDigitsPeopleWrite) return exact;
  // A measured size such as a disk's free space: 264212084Ki reads as 252.0Gi.
  static const char* const kUnits[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (unit + 1 < std::size(kUnits) && value >= 1024) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%s", value, kUnits[unit]);
  return buf;
}

}  // namespace claimfs::controller::internal
