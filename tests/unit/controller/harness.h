// A small world for controller tests: builders for objects, and a caller that applies plans the
// way claimfsd does (actions in order, guarded writes, failures reported back).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "claimfs/controller/controller.h"
#include "claimfs/model/objects.h"
#include "claimfs/model/quantity.h"

namespace claimfs::controller::testing {

using model::AccessMode;
using model::ClaimPhase;
using model::PersistentVolume;
using model::PersistentVolumeClaim;
using model::ReclaimPolicy;
using model::StorageClass;
using model::VolumePhase;

constexpr AccessMode kRWO = AccessMode::kReadWriteOnce;
constexpr AccessMode kROX = AccessMode::kReadOnlyMany;
constexpr AccessMode kRWX = AccessMode::kReadWriteMany;

inline model::Quantity Q(const char* text) { return model::Quantity::Parse(text).value(); }
inline int64_t Bytes(const char* text) { return Q(text).value(); }

inline StorageClass Class(const std::string& name,
                          const std::string& provisioner = model::kProvisionerName) {
  StorageClass c;
  c.metadata.name = name;
  c.metadata.uid = "uid-sc-" + name;
  c.metadata.creation_timestamp = "2026-01-01T00:00:00Z";
  c.provisioner = provisioner;
  return c;
}

inline StorageClass DefaultClass(const std::string& name) {
  StorageClass c = Class(name);
  c.metadata.annotations[model::kDefaultClassAnnotation] = "true";
  return c;
}

// A static hostPath PV, Retain unless told, as an admin writes it.
inline PersistentVolume Pv(const std::string& name, const char* capacity,
                           std::vector<AccessMode> modes, const std::string& storage_class,
                           const std::string& path = "") {
  PersistentVolume pv;
  pv.metadata.name = name;
  pv.metadata.uid = "uid-pv-" + name;
  pv.metadata.resource_version = "1";
  pv.metadata.creation_timestamp = "2026-01-01T00:00:00Z";
  pv.spec.capacity = Q(capacity);
  pv.spec.access_modes = std::move(modes);
  pv.spec.volume_mode = model::VolumeMode::kFilesystem;
  pv.spec.storage_class_name = storage_class;
  pv.spec.reclaim_policy = ReclaimPolicy::kRetain;
  pv.spec.host_path = model::HostPathVolumeSource{path.empty() ? "/tmp/" + name : path, {}};
  return pv;
}

inline PersistentVolumeClaim Claim(const std::string& name, const char* request,
                                   std::vector<AccessMode> modes,
                                   std::optional<std::string> storage_class,
                                   const std::string& created = "2026-01-01T00:00:01Z") {
  PersistentVolumeClaim c;
  c.metadata.name = name;
  c.metadata.namespace_ = "default";
  c.metadata.uid = "uid-claim-" + name;
  c.metadata.resource_version = "1";
  c.metadata.creation_timestamp = created;
  c.spec.access_modes = std::move(modes);
  c.spec.request = Q(request);
  c.spec.storage_class_name = std::move(storage_class);
  c.spec.volume_mode = model::VolumeMode::kFilesystem;
  return c;
}

inline std::vector<const model::Event*> EventsIn(const std::vector<Write>& writes) {
  std::vector<const model::Event*> events;
  for (const Write& w : writes) {
    if (const auto* e = std::get_if<model::Event>(&w.object)) events.push_back(e);
  }
  return events;
}

class World {
 public:
  Snapshot snap;
  // Actions that fail, by (type, volume), with the error the caller reports.
  std::map<std::pair<ActionType, std::string>, std::string> failures;
  Plan last_plan;
  std::vector<Write> last_commit;
  // Directories Provision made that DeleteVolumeData has not removed: what is left in the pools.
  std::set<std::string> directories;
  // A client's write racing the next Step(): called after the actions, before the commit. When it
  // returns true the commit fails (the store saw a changed object) and only ProvisionedVolumes()
  // is committed, as claimfsd does. Used once, then cleared.
  std::function<bool(World&)> race;

  World() { snap.pools.push_back({"default", "/pools/default", Bytes("100Gi")}); }

  Inputs MakeInputs() {
    Inputs in;
    char now[32];
    std::snprintf(now, sizeof now, "2026-01-02T00:%02d:%02dZ", tick_ / 60 % 60, tick_ % 60);
    in.now = now;
    in.new_uid = [this] {
      char uid[40];
      std::snprintf(uid, sizeof uid, "00000000-0000-4000-8000-%012d", ++uid_counter_);
      return std::string(uid);
    };
    return in;
  }

  // Reconciles without applying.
  Plan Peek() {
    Inputs in = MakeInputs();
    return Reconcile(snap, in);
  }

  // Reconciles and applies the plan: actions in order (guards honoured), then the commit.
  Plan Step() {
    ++tick_;
    Inputs in = MakeInputs();
    Plan plan = Reconcile(snap, in);
    std::vector<std::optional<Status>> outcomes;
    for (const Action& a : plan.actions) {
      if (a.guard && !(outcomes[*a.guard] && outcomes[*a.guard]->ok())) {
        outcomes.push_back(std::nullopt);
        continue;
      }
      auto failure = failures.find({a.type, a.volume});
      if (failure != failures.end()) {
        outcomes.push_back(Status::IOError(failure->second));
        continue;
      }
      outcomes.push_back(Status::Ok());
      if (a.type == ActionType::kMount) snap.mounted.insert(a.volume);
      if (a.type == ActionType::kUnmount) snap.mounted.erase(a.volume);
      if (a.type == ActionType::kProvision) {
        directories.insert(a.path);
        snap.created_directories.insert(a.volume);  // claimfsd records what it makes
      }
      if (a.type == ActionType::kDeleteVolumeData) directories.erase(a.path);
    }
    last_commit = WritesToCommit(snap, plan, outcomes, in);
    std::function<bool(World&)> client = std::move(race);
    race = nullptr;
    if (client && client(*this)) last_commit = ProvisionedVolumes(plan, outcomes);
    for (const Write& w : last_commit) Apply(w);
    last_plan = plan;
    return plan;
  }

  // Steps until a plan is empty; fails the test if that takes more than `max_steps`.
  int Settle(int max_steps = 8) {
    for (int i = 1; i <= max_steps; ++i) {
      if (Step().empty()) return i;
    }
    ADD_FAILURE() << "no fixpoint after " << max_steps << " steps";
    return max_steps;
  }

  PersistentVolume* Volume(const std::string& name) {
    for (auto& pv : snap.volumes) {
      if (pv.metadata.name == name) return &pv;
    }
    return nullptr;
  }

  PersistentVolumeClaim* ClaimNamed(const std::string& name) {
    for (auto& c : snap.claims) {
      if (c.metadata.name == name) return &c;
    }
    return nullptr;
  }

  std::vector<const model::Event*> EventsFor(const std::string& object) const {
    std::vector<const model::Event*> found;
    for (const auto& e : snap.events) {
      if (e.involved_object.name == object) found.push_back(&e);
    }
    return found;
  }

  // The event on `object` with `reason`, or nullptr.
  const model::Event* Event(const std::string& object, const std::string& reason) const {
    for (const auto* e : EventsFor(object)) {
      if (e->reason == reason) return e;
    }
    return nullptr;
  }

  // Lets `seconds` pass before the next Step().
  void Wait(int seconds) { tick_ += seconds; }

  void DeleteClaim(const std::string& name) {
    ClaimNamed(name)->metadata.deletion_timestamp = "2026-01-03T00:00:00Z";
  }

 private:
  template <typename T>
  static void Upsert(std::vector<T>& list, const T& obj, bool remove) {
    auto it = std::find_if(list.begin(), list.end(), [&](const T& o) {
      return o.metadata.name == obj.metadata.name &&
             o.metadata.namespace_ == obj.metadata.namespace_;
    });
    if (remove) {
      if (it != list.end()) list.erase(it);
      return;
    }
    T stored = obj;
    int rv = it == list.end() ? 0 : std::atoi(it->metadata.resource_version.c_str());
    stored.metadata.resource_version = std::to_string(rv + 1);
    if (it == list.end()) {
      list.push_back(stored);
    } else {
      *it = stored;
    }
  }

  void Apply(const Write& w) {
    bool remove = w.op == Write::Op::kRemove;
    if (const auto* pv = std::get_if<PersistentVolume>(&w.object))
      Upsert(snap.volumes, *pv, remove);
    if (const auto* c = std::get_if<PersistentVolumeClaim>(&w.object)) {
      Upsert(snap.claims, *c, remove);
    }
    if (const auto* e = std::get_if<model::Event>(&w.object)) Upsert(snap.events, *e, remove);
  }

  int tick_ = 0;
  int uid_counter_ = 0;
};

}  // namespace claimfs::controller::testing
