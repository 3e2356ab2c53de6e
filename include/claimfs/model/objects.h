// The Kubernetes objects claimfs keeps: StorageClass (storage.k8s.io/v1), PersistentVolume and
// PersistentVolumeClaim (v1), and Event. Plain value types: no I/O, no validation (yaml/ decodes
// and validates, controller/ decides, store/ keeps them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "claimfs/model/quantity.h"

namespace claimfs::model {

inline constexpr char kProvisionerName[] = "claimfs.io/local";
inline constexpr char kDefaultClassAnnotation[] = "storageclass.kubernetes.io/is-default-class";
inline constexpr char kPvcProtectionFinalizer[] = "kubernetes.io/pvc-protection";
inline constexpr char kPvProtectionFinalizer[] = "kubernetes.io/pv-protection";
// Set by the controller on a claim/PV pair it bound (as Kubernetes' pv controller does).
inline constexpr char kBindCompletedAnnotation[] = "pv.kubernetes.io/bind-completed";
inline constexpr char kBoundByControllerAnnotation[] = "pv.kubernetes.io/bound-by-controller";
inline constexpr char kProvisionedByAnnotation[] = "pv.kubernetes.io/provisioned-by";
inline constexpr char kSelectedNodeAnnotation[] = "volume.kubernetes.io/selected-node";

struct ObjectMeta {
  std::string name;
  std::string namespace_;  // empty for cluster-scoped kinds (PV, StorageClass)
  std::string uid;
  std::string resource_version;  // decimal string, as Kubernetes
  int64_t generation = 0;
  std::string creation_timestamp;                 // RFC 3339, UTC ("2026-11-25T10:00:00Z")
  std::optional<std::string> deletion_timestamp;  // set when deletion was asked for
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> finalizers;

  bool operator==(const ObjectMeta&) const = default;
};

enum class AccessMode { kReadWriteOnce, kReadOnlyMany, kReadWriteMany, kReadWriteOncePod };
enum class VolumeMode { kFilesystem, kBlock };
enum class ReclaimPolicy { kRetain, kDelete, kRecycle };
enum class VolumeBindingMode { kImmediate, kWaitForFirstConsumer };
enum class VolumePhase { kPending, kAvailable, kBound, kReleased, kFailed };
enum class ClaimPhase { kPending, kBound, kLost };

struct LabelSelectorRequirement {
  enum class Operator { kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Operator op = Operator::kIn;
  std::vector<std::string> values;

  bool operator==(const LabelSelectorRequirement&) const = default;
};

struct LabelSelector {
  std::map<std::string, std::string> match_labels;
  std::vector<LabelSelectorRequirement> match_expressions;

  bool operator==(const LabelSelector&) const = default;
};

struct ObjectReference {
  std::string kind;  // "PersistentVolumeClaim"
  std::string api_version;
  std::string namespace_;
  std::string name;
  std::string uid;
  std::string resource_version;

  bool operator==(const ObjectReference&) const = default;
};

// Fields a manifest carried that claimfs does not model, kept so they round-trip, as a JSON
// object mirroring where they stood (e.g. {"spec": {"nodeAffinity": {...}}}).
using UnknownFields = nlohmann::json;

struct StorageClass {
  ObjectMeta metadata;
  std::string provisioner;
  std::map<std::string, std::string> parameters;  // "pool": the pool to carve volumes from
  std::optional<ReclaimPolicy> reclaim_policy;    // API default: Delete
  std::optional<bool> allow_volume_expansion;
  std::vector<std::string> mount_options;
  std::optional<VolumeBindingMode> volume_binding_mode;  // API default: Immediate
  UnknownFields unknown_fields;

  bool operator==(const StorageClass&) const = default;
};

struct HostPathVolumeSource {
  std::string path;
  std::optional<std::string> type;  // "", DirectoryOrCreate, Directory, ...

  bool operator==(const HostPathVolumeSource&) const = default;
};

struct LocalVolumeSource {
  std::string path;

  bool operator==(const LocalVolumeSource&) const = default;
};

struct PersistentVolumeSpec {
  std::optional<Quantity> capacity;  // capacity.storage
  std::vector<AccessMode> access_modes;
  std::optional<VolumeMode> volume_mode;  // API default: Filesystem
  std::string storage_class_name;         // "" = no class
  std::optional<ReclaimPolicy> reclaim_policy;  // API default: Retain (static), class's (dynamic)
  std::vector<std::string> mount_options;
  std::optional<HostPathVolumeSource> host_path;
  std::optional<LocalVolumeSource> local;
  std::optional<ObjectReference> claim_ref;

  bool operator==(const PersistentVolumeSpec&) const = default;
};

struct PersistentVolumeStatus {
  VolumePhase phase = VolumePhase::kPending;
  std::string message;
  std::string reason;
  std::optional<std::string> last_phase_transition_time;

  bool operator==(const PersistentVolumeStatus&) const = default;
};

struct PersistentVolume {
  ObjectMeta metadata;
  PersistentVolumeSpec spec;
  PersistentVolumeStatus status;
  UnknownFields unknown_fields;

  bool operator==(const PersistentVolume&) const = default;
};

struct PersistentVolumeClaimSpec {
  std::vector<AccessMode> access_modes;
  std::optional<LabelSelector> selector;
  std::optional<Quantity> request;  // resources.requests.storage
  std::optional<Quantity> limit;    // resources.limits.storage
  std::string volume_name;
  std::optional<std::string> storage_class_name;  // absent = default class; "" = no class
  std::optional<VolumeMode> volume_mode;          // API default: Filesystem

  bool operator==(const PersistentVolumeClaimSpec&) const = default;
};

struct PersistentVolumeClaimCondition {
  std::string type;    // "Resizing", "FileSystemResizePending"
  std::string status;  // "True" | "False"
  std::string reason;
  std::string message;
  std::string last_transition_time;

  bool operator==(const PersistentVolumeClaimCondition&) const = default;
};

struct PersistentVolumeClaimStatus {
  ClaimPhase phase = ClaimPhase::kPending;
  std::vector<AccessMode> access_modes;
  std::optional<Quantity> capacity;  // capacity.storage, set when Bound
  std::vector<PersistentVolumeClaimCondition> conditions;

  bool operator==(const PersistentVolumeClaimStatus&) const = default;
};

struct PersistentVolumeClaim {
  ObjectMeta metadata;
  PersistentVolumeClaimSpec spec;
  PersistentVolumeClaimStatus status;
  UnknownFields unknown_fields;

  bool operator==(const PersistentVolumeClaim&) const = default;
};

struct Event {
  ObjectMeta metadata;  // name "<object>.<unique hex>", namespace of the object ("default" for PVs)
  ObjectReference involved_object;
  std::string reason;   // FailedBinding, ProvisioningFailed, ...
  std::string message;
  std::string type;     // "Normal" | "Warning"
  std::string source_component;  // "persistentvolume-controller"
  int32_t count = 1;
  std::string first_timestamp;
  std::string last_timestamp;

  bool operator==(const Event&) const = default;
};

// Kubernetes spellings, for codecs and printing.
const char* ToString(AccessMode mode);          // "ReadWriteOnce"
const char* ToShortString(AccessMode mode);     // "RWO", as kubectl's ACCESS MODES column
// kubectl's ACCESS MODES cell: RWO,ROX,RWX,RWOP in that order, each once.
std::string AccessModesText(const std::vector<AccessMode>& modes);
const char* ToString(VolumeMode mode);          // "Filesystem" | "Block"
const char* ToString(ReclaimPolicy policy);     // "Retain" | "Delete" | "Recycle"
const char* ToString(VolumeBindingMode mode);   // "Immediate" | "WaitForFirstConsumer"
const char* ToString(VolumePhase phase);        // "Available", ...
const char* ToString(ClaimPhase phase);         // "Pending", ...
const char* ToString(LabelSelectorRequirement::Operator op);  // "In", ...
std::optional<AccessMode> ParseAccessMode(std::string_view text);
std::optional<VolumeMode> ParseVolumeMode(std::string_view text);
std::optional<ReclaimPolicy> ParseReclaimPolicy(std::string_view text);
std::optional<VolumeBindingMode> ParseVolumeBindingMode(std::string_view text);
std::optional<LabelSelectorRequirement::Operator> ParseSelectorOperator(std::string_view text);

}  // namespace claimfs::model
