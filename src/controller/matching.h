// Internal: the predicates the controller decides with (which PV suits which claim, which paths a
// reclaim may touch) and small object helpers, mirroring Kubernetes' storage helpers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "claimfs/controller/controller.h"
#include "claimfs/model/objects.h"

namespace claimfs::controller::internal {

inline constexpr char kClaimKind[] = "PersistentVolumeClaim";
inline constexpr char kVolumeKind[] = "PersistentVolume";

int64_t Capacity(const model::PersistentVolume& pv);
int64_t Request(const model::PersistentVolumeClaim& claim);
// The claim's class as the PV controller reads it: absent and "" both mean no class.
std::string ClaimClass(const model::PersistentVolumeClaim& claim);
bool HasAnnotation(const model::ObjectMeta& meta, const std::string& key);
std::string Annotation(const model::ObjectMeta& meta, const std::string& key);
bool HasFinalizer(const model::ObjectMeta& meta, const std::string& finalizer);
// Removes `finalizer`; returns whether it was there.
bool RemoveFinalizer(model::ObjectMeta& meta, const std::string& finalizer);

model::ObjectReference Ref(const model::PersistentVolume& pv);
model::ObjectReference Ref(const model::PersistentVolumeClaim& claim);

// pv.spec.claimRef names this claim, by namespace and name, and by uid when the ref has one.
bool IsVolumeBoundToClaim(const model::PersistentVolume& pv,
                          const model::PersistentVolumeClaim& claim);
// The PV offers every access mode the claim asks for.
bool AccessModesContain(const std::vector<model::AccessMode>& offered,
                        const std::vector<model::AccessMode>& wanted);
bool VolumeModeMismatch(const model::PersistentVolume& pv,
                        const model::PersistentVolumeClaim& claim);

// A PV that a non-root user created (kCreatorUidAnnotation) serves only that user's claims;
// any other PV serves anyone.
bool OwnersAgree(const model::PersistentVolume& pv, const model::PersistentVolumeClaim& claim);

// Why a PV a claim names through spec.volumeName cannot serve it (Kubernetes'
// checkVolumeSatisfyClaim), or nullopt when it can.
std::optional<std::string> CheckVolumeSatisfiesClaim(const model::PersistentVolume& pv,
                                                     const model::PersistentVolumeClaim& claim);

// The best PV for a claim without spec.volumeName: a PV pre-bound to the claim if one suits it,
// else the Available PV of the claim's class that matches its selector and has the fewest access
// modes, then the least capacity (then the name). With `delay_binding` only pre-bound PVs qualify.
const model::PersistentVolume* FindBestMatch(
    const std::vector<const model::PersistentVolume*>& volumes,
    const model::PersistentVolumeClaim& claim, bool delay_binding);

// hostPath.path or local.path, "" when the PV has neither.
std::string VolumePath(const model::PersistentVolume& pv);
// `path` lies strictly below `root`, both compared in model::HostPath's normal form; false when
// either fails model::HostPathProblem (relative, "..", NUL, control or non-UTF-8 bytes).
bool IsStrictlyUnder(const std::string& path, const std::string& root);
// The pool whose directory holds `path`, or nullptr.
const Pool* PoolOf(const std::string& path, const std::vector<Pool>& pools);
// Why the host_path deleter (or recycler) refuses `path`, or nullopt when it lies below a managed
// pool or an allowed prefix. Worded as Kubernetes' "host_path deleter only supports /tmp/.+ ...".
std::optional<std::string> ReclaimPathRefusal(const std::string& path, const char* what,
                                              const std::vector<Pool>& pools,
                                              const std::vector<std::string>& prefixes);

// Why the host_path deleter (or recycler) must leave `pv`'s data alone although its path is one
// it supports: the path overlaps another volume or a directory of claimfsd's (`overlaps`), or
// claimfsd did not create the directory (`created` says it did). nullopt when it may go ahead.
std::optional<std::string> ReclaimOwnershipRefusal(
    const model::PersistentVolume& pv, const char* what,
    const std::map<std::string, std::string>& overlaps, bool created);

// A byte count as the shorter of its binary and decimal quantity spellings ("2Gi", "100G"), or,
// when that would take more than four digits, rounded to a tenth of a binary unit ("252.0Gi").
std::string HumanBytes(int64_t bytes);

}  // namespace claimfs::controller::internal
