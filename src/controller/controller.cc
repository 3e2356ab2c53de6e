#include "claimfs/controller/controller.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "controller/events.h"
#include "controller/matching.h"

namespace claimfs::controller {

using model::ClaimPhase;
using model::PersistentVolume;
using model::PersistentVolumeClaim;
using model::ReclaimPolicy;
using model::VolumePhase;

namespace internal {
namespace {

constexpr char kDefaultClassBetaAnnotation[] = "storageclass.beta.kubernetes.io/is-default-class";
constexpr char kRecycleDeprecated[] =
    "Recycler pod: The Recycle reclaim policy is deprecated. Instead, the recommended approach is "
    "to use dynamic provisioning.";

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::string ProvisioningFailedMessage(const std::string& class_name, const std::string& why) {
  return "failed to provision volume with StorageClass " + Quoted(class_name) + ": " + why;
}

std::string ResizeFailedMessage(const std::string& volume, const std::string& why) {
  return "resize volume " + Quoted(volume) + " by resizer " + Quoted(model::kProvisionerName) +
         " failed: " + why;
}

// Orders the actions of a plan: unmounts first (a volume is released before its data is
// deleted), then the operations on data, then mounts of newly bound volumes.
enum Stage { kUnmountStage = 0, kOperationStage = 1, kMountStage = 2 };

class Reconciler {
 public:
  Reconciler(const Snapshot& snapshot, const Inputs& inputs)
      : snapshot_(snapshot), inputs_(inputs), recorder_(snapshot.events, inputs) {
    for (const PersistentVolume& pv : snapshot.volumes) {
      volumes_[pv.metadata.name] = pv;
      if (pv.status.phase == VolumePhase::kBound) ++bound_count_;
      std::string pool = Annotation(pv.metadata, kPoolAnnotation);
      if (!pool.empty()) reserved_[pool] += Capacity(pv);
    }
    for (const PersistentVolumeClaim& claim : snapshot.claims) claims_[ClaimKey(claim)] = claim;
  }

  Plan Run() {
    HandleClaimDeletions();
    AddFinalizers();
    std::vector<std::string> names;
    for (const auto& [name, pv] : volumes_) names.push_back(name);
    for (const std::string& name : names) {
      if (volumes_.count(name)) SyncVolume(name);
    }
    for (const std::string& key : ClaimsInOrder()) {
      if (claims_.count(key)) SyncClaim(key);
    }
    PlanMounts();
    return Assemble();
  }

 private:
  // ---- writes ----

  void PutVolume(const PersistentVolume& pv, std::optional<size_t> guard = std::nullopt) {
    auto it = volumes_.find(pv.metadata.name);
    if (it != volumes_.end() && it->second == pv) return;
    volumes_[pv.metadata.name] = pv;
    if (guard) tentative_.insert(pv.metadata.name);
    writes_.push_back({Write::Op::kPut, pv, guard});
  }

  void RemoveVolume(const PersistentVolume& pv, std::optional<size_t> guard = std::nullopt) {
    volumes_.erase(pv.metadata.name);
    writes_.push_back({Write::Op::kRemove, pv, guard});
  }

  void PutClaim(const PersistentVolumeClaim& claim, std::optional<size_t> guard = std::nullopt) {
    std::string key = ClaimKey(claim);
    auto it = claims_.find(key);
    if (it != claims_.end() && it->second == claim) return;
    claims_[key] = claim;
    writes_.push_back({Write::Op::kPut, claim, guard});
  }

  void RemoveClaim(const PersistentVolumeClaim& claim) {
    claims_.erase(ClaimKey(claim));
    writes_.push_back({Write::Op::kRemove, claim, std::nullopt});
  }

  template <typename Object>
  void Notice(const Object& object, const char* type, const std::string& reason,
              const std::string& message, const char* component = kControllerComponent) {
    if (auto e = recorder_.Notice(Ref(object), type, reason, message, component)) {
      writes_.push_back({Write::Op::kPut, std::move(*e), std::nullopt});
    }
  }

  template <typename Object>
  void Resynced(const Object& object, const char* type, const std::string& reason,
                const std::string& message) {
    if (auto e = recorder_.Resynced(Ref(object), type, reason, message)) {
      writes_.push_back({Write::Op::kPut, std::move(*e), std::nullopt});
    }
  }

  template <typename Object>
  void Occurrence(const Object& object, const char* type, const std::string& reason,
                  const std::string& message, const char* component, std::optional<size_t> guard) {
    writes_.push_back({Write::Op::kPut,
                       recorder_.Occurrence(Ref(object), type, reason, message, component), guard});
  }

  size_t AddAction(Action action, Stage stage) {
    actions_.push_back(std::move(action));
    stages_.push_back(stage);
    return actions_.size() - 1;
  }

  // ---- lookups ----

  const model::StorageClass* FindClass(const std::string& name) const {
    for (const model::StorageClass& c : snapshot_.classes) {
      if (c.metadata.name == name) return &c;
    }
    return nullptr;
  }

  // The newest class marked default, then the first by name, as Kubernetes' GetDefaultClass.
  const model::StorageClass* DefaultClass() const {
    const model::StorageClass* best = nullptr;
    for (const model::StorageClass& c : snapshot_.classes) {
      if (Annotation(c.metadata, model::kDefaultClassAnnotation) != "true" &&
          Annotation(c.metadata, kDefaultClassBetaAnnotation) != "true") {
        continue;
      }
      if (!best || c.metadata.creation_timestamp > best->metadata.creation_timestamp ||
          (c.metadata.creation_timestamp == best->metadata.creation_timestamp &&
           c.metadata.name < best->metadata.name)) {
        best = &c;
      }
    }
    return best;
  }

  const Pool* FindPool(const std::string& name) const {
    for (const Pool& p : snapshot_.pools) {
      if (p.name == name) return &p;
    }
    return nullptr;
  }

  // The claim a PV's claimRef points at, if it still exists with the same uid.
  const PersistentVolumeClaim* ClaimOf(const PersistentVolume& pv) const {
    if (!pv.spec.claim_ref) return nullptr;
    const model::ObjectReference& ref = *pv.spec.claim_ref;
    auto it = claims_.find(ref.namespace_ + "/" + ref.name);
    if (it == claims_.end() || it->second.metadata.uid != ref.uid) return nullptr;
    return &it->second;
  }

  std::vector<std::string> ClaimsInOrder() const {
    std::vector<std::pair<std::string, std::string>> order;
    for (const auto& [key, claim] : claims_) {
      order.emplace_back(claim.metadata.creation_timestamp, key);
    }
    std::sort(order.begin(), order.end());
    std::vector<std::string> keys;
    for (auto& [ts, key] : order) keys.push_back(std::move(key));
    return keys;
  }

  bool RoomForAnotherVolume() const {
    return snapshot_.max_volumes <= 0 || bound_count_ < snapshot_.max_volumes;
  }

  std::string MaxVolumesMessage() const {
    return "0/1 nodes are available: 1 node(s) exceed max volume count (" +
           std::to_string(bound_count_) + " volumes bound, maxVolumes " +
           std::to_string(snapshot_.max_volumes) + ")";
  }

  // ---- protection ----

  void HandleClaimDeletions() {
    std::vector<PersistentVolumeClaim> deleted;
    for (const auto& [key, claim] : claims_) {
      if (claim.metadata.deletion_timestamp && !snapshot_.in_use.count(key)) {
        deleted.push_back(claim);
      }
    }
    for (PersistentVolumeClaim claim : deleted) {
      RemoveFinalizer(claim.metadata, model::kPvcProtectionFinalizer);
      if (claim.metadata.finalizers.empty()) {
        RemoveClaim(claim);
      } else {
        PutClaim(claim);  // someone else's finalizer still holds it
      }
    }
  }

  void AddFinalizers() {
    std::vector<PersistentVolumeClaim> claims;
    for (const auto& [key, claim] : claims_) {
      if (!claim.metadata.deletion_timestamp &&
          !HasFinalizer(claim.metadata, model::kPvcProtectionFinalizer)) {
        claims.push_back(claim);
      }
    }
    for (PersistentVolumeClaim& claim : claims) {
      claim.metadata.finalizers.push_back(model::kPvcProtectionFinalizer);
      PutClaim(claim);
    }
    std::vector<PersistentVolume> volumes;
    for (const auto& [name, pv] : volumes_) {
      if (!pv.metadata.deletion_timestamp &&
          !HasFinalizer(pv.metadata, model::kPvProtectionFinalizer)) {
        volumes.push_back(pv);
      }
    }
    for (PersistentVolume& pv : volumes) {
      pv.metadata.finalizers.push_back(model::kPvProtectionFinalizer);
      PutVolume(pv);
    }
  }

  // ---- volumes (Kubernetes' syncVolume) ----

  void SetVolumePhase(PersistentVolume pv, VolumePhase phase) {
    if (pv.status.phase == phase) return;
    pv.status.phase = phase;
    pv.status.message.clear();
    pv.status.reason.clear();
    pv.status.last_phase_transition_time = inputs_.now;
    PutVolume(pv);
  }

  void FailVolume(PersistentVolume pv, const std::string& reason, const std::string& message) {
    if (pv.status.phase != VolumePhase::kFailed || pv.status.message != message) {
      if (pv.status.phase != VolumePhase::kFailed) {
        pv.status.last_phase_transition_time = inputs_.now;
      }
      pv.status.phase = VolumePhase::kFailed;
      pv.status.message = message;
      PutVolume(pv);
    }
    Notice(pv, kWarning, reason, message);
  }

  bool BoundToLiveClaim(const PersistentVolume& pv) const {
    const PersistentVolumeClaim* claim = ClaimOf(pv);
    return claim && claim->spec.volume_name == pv.metadata.name;
  }

  void SyncVolume(const std::string& name) {
    PersistentVolume pv = volumes_.at(name);
    if (pv.metadata.deletion_timestamp && !BoundToLiveClaim(pv)) {
      HandleVolumeDeletion(pv);
      return;
    }
    if (!pv.spec.claim_ref || pv.spec.claim_ref->uid.empty()) {
      // Unused, or reserved for a claim that has not bound yet.
      SetVolumePhase(pv, VolumePhase::kAvailable);
      return;
    }
    const PersistentVolumeClaim* claim = ClaimOf(pv);
    if (!claim) {
      Release(pv);
      return;
    }
    if (claim->spec.volume_name.empty()) return;  // the claim's sync finishes the binding
    if (claim->spec.volume_name == pv.metadata.name) {
      SetVolumePhase(pv, VolumePhase::kBound);
      return;
    }
    // The claim went to another volume.
    if (HasAnnotation(pv.metadata, model::kProvisionedByAnnotation) &&
        pv.spec.reclaim_policy == ReclaimPolicy::kDelete) {
      Release(pv);
    } else {
      Unbind(pv);
      PutVolume(pv);
    }
  }

  // Kubernetes' unbindVolume: a binding the controller made is undone, a user's pre-binding kept.
  static void Unbind(PersistentVolume& pv) {
    if (pv.metadata.annotations.erase(model::kBoundByControllerAnnotation)) {
      pv.spec.claim_ref.reset();
    } else if (pv.spec.claim_ref) {
      pv.spec.claim_ref->uid.clear();
    }
    pv.status.phase = VolumePhase::kAvailable;
    pv.status.message.clear();
    pv.status.reason.clear();
  }

  void Release(PersistentVolume pv) {
    if (pv.status.phase != VolumePhase::kReleased && pv.status.phase != VolumePhase::kFailed) {
      pv.status.phase = VolumePhase::kReleased;
      pv.status.message.clear();
      pv.status.last_phase_transition_time = inputs_.now;
      PutVolume(pv);
    }
    Reclaim(pv);
  }

  // The directory is claimfsd's: recorded when it was made, or being made in this plan.
  bool CreatedByUs(const PersistentVolume& pv) const {
    return snapshot_.created_directories.count(pv.metadata.name) > 0 ||
           provisioned_by_.count(pv.metadata.name) > 0;
  }

  bool ProvisionedByUs(const PersistentVolume& pv) const {
    return Annotation(pv.metadata, model::kProvisionedByAnnotation) == model::kProvisionerName;
  }

  std::string PoolNameOf(const PersistentVolume& pv) const {
    std::string pool = Annotation(pv.metadata, kPoolAnnotation);
    if (pool.empty()) {
      if (const Pool* p = PoolOf(VolumePath(pv), snapshot_.pools)) pool = p->name;
    }
    return pool;
  }

  std::optional<size_t> PlanDeleteData(const PersistentVolume& pv) {
    Action a;
    a.type = ActionType::kDeleteVolumeData;
    a.volume = pv.metadata.name;
    a.pool = PoolNameOf(pv);
    a.path = VolumePath(pv);
    return AddAction(std::move(a), kOperationStage);
  }

  void Reclaim(const PersistentVolume& pv) {
    switch (pv.spec.reclaim_policy.value_or(ReclaimPolicy::kRetain)) {
      case ReclaimPolicy::kRetain:
        return;  // Released until an admin clears the claimRef or deletes the PV
      case ReclaimPolicy::kDelete: {
        std::string provisioner = Annotation(pv.metadata, model::kProvisionedByAnnotation);
        if (!provisioner.empty() && provisioner != model::kProvisionerName) return;  // external
        if (auto refusal = ReclaimPathRefusal(VolumePath(pv), "deleter", snapshot_.pools,
                                              snapshot_.allowed_host_path_prefixes)) {
          FailVolume(pv, "VolumeFailedDelete", *refusal);
          return;
        }
        if (auto refusal =
                ReclaimOwnershipRefusal(pv, "deleter", snapshot_.overlaps, CreatedByUs(pv))) {
          FailVolume(pv, "VolumeFailedDelete", *refusal);
          return;
        }
        RemoveVolume(pv, PlanDeleteData(pv));
        return;
      }
      case ReclaimPolicy::kRecycle: {
        Notice(pv, kWarning, "RecyclerPod", kRecycleDeprecated);
        if (auto refusal = ReclaimPathRefusal(VolumePath(pv), "recycler", snapshot_.pools,
                                              snapshot_.allowed_host_path_prefixes)) {
          FailVolume(pv, "VolumeFailedRecycle", "Recycle failed: " + *refusal);
          return;
        }
        if (auto refusal =
                ReclaimOwnershipRefusal(pv, "recycler", snapshot_.overlaps, CreatedByUs(pv))) {
          FailVolume(pv, "VolumeFailedRecycle", "Recycle failed: " + *refusal);
          return;
        }
        Action a;
        a.type = ActionType::kRecycle;
        a.volume = pv.metadata.name;
        a.pool = PoolNameOf(pv);
        a.path = VolumePath(pv);
        size_t id = AddAction(std::move(a), kOperationStage);
        PersistentVolume recycled = pv;
        Unbind(recycled);
        recycled.status.last_phase_transition_time = inputs_.now;
        PutVolume(recycled, id);
        Occurrence(pv, kNormal, "VolumeRecycled", "Volume recycled", kControllerComponent, id);
        return;
      }
    }
  }

  // A PV whose deletion was asked for and that no live claim holds (pv-protection).
  void HandleVolumeDeletion(PersistentVolume pv) {
    bool delete_policy = pv.spec.reclaim_policy == ReclaimPolicy::kDelete;
    bool mid_reclaim =
        pv.spec.claim_ref && !pv.spec.claim_ref->uid.empty() &&
        (pv.status.phase == VolumePhase::kReleased || pv.status.phase == VolumePhase::kFailed) &&
        !HasAnnotation(pv.metadata, model::kProvisionedByAnnotation);
    if (delete_policy && (ProvisionedByUs(pv) || mid_reclaim) &&
        !ReclaimPathRefusal(VolumePath(pv), "deleter", snapshot_.pools,
                            snapshot_.allowed_host_path_prefixes) &&
        !ReclaimOwnershipRefusal(pv, "deleter", snapshot_.overlaps, CreatedByUs(pv))) {
      RemoveVolume(pv, PlanDeleteData(pv));
      return;
    }
    RemoveFinalizer(pv.metadata, model::kPvProtectionFinalizer);
    if (pv.metadata.finalizers.empty()) {
      RemoveVolume(pv);
    } else {
      PutVolume(pv);
    }
  }

  // ---- claims (Kubernetes' syncClaim) ----

  void SyncClaim(const std::string& key) {
    const PersistentVolumeClaim& claim = claims_.at(key);
    if (HasAnnotation(claim.metadata, model::kBindCompletedAnnotation)) {
      SyncBoundClaim(claim);
    } else {
      SyncUnboundClaim(claim);
    }
  }

  void SetClaimLost(PersistentVolumeClaim claim, const std::string& reason,
                    const std::string& message) {
    if (claim.status.phase == ClaimPhase::kLost) return;
    claim.status.phase = ClaimPhase::kLost;
    claim.status.access_modes.clear();
    claim.status.capacity.reset();
    PutClaim(claim);
    Notice(claim, kWarning, reason, message);
  }

  void SyncBoundClaim(PersistentVolumeClaim claim) {
    if (claim.spec.volume_name.empty()) {
      SetClaimLost(claim, "ClaimLost",
                   "Bound claim has lost reference to PersistentVolume. Data on the volume is "
                   "lost!");
      return;
    }
    auto it = volumes_.find(claim.spec.volume_name);
    if (it == volumes_.end()) {
      SetClaimLost(claim, "ClaimLost",
                   "Bound claim has lost its PersistentVolume. Data on the volume is lost!");
      return;
    }
    PersistentVolume pv = it->second;
    if (pv.spec.claim_ref && pv.spec.claim_ref->uid != claim.metadata.uid) {
      SetClaimLost(claim, "ClaimMisbound",
                   "Two claims are bound to the same volume, this one is bound incorrectly");
      return;
    }
    Bind(pv, claim);
    MaybeExpand(volumes_.at(pv.metadata.name), claims_.at(ClaimKey(claim)));
    MaybeFollowVolume(volumes_.at(pv.metadata.name), claims_.at(ClaimKey(claim)));
  }

  void EnsurePending(PersistentVolumeClaim claim) {
    claim.status.phase = ClaimPhase::kPending;
    claim.status.access_modes.clear();
    claim.status.capacity.reset();
    PutClaim(claim);
  }

  void SyncUnboundClaim(PersistentVolumeClaim claim) {
    if (claim.metadata.deletion_timestamp) return;  // on its way out: bind nothing to it
    if (!claim.spec.storage_class_name) {
      // What the DefaultStorageClass admission plugin does on create.
      if (const model::StorageClass* def = DefaultClass()) {
        claim.spec.storage_class_name = def->metadata.name;
        PutClaim(claim);
      }
    }
    if (!claim.spec.volume_name.empty()) {
      SyncClaimWithVolumeName(claim);
      return;
    }
    const model::StorageClass* cls = FindClass(ClaimClass(claim));
    bool delay = cls &&
                 cls->volume_binding_mode == model::VolumeBindingMode::kWaitForFirstConsumer &&
                 !snapshot_.consumers.count(ClaimKey(claim));
    std::vector<const PersistentVolume*> candidates;
    for (const auto& [name, pv] : volumes_) {
      if (!tentative_.count(name)) candidates.push_back(&pv);
    }
    if (const PersistentVolume* pv = FindBestMatch(candidates, claim, delay)) {
      if (!RoomForAnotherVolume()) {
        Resynced(claim, kWarning, "FailedBinding", MaxVolumesMessage());
        EnsurePending(claim);
        return;
      }
      Bind(*pv, claim);
      return;
    }
    if (delay) {
      Resynced(claim, kNormal, "WaitForFirstConsumer",
               "waiting for first consumer to be created before binding");
    } else if (!ClaimClass(claim).empty()) {
      if (Provision(claim)) return;
    } else {
      Resynced(claim, kNormal, "FailedBinding",
               "no persistent volumes available for this claim and no storage class is set");
    }
    EnsurePending(claims_.at(ClaimKey(claim)));
  }

  void SyncClaimWithVolumeName(const PersistentVolumeClaim& claim) {
    auto it = volumes_.find(claim.spec.volume_name);
    if (it == volumes_.end() || tentative_.count(it->first)) {
      EnsurePending(claim);  // retried until the PV appears
      return;
    }
    const PersistentVolume& pv = it->second;
    if (!pv.spec.claim_ref) {
      if (auto why = CheckVolumeSatisfiesClaim(pv, claim)) {
        Resynced(claim, kWarning, "VolumeMismatch",
                 "Cannot bind to requested volume " + Quoted(pv.metadata.name) + ": " + *why);
        EnsurePending(claim);
        return;
      }
    } else if (!IsVolumeBoundToClaim(pv, claim)) {
      Resynced(claim, kWarning, "FailedBinding",
               "volume " + Quoted(pv.metadata.name) + " already bound to a different claim.");
      EnsurePending(claim);
      return;
    }
    if (pv.status.phase != VolumePhase::kBound && !RoomForAnotherVolume()) {
      Resynced(claim, kWarning, "FailedBinding", MaxVolumesMessage());
      EnsurePending(claim);
      return;
    }
    Bind(pv, claim);
  }

  // Kubernetes' bind(): PV first (claimRef, Bound), then the claim (volumeName, annotations,
  // status), written together.
  void Bind(PersistentVolume pv, PersistentVolumeClaim claim,
            std::optional<size_t> guard = std::nullopt) {
    bool by_controller = !IsVolumeBoundToClaim(pv, claim);
    const model::ObjectReference* ref = pv.spec.claim_ref ? &*pv.spec.claim_ref : nullptr;
    if (!ref || ref->name != claim.metadata.name || ref->namespace_ != claim.metadata.namespace_ ||
        ref->uid != claim.metadata.uid) {
      pv.spec.claim_ref = model::ObjectReference{kClaimKind,
                                                 "v1",
                                                 claim.metadata.namespace_,
                                                 claim.metadata.name,
                                                 claim.metadata.uid,
                                                 claim.metadata.resource_version};
      if (by_controller) pv.metadata.annotations[model::kBoundByControllerAnnotation] = "yes";
    }
    if (pv.status.phase != VolumePhase::kBound) {
      ++bound_count_;
      pv.status.phase = VolumePhase::kBound;
      pv.status.message.clear();
      pv.status.reason.clear();
      pv.status.last_phase_transition_time = inputs_.now;
    }
    PutVolume(pv, guard);

    if (claim.spec.volume_name != pv.metadata.name) {
      claim.spec.volume_name = pv.metadata.name;
      claim.metadata.annotations.try_emplace(model::kBoundByControllerAnnotation, "yes");
    }
    claim.metadata.annotations.try_emplace(model::kBindCompletedAnnotation, "yes");
    // Capacity is set when the claim becomes Bound, not afterwards: expansion owns it then.
    if (claim.status.phase != ClaimPhase::kBound || !claim.status.capacity) {
      claim.status.capacity = pv.spec.capacity;
    }
    claim.status.phase = ClaimPhase::kBound;
    claim.status.access_modes = pv.spec.access_modes;
    PutClaim(claim, guard);
  }

  void SetClaimProvisioner(PersistentVolumeClaim claim, const std::string& provisioner) {
    claim.metadata.annotations[kStorageProvisionerAnnotation] = provisioner;
    claim.metadata.annotations[kBetaStorageProvisionerAnnotation] = provisioner;
    PutClaim(claim);
  }

  // Dynamic provisioning. Returns true when the claim is bound by this plan.
  bool Provision(const PersistentVolumeClaim& unprovisioned) {
    std::string class_name = ClaimClass(unprovisioned);
    const model::StorageClass* cls = FindClass(class_name);
    if (!cls) {
      Notice(unprovisioned, kWarning, "ProvisioningFailed",
             "storageclass.storage.k8s.io " + Quoted(class_name) + " not found");
      return false;
    }
    SetClaimProvisioner(unprovisioned, cls->provisioner);
    const PersistentVolumeClaim& claim = claims_.at(ClaimKey(unprovisioned));
    if (cls->provisioner != model::kProvisionerName) {
      Resynced(claim, kNormal, "ExternalProvisioning",
               "Waiting for a volume to be created either by the external provisioner '" +
                   cls->provisioner +
                   "' or manually by the system administrator. If volume creation is delayed, "
                   "please verify that the provisioner is running and correctly registered.");
      return false;
    }
    auto fail = [&](const std::string& why) {
      Notice(claim, kWarning, "ProvisioningFailed", ProvisioningFailedMessage(class_name, why),
             model::kProvisionerName);
      return false;
    };
    if (claim.spec.selector) return fail("claim Selector is not supported");
    if (claim.spec.volume_mode == model::VolumeMode::kBlock) {
      return fail("volumeMode Block is not supported: claimfs volumes are filesystems");
    }
    std::string pv_name = "pvc-" + claim.metadata.uid;
    if (volumes_.count(pv_name)) return false;  // provisioned before; binds when it suits
    auto pool_param = cls->parameters.find("pool");
    std::string pool_name = pool_param == cls->parameters.end() ? kDefaultPool : pool_param->second;
    const Pool* pool = FindPool(pool_name);
    if (!pool) return fail("pool " + Quoted(pool_name) + " is not configured");
    if (!RoomForAnotherVolume()) return fail(MaxVolumesMessage());
    int64_t request = Request(claim);
    int64_t& reserved = reserved_[pool_name];
    if (reserved + request > pool->capacity_bytes) {
      return fail("insufficient capacity in pool " + Quoted(pool_name) + ": requested " +
                  HumanBytes(request) + ", pool capacity " + HumanBytes(pool->capacity_bytes) +
                  ", already provisioned " + HumanBytes(reserved));
    }
    reserved += request;

    PersistentVolume pv;
    pv.metadata.name = pv_name;
    pv.metadata.uid = inputs_.new_uid ? inputs_.new_uid() : "";
    pv.metadata.creation_timestamp = inputs_.now;
    pv.metadata.annotations[model::kProvisionedByAnnotation] = model::kProvisionerName;
    pv.metadata.annotations[kPoolAnnotation] = pool_name;
    pv.metadata.finalizers.push_back(model::kPvProtectionFinalizer);
    pv.spec.capacity = claim.spec.request;
    pv.spec.access_modes = claim.spec.access_modes;
    pv.spec.volume_mode = claim.spec.volume_mode.value_or(model::VolumeMode::kFilesystem);
    pv.spec.storage_class_name = class_name;
    pv.spec.reclaim_policy = cls->reclaim_policy.value_or(ReclaimPolicy::kDelete);
    std::string wanted_policy = Annotation(claim.metadata, kReclaimPolicyAnnotation);
    if (wanted_policy == "Retain") pv.spec.reclaim_policy = ReclaimPolicy::kRetain;
    if (wanted_policy == "Delete") pv.spec.reclaim_policy = ReclaimPolicy::kDelete;
    pv.spec.mount_options = cls->mount_options;
    std::string root = pool->path;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    pv.spec.host_path = model::HostPathVolumeSource{root + "/" + pv_name, "DirectoryOrCreate"};

    Action a;
    a.type = ActionType::kProvision;
    a.volume = pv_name;
    a.claim = ClaimKey(claim);
    a.storage_class = class_name;
    a.pool = pool_name;
    a.path = pv.spec.host_path->path;
    a.size_bytes = request;
    size_t id = AddAction(std::move(a), kOperationStage);
    provisioned_by_[pv_name] = id;

    Occurrence(claim, kNormal, "Provisioning",
               "External provisioner is provisioning volume for claim " + Quoted(ClaimKey(claim)),
               model::kProvisionerName, std::nullopt);
    PersistentVolumeClaim to_bind = claim;
    Bind(pv, to_bind, id);
    Occurrence(claim, kNormal, "ProvisioningSucceeded",
               "Successfully provisioned volume " + pv_name, model::kProvisionerName, id);
    return true;
  }

  // ---- expansion (the external resizer) ----

  void MaybeExpand(PersistentVolume pv, PersistentVolumeClaim claim) {
    int64_t request = Request(claim);
    int64_t current = Capacity(pv);
    if (request <= current) return;  // nothing asked, or a shrink validation already refused
    const model::StorageClass* cls = FindClass(ClaimClass(claim));
    if (!cls || !cls->allow_volume_expansion.value_or(false) || !ProvisionedByUs(pv)) return;
    std::string pool_name = Annotation(pv.metadata, kPoolAnnotation);
    const Pool* pool = FindPool(pool_name);
    if (!pool) return;
    int64_t extra = request - current;
    int64_t& reserved = reserved_[pool_name];
    if (reserved + extra > pool->capacity_bytes) {
      Notice(claim, kWarning, "VolumeResizeFailed",
             ResizeFailedMessage(pv.metadata.name,
                                 "insufficient capacity in pool " + Quoted(pool_name) +
                                     ": requested " + HumanBytes(extra) + " more (" +
                                     HumanBytes(current) + " to " + HumanBytes(request) +
                                     "), pool capacity " + HumanBytes(pool->capacity_bytes) +
                                     ", already provisioned " + HumanBytes(reserved)),
             kResizerComponent);
      return;
    }
    reserved += extra;
    Action a;
    a.type = ActionType::kExpand;
    a.volume = pv.metadata.name;
    a.claim = ClaimKey(claim);
    a.storage_class = ClaimClass(claim);
    a.pool = pool_name;
    a.path = VolumePath(pv);
    a.size_bytes = request;
    a.old_size_bytes = current;
    size_t id = AddAction(std::move(a), kOperationStage);
    Occurrence(claim, kNormal, "Resizing",
               "External resizer is resizing volume " + pv.metadata.name, kResizerComponent,
               std::nullopt);
    PersistentVolume grown = pv;
    grown.spec.capacity = claim.spec.request;
    PutVolume(grown, id);
    PersistentVolumeClaim resized = claim;
    resized.status.capacity = claim.spec.request;
    PutClaim(resized, id);
    Occurrence(claim, kNormal, "VolumeResizeSuccessful", "Resize volume succeeded",
               kResizerComponent, id);
  }

  // A bound PV's capacity raised by hand (Kubernetes allows it, as the resizer does it): the
  // mount's quota follows live and the claim's status.capacity reports it, as kubelet's
  // NodeExpandVolume and the resizer's status update do. Lowering it is refused at admission.
  void MaybeFollowVolume(const PersistentVolume& pv, PersistentVolumeClaim claim) {
    if (!claim.status.capacity || Capacity(pv) <= claim.status.capacity->value()) return;
    Action a;
    a.type = ActionType::kExpand;
    a.volume = pv.metadata.name;
    a.claim = ClaimKey(claim);
    a.storage_class = ClaimClass(claim);
    a.pool = Annotation(pv.metadata, kPoolAnnotation);
    a.path = VolumePath(pv);
    a.size_bytes = Capacity(pv);
    a.old_size_bytes = claim.status.capacity->value();
    size_t id = AddAction(std::move(a), kOperationStage);
    claim.status.capacity = pv.spec.capacity;
    PutClaim(claim, id);
    Occurrence(claim, kNormal, "FileSystemResizeSuccessful",
               "MountVolume.NodeExpandVolume succeeded for volume " + Quoted(pv.metadata.name),
               kKubeletComponent, id);
  }

  // ---- mounts ----

  void PlanMounts() {
    std::set<std::string> wanted;
    for (const auto& [name, pv] : volumes_) {
      const PersistentVolumeClaim* claim = ClaimOf(pv);
      if (pv.status.phase != VolumePhase::kBound || !claim || claim->spec.volume_name != name ||
          claim->status.phase != ClaimPhase::kBound) {
        continue;
      }
      wanted.insert(name);
      if (snapshot_.mounted.count(name)) continue;
      auto overlap = snapshot_.overlaps.find(name);
      if (overlap != snapshot_.overlaps.end()) {
        Notice(*claim, kWarning, "FailedMount",
               "MountVolume.SetUp failed for volume " + Quoted(name) + " : its path " +
                   VolumePath(pv) + " overlaps " + overlap->second,
               kKubeletComponent);
        continue;
      }
      Action a;
      a.type = ActionType::kMount;
      a.volume = name;
      a.claim = ClaimKey(*claim);
      a.path = VolumePath(pv);
      a.size_bytes = Capacity(pv);
      for (const PersistentVolume& before : snapshot_.volumes) {
        if (before.metadata.name == name) a.size_bytes = Capacity(before);
      }
      a.mount_options = pv.spec.mount_options;
      a.read_only = claim->spec.access_modes ==
                    std::vector<model::AccessMode>{model::AccessMode::kReadOnlyMany};
      auto provision = provisioned_by_.find(name);
      if (provision != provisioned_by_.end()) a.guard = provision->second;
      std::string key = a.claim;
      size_t mount = AddAction(std::move(a), kMountStage);
      GuardBindingOnMount(key, mount);
    }
    for (const std::string& name : snapshot_.mounted) {
      if (wanted.count(name)) continue;
      Action a;
      a.type = ActionType::kUnmount;
      a.volume = name;
      size_t id = AddAction(std::move(a), kUnmountStage);
      unmounted_by_[name] = id;
    }
  }

  // A claim that becomes Bound in this plan is shown Bound only with its volume mounted: the
  // writes that make it Bound wait for the Mount (which itself waits for any Provision). When the
  // mount fails, the claim stays as it was (FailedMount says why) and the next pass binds again.
  void GuardBindingOnMount(const std::string& claim_key, size_t mount) {
    for (const PersistentVolumeClaim& c : snapshot_.claims) {
      if (ClaimKey(c) == claim_key && c.status.phase == ClaimPhase::kBound) return;
    }
    for (Write& w : writes_) {
      const auto* claim = std::get_if<PersistentVolumeClaim>(&w.object);
      if (claim && w.op == Write::Op::kPut && ClaimKey(*claim) == claim_key &&
          claim->status.phase == ClaimPhase::kBound) {
        w.guard = mount;
      }
    }
  }

  Plan Assemble() {
    // Data is touched only once its volume is no longer served.
    for (Action& a : actions_) {
      if ((a.type == ActionType::kDeleteVolumeData || a.type == ActionType::kRecycle) && !a.guard &&
          unmounted_by_.count(a.volume)) {
        a.guard = unmounted_by_[a.volume];
      }
    }
    std::vector<size_t> order(actions_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return stages_[a] < stages_[b]; });
    std::vector<size_t> position(actions_.size());
    for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
    Plan plan;
    for (size_t id : order) {
      Action a = actions_[id];
      if (a.guard) a.guard = position[*a.guard];
      plan.actions.push_back(std::move(a));
    }
    for (Write& w : writes_) {
      if (w.guard) w.guard = position[*w.guard];
      plan.writes.push_back(std::move(w));
    }
    return plan;
  }

  const Snapshot& snapshot_;
  const Inputs& inputs_;
  EventRecorder recorder_;
  std::map<std::string, PersistentVolume> volumes_;      // by name, as this plan leaves them
  std::map<std::string, PersistentVolumeClaim> claims_;  // by key, as this plan leaves them
  std::set<std::string> tentative_;          // PVs whose state here waits on an action's success
  std::map<std::string, int64_t> reserved_;  // pool -> bytes; never lowered within a plan
  int bound_count_ = 0;                      // never lowered within a plan
  std::map<std::string, size_t> provisioned_by_;  // PV -> its Provision action
  std::map<std::string, size_t> unmounted_by_;    // PV -> its Unmount action
  std::vector<Action> actions_;
  std::vector<Stage> stages_;
  std::vector<Write> writes_;
};

// ---- failures reported by the caller ----

const char* KindOf(const PersistentVolume&) { return kVolumeKind; }
const char* KindOf(const PersistentVolumeClaim&) { return kClaimKind; }
const char* KindOf(const model::Event&) { return "Event"; }

template <typename T>
const T* Latest(const std::vector<Write>& writes, const std::vector<T>& snapshot,
                const std::string& name, const std::string& namespace_) {
  for (auto it = writes.rbegin(); it != writes.rend(); ++it) {
    if (const T* obj = std::get_if<T>(&it->object)) {
      if (obj->metadata.name == name && obj->metadata.namespace_ == namespace_) {
        return it->op == Write::Op::kPut ? obj : nullptr;
      }
    }
  }
  for (const T& obj : snapshot) {
    if (obj.metadata.name == name && obj.metadata.namespace_ == namespace_) return &obj;
  }
  return nullptr;
}

}  // namespace
}  // namespace internal

const char* ToString(ActionType type) {
  switch (type) {
    case ActionType::kProvision:
      return "Provision";
    case ActionType::kExpand:
      return "Expand";
    case ActionType::kMount:
      return "Mount";
    case ActionType::kUnmount:
      return "Unmount";
    case ActionType::kDeleteVolumeData:
      return "DeleteVolumeData";
    case ActionType::kRecycle:
      return "Recycle";
  }
  return "";
}

std::vector<Write> ProvisionedVolumes(const Plan& plan,
                                      const std::vector<std::optional<Status>>& outcomes) {
  auto succeeded = [&](size_t i) {
    return i < outcomes.size() && outcomes[i].has_value() && outcomes[i]->ok();
  };
  std::vector<Write> records;
  for (size_t i = 0; i < plan.actions.size(); ++i) {
    const Action& a = plan.actions[i];
    if (a.type != ActionType::kProvision || !succeeded(i)) continue;
    // The volume's last state in the plan that holds.
    const PersistentVolume* last = nullptr;
    for (const Write& w : plan.writes) {
      const auto* pv = std::get_if<PersistentVolume>(&w.object);
      if (!pv || pv->metadata.name != a.volume || (w.guard && !succeeded(*w.guard))) continue;
      last = w.op == Write::Op::kPut ? pv : nullptr;
    }
    if (last) records.push_back({Write::Op::kPut, *last, std::nullopt});
  }
  return records;
}

std::string ClaimKey(const PersistentVolumeClaim& claim) {
  return claim.metadata.namespace_ + "/" + claim.metadata.name;
}

Plan Reconcile(const Snapshot& snapshot, const Inputs& inputs) {
  return internal::Reconciler(snapshot, inputs).Run();
}

std::vector<Write> WritesToCommit(const Snapshot& snapshot, const Plan& plan,
                                  const std::vector<std::optional<Status>>& outcomes,
                                  const Inputs& inputs) {
  auto succeeded = [&](size_t i) {
    return i < outcomes.size() && outcomes[i].has_value() && outcomes[i]->ok();
  };
  using internal::kWarning;
  using internal::Ref;
  std::vector<Write> commit;
  std::vector<model::Event> events = snapshot.events;
  for (const Write& w : plan.writes) {
    if (w.guard && !succeeded(*w.guard)) continue;
    Write kept = w;
    kept.guard.reset();
    if (const auto* e = std::get_if<model::Event>(&kept.object)) events.push_back(*e);
    commit.push_back(std::move(kept));
  }
  internal::EventRecorder recorder(std::move(events), inputs);
  auto record = [&](model::Event e) {
    commit.push_back({Write::Op::kPut, std::move(e), std::nullopt});
  };
  for (size_t i = 0; i < plan.actions.size() && i < outcomes.size(); ++i) {
    if (!outcomes[i] || outcomes[i]->ok()) continue;
    const Action& a = plan.actions[i];
    const std::string& error = outcomes[i]->message();
    size_t slash = a.claim.find('/');
    const PersistentVolumeClaim* claim =
        slash == std::string::npos
            ? nullptr
            : internal::Latest(commit, snapshot.claims, a.claim.substr(slash + 1),
                               a.claim.substr(0, slash));
    const PersistentVolume* pv = internal::Latest(commit, snapshot.volumes, a.volume, "");
    switch (a.type) {
      case ActionType::kProvision:
        if (claim) {
          record(recorder.Occurrence(Ref(*claim), kWarning, "ProvisioningFailed",
                                     internal::ProvisioningFailedMessage(a.storage_class, error),
                                     model::kProvisionerName));
        }
        break;
      case ActionType::kExpand:
        if (claim) {
          record(recorder.Occurrence(Ref(*claim), kWarning, "VolumeResizeFailed",
                                     internal::ResizeFailedMessage(a.volume, error),
                                     kResizerComponent));
        }
        break;
      case ActionType::kMount:
        if (claim) {
          record(recorder.Occurrence(
              Ref(*claim), kWarning, "FailedMount",
              "MountVolume.SetUp failed for volume " + internal::Quoted(a.volume) + " : " + error,
              kKubeletComponent));
        }
        break;
      case ActionType::kUnmount:
        if (pv) {
          record(recorder.Occurrence(Ref(*pv), kWarning, "FailedUnMount",
                                     "UnmountVolume.TearDown failed for volume " +
                                         internal::Quoted(a.volume) + " : " + error,
                                     kKubeletComponent));
        }
        break;
      case ActionType::kDeleteVolumeData:
      case ActionType::kRecycle: {
        if (!pv) break;
        bool del = a.type == ActionType::kDeleteVolumeData;
        std::string message = del ? error : "Recycle failed: " + error;
        PersistentVolume failed = *pv;
        if (failed.status.phase != VolumePhase::kFailed) {
          failed.status.last_phase_transition_time = inputs.now;
        }
        failed.status.phase = VolumePhase::kFailed;
        failed.status.message = message;
        if (!(failed == *pv)) commit.push_back({Write::Op::kPut, failed, std::nullopt});
        record(recorder.Occurrence(Ref(failed), kWarning,
                                   del ? "VolumeFailedDelete" : "VolumeFailedRecycle", message));
        break;
      }
    }
  }
  // One write per object: a store checks each against the version it read.
  std::vector<Write> last_per_object;
  std::set<std::string> seen;
  for (auto it = commit.rbegin(); it != commit.rend(); ++it) {
    std::string key = std::visit(
        [](const auto& obj) {
          return std::string(internal::KindOf(obj)) + "/" + obj.metadata.namespace_ + "/" +
                 obj.metadata.name;
        },
        it->object);
    if (seen.insert(key).second) last_per_object.push_back(std::move(*it));
  }
  std::reverse(last_per_object.begin(), last_per_object.end());
  return last_per_object;
}

}  // namespace claimfs::controller
