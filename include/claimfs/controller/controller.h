// The control loop's decision function: a snapshot of objects and machine facts in, a plan of
// effects and object writes out, following Kubernetes' PV controller, external provisioner,
// external resizer and pvc/pv-protection controllers. Pure: no I/O, no clock, no randomness.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"

namespace claimfs::controller {

// On a PV carved from a pool: the pool's name. The pool's usage is the sum of the capacities of
// the PVs that carry it, whatever their phase (a Released Retain volume still holds its data).
inline constexpr char kPoolAnnotation[] = "claimfs.io/pool";
// Set on a claim whose class has a provisioner, as Kubernetes' setClaimProvisioner does.
inline constexpr char kStorageProvisionerAnnotation[] = "volume.kubernetes.io/storage-provisioner";
inline constexpr char kBetaStorageProvisionerAnnotation[] =
    "volume.beta.kubernetes.io/storage-provisioner";
// On a claim: the reclaim policy (Delete or Retain) of the volume provisioned for it, instead of
// its class's (a Docker volume's reclaimPolicy option). Any other value is ignored.
inline constexpr char kReclaimPolicyAnnotation[] = "claimfs.io/reclaim-policy";
// On a claim: owner and mode of the root directory of the volume provisioned for it.
inline constexpr char kOwnerUidAnnotation[] = "claimfs.io/owner-uid";
inline constexpr char kOwnerGidAnnotation[] = "claimfs.io/owner-gid";
inline constexpr char kModeAnnotation[] = "claimfs.io/mode";
// On a PV a non-root user created: that user's uid, set by the API server. Such a volume binds
// only to claims of the same owner, so that no one is handed a directory another user controls.
inline constexpr char kCreatorUidAnnotation[] = "claimfs.io/creator-uid";
inline constexpr char kDefaultPool[] = "default";
inline constexpr char kControllerComponent[] = "persistentvolume-controller";
inline constexpr char kResizerComponent[] = "external-resizer claimfs.io/local";
inline constexpr char kKubeletComponent[] = "kubelet";

// A backing directory volumes are carved from.
struct Pool {
  std::string name;
  std::string path;            // absolute; volumes live in <path>/<pv name>
  int64_t capacity_bytes = 0;  // configured, or the backing filesystem's size
};

// Everything Reconcile() looks at. Keys of claims are "namespace/name".
struct Snapshot {
  std::vector<model::StorageClass> classes;
  std::vector<model::PersistentVolume> volumes;
  std::vector<model::PersistentVolumeClaim> claims;
  std::vector<model::Event> events;  // recent events, for deduplication
  std::vector<Pool> pools;
  int max_volumes = 0;              // 0: no limit; counts Bound volumes (each mounted)
  std::set<std::string> in_use;     // claims with a user: open file, container, lease
  std::set<std::string> consumers;  // claims with a first consumer (WaitForFirstConsumer)
  std::set<std::string> mounted;    // PV names whose volume is mounted now
  std::vector<std::string> allowed_host_path_prefixes;  // static hostPath PVs deletable below
  // PV name -> what else its path equals, contains or lies inside ("PersistentVolume \"x\"
  // (/path)", "the state directory (/var/lib/claimfs/state)"): such a volume is neither mounted
  // nor deleted nor recycled.
  std::map<std::string, std::string> overlaps;
  // PVs whose directory claimfsd created (as recorded in the store, still the same directory) or
  // that no longer exists: the only ones whose data Delete and Recycle remove.
  std::set<std::string> created_directories;
};

// What the caller provides instead of a clock and a random source.
struct Inputs {
  std::string now;                       // RFC 3339, UTC
  std::function<std::string()> new_uid;  // a fresh object uid (RFC 4122) per call
};

enum class ActionType {
  kProvision,         // create directory `path` for `volume` in `pool`, quota `size_bytes`
  kExpand,            // raise `volume`'s quota from `old_size_bytes` to `size_bytes`, live
  kMount,             // serve `volume` (directory `path`) for `claim`
  kUnmount,           // stop serving `volume`
  kDeleteVolumeData,  // remove directory `path` and everything in it, never following symlinks
  kRecycle,           // remove everything inside `path`, keeping the directory
};
const char* ToString(ActionType type);

// An effect on the machine. The caller performs the actions of a plan in order.
struct Action {
  ActionType type = ActionType::kMount;
  std::string volume;          // PV name
  std::string claim;           // "namespace/name" of the claim involved, if any
  std::string storage_class;   // the claim's class (Provision)
  std::string pool;            // Provision, Expand; DeleteVolumeData/Recycle inside a pool
  std::string path;            // the volume's directory
  int64_t size_bytes = 0;      // Provision: capacity; Expand: new capacity; Mount: capacity
  int64_t old_size_bytes = 0;  // Expand
  std::vector<std::string> mount_options;  // Mount
  bool read_only = false;                  // Mount: the claim asks only for ReadOnlyMany
  // Index of an earlier action of the plan that must have succeeded for this one to run.
  std::optional<size_t> guard;

  bool operator==(const Action&) const = default;
};

// One object write. kPut creates or replaces the object (by kind and key); kRemove deletes it.
struct Write {
  enum class Op { kPut, kRemove };
  Op op = Op::kPut;
  std::variant<model::PersistentVolume, model::PersistentVolumeClaim, model::Event> object;
  // Index of the action whose success this write records (e.g. removing a PV after its data was
  // deleted); without a guard the write holds whatever the actions do.
  std::optional<size_t> guard;

  bool operator==(const Write&) const = default;
};

// The outcome of one reconcile. Applying it:
//   1. perform `actions` in order, skipping any whose guard did not succeed;
//   2. commit WritesToCommit(snapshot, plan, outcomes, inputs) in one transaction.
// Several writes of one object in `writes` are successive states of it; WritesToCommit keeps the
// last one that holds.
struct Plan {
  std::vector<Action> actions;
  std::vector<Write> writes;

  bool empty() const { return actions.empty() && writes.empty(); }
  bool operator==(const Plan&) const = default;
};

// Decides what to do, with Kubernetes' event reasons and messages. An event that describes a state
// (FailedBinding, WaitForFirstConsumer, a full pool) is written once, while no identical event is
// on record; an event that reports an operation (Provisioning, Resizing, a failed delete) bumps the
// count of an identical one. Results of operations (the new PV, an expanded capacity, a removed
// PV) are guarded writes: they commit only when their action succeeds.
// Deterministic for equal inputs. Idempotent: when every action of the plan
// succeeds and its writes are committed (and `mounted` reflects Mount/Unmount), reconciling the
// new state yields an empty plan, except for work the plan's effects made possible (space freed
// by a delete is only counted once the delete has happened) and retries of failed operations.
Plan Reconcile(const Snapshot& snapshot, const Inputs& inputs);

// The writes to commit after performing `plan.actions`. outcomes[i] is the Status of action i, or
// nullopt when it was skipped (its guard failed). Writes guarded by an action that did not succeed
// are dropped; a failed action adds the failure's writes (PV Failed, Kubernetes' warning events).
// The result has no guards and at most one write per object (its last state). `outcomes` must have
// one entry per action.
std::vector<Write> WritesToCommit(const Snapshot& snapshot, const Plan& plan,
                                  const std::vector<std::optional<Status>>& outcomes,
                                  const Inputs& inputs);

// The writes that record effects of `plan.actions` which no later plan could find again: the new
// PersistentVolume of each Provision that succeeded (its directory exists now, and only a PV
// naming it will ever reclaim it). A caller whose commit of WritesToCommit() fails, most often
// because a client changed or deleted the claim since the snapshot (a claim deleted right after
// it was created), commits these alone instead of dropping them. Alone they are a state
// Reconcile() completes: the volume, bound to its claim by claimRef, binds the claim on the next
// pass, or is released and reclaimed by its policy when the claim is gone. The result has no
// guards; `outcomes` is as for WritesToCommit().
std::vector<Write> ProvisionedVolumes(const Plan& plan,
                                      const std::vector<std::optional<Status>>& outcomes);

// The claim key "namespace/name" of a claim.
std::string ClaimKey(const model::PersistentVolumeClaim& claim);

}  // namespace claimfs::controller
