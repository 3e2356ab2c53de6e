// Daemon: the control loop (snapshot, plan, act, commit) and the facts a plan is made from.
#include "daemon.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <type_traits>
#include <variant>

#include "claimfs/common/log.h"
#include "claimfs/model/objects.h"
#include "claimfs/provisioner/volume_directory.h"
#include "claimfs/store/write_batch.h"
#include "daemon_internal.h"

namespace claimfs::claimfsd {
namespace {

using controller::Action;

constexpr auto kTick = std::chrono::seconds(1);
constexpr auto kMaxBackoff = std::chrono::seconds(60);

// An RFC 4122 version 4 UUID.
std::string NewUid() {
  std::string h = RandomHex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string ActionKey(const Action& a) {
  return std::string(controller::ToString(a.type)) + " " + a.volume;
}

// Events: the controller hands back an event it already counted (count = total); the store
// folds a repeat into the event it keeps by adding counts, so it gets the increase only.
model::Event EventIncrement(model::Event event, const std::vector<model::Event>& known) {
  for (const model::Event& e : known) {
    if (e.metadata.name == event.metadata.name) {
      event.count = std::max(1, event.count - e.count);
      break;
    }
  }
  return event;
}

template <typename T>
bool Stored(const std::vector<T>& objects, const T& object) {
  for (const T& o : objects) {
    if (o.metadata.name == object.metadata.name && o.metadata.namespace_ == object.metadata.namespace_) {
      return true;
    }
  }
  return false;
}

// The store operations for controller writes: a kPut creates an object the snapshot did not
// hold and updates one it did; events go in as increments over the snapshot's.
store::WriteBatch ToBatch(const std::vector<controller::Write>& writes,
                          const store::Snapshot& stored, const std::vector<model::Event>& events) {
  store::WriteBatch batch;
  for (const controller::Write& w : writes) {
    std::visit(
        [&](const auto& object) {
          using T = std::decay_t<decltype(object)>;
          if constexpr (std::is_same_v<T, model::Event>) {
            if (w.op == controller::Write::Op::kPut) batch.AddEvent(EventIncrement(object, events));
          } else {
            store::Kind kind = std::is_same_v<T, model::PersistentVolume>
                                   ? store::Kind::kPersistentVolume
                                   : store::Kind::kPersistentVolumeClaim;
            if (w.op == controller::Write::Op::kRemove) {
              batch.Delete(kind, object.metadata.namespace_, object.metadata.name,
                           object.metadata.resource_version);
            } else if constexpr (std::is_same_v<T, model::PersistentVolume>) {
              if (Stored(stored.volumes, object)) {
                batch.Update(object);
              } else {
                batch.Create(object);
              }
            } else {
              if (Stored(stored.claims, object)) {
                batch.Update(object);
              } else {
                batch.Create(object);
              }
            }
          }
        },
        w.object);
  }
  return batch;
}

}  // namespace

void Daemon::ObjectsChanged() {
  {
    std::lock_guard lock(wake_mu_);
    wake_ = true;
  }
  wake_cv_.notify_all();
}

void Daemon::Loop() {
  while (true) {
    {
      std::unique_lock lock(wake_mu_);
      wake_cv_.wait_for(lock, kTick, [this] { return wake_ || stopping_; });
      if (stopping_) return;
      wake_ = false;
    }
    DropLeasesOfExitedHolders();
    bool any_work = false;
    for (int round = 0; round < kMaxRoundsPerWake; ++round) {
      bool worked = false, failed = false;
      Status s = ReconcileOnce(&worked, &failed);
      any_work = any_work || worked;
      if (!s.ok()) {
        log::Error("reconcile: {}", s.message());
        break;
      }
      if (!worked || failed) break;
    }
    if (any_work) volumes_->RemoveStrayDirectories();
    passes_++;
    last_pass_ns_ = Clock::now().time_since_epoch().count();
  }
}

// A pool promises no more than it can hold: what its mounted volumes already use plus what its
// filesystem has free, or its configured capacity if smaller. Data of volumes not mounted is
// not counted, which errs towards promising less.
std::vector<controller::Pool> Daemon::Pools() const {
  std::vector<yaml::PoolConfig> configured;
  {
    std::lock_guard lock(config_mu_);
    configured = config_.pools;
  }
  std::map<std::filesystem::path, int64_t> used_in;
  for (const mount::MountedVolume& m : volumes_->List()) {
    used_in[std::filesystem::path(m.source).lexically_normal().parent_path()] +=
        static_cast<int64_t>(m.usage.used_bytes);
  }
  std::vector<controller::Pool> pools;
  for (const yaml::PoolConfig& p : configured) {
    controller::Pool pool{p.name, p.path, p.capacity_bytes.value_or(0)};
    if (auto available = provisioner::FilesystemAvailable(p.path); available.ok()) {
      std::filesystem::path dir = std::filesystem::path(p.path).lexically_normal();
      if (!dir.has_filename()) dir = dir.parent_path();
      int64_t room = *available + used_in[dir];
      pool.capacity_bytes = p.capacity_bytes ? std::min(*p.capacity_bytes, room) : room;
    }
    pools.push_back(std::move(pool));
  }
  return pools;
}

std::set<std::string> Daemon::ClaimsInUse(const store::Snapshot& snapshot) {
  std::set<std::string> in_use;
  {
    std::lock_guard lock(leases_mu_);
    for (const auto& [id, held] : leases_) in_use.insert(held.lease.claim);
  }
  // The /proc scan costs a walk over every process: only claims on their way out need it.
  std::map<dev_t, std::string> primary;
  std::map<dev_t, std::string> claim_of;
  std::optional<std::vector<mount::MountedVolume>> mounted;  // one LIST of the servers a pass
  for (const model::PersistentVolumeClaim& claim : snapshot.claims) {
    if (!claim.metadata.deletion_timestamp) continue;
    std::string key = controller::ClaimKey(claim);
    if (!mounted) mounted = volumes_->List();
    for (const mount::MountedVolume& m : *mounted) {
      if (m.claim != key || m.device == 0) continue;
      primary[m.device] = m.mount_path;
      claim_of[m.device] = key;
    }
  }
  if (primary.empty()) {
    in_use_reason_.clear();
    return in_use;
  }
  std::map<std::string, std::string> reasons;
  for (const auto& [device, users] : scanner_.Scan(primary, volumes_->ServerPids())) {
    if (!users.any()) continue;
    in_use.insert(claim_of[device]);
    reasons[claim_of[device]] = users.Describe();
  }
  for (const auto& [claim, why] : reasons) {
    auto it = in_use_reason_.find(claim);
    if (it == in_use_reason_.end() || it->second != why) {
      log::Info("claim {} is being deleted but is in use ({}): waiting", claim, why);
    }
  }
  in_use_reason_ = std::move(reasons);
  return in_use;
}

Status Daemon::ReconcileOnce(bool* worked, bool* failed) {
  *worked = false;
  *failed = false;
  auto stored = store_->ReadSnapshot();
  if (!stored.ok()) return stored.status();
  auto events = store_->ListAllEvents();
  if (!events.ok()) return events.status();

  // A mount that went away behind our back is dropped, so the plan mounts it again.
  for (const mount::MountedVolume& m : volumes_->List()) {
    if (!m.serving) {
      log::Warn("{} was unmounted from outside claimfsd; mounting it again", m.mount_path);
      (void)volumes_->Unmount(m.volume);
    }
  }

  controller::Snapshot snapshot;
  snapshot.classes = stored->storage_classes;
  snapshot.volumes = stored->volumes;
  snapshot.claims = stored->claims;
  snapshot.events = *events;
  snapshot.pools = Pools();
  {
    std::lock_guard lock(config_mu_);
    snapshot.max_volumes = config_.max_volumes;
    snapshot.allowed_host_path_prefixes = config_.allowed_host_path_prefixes;
  }
  snapshot.overlaps = Overlaps(stored->volumes);
  snapshot.created_directories = CreatedDirectories(stored->volumes);
  snapshot.in_use = ClaimsInUse(*stored);
  {
    std::lock_guard lock(leases_mu_);
    snapshot.consumers = consumers_;
  }
  snapshot.mounted = volumes_->MountedVolumes();

  controller::Inputs inputs{Now(), NewUid};
  controller::Plan plan = controller::Reconcile(snapshot, inputs);
  if (plan.empty()) return Status::Ok();
  *worked = true;

  std::vector<std::optional<Status>> outcomes(plan.actions.size());
  auto now = Clock::now();
  for (size_t i = 0; i < plan.actions.size(); ++i) {
    const Action& a = plan.actions[i];
    if (a.guard && !(outcomes[*a.guard] && outcomes[*a.guard]->ok())) continue;
    std::string key = ActionKey(a);
    auto backoff = backoff_.find(key);
    if (backoff != backoff_.end() && now < backoff->second.next_try) continue;
    Status s = Perform(a, stored->volumes, stored->claims);
    if (s.ok()) {
      backoff_.erase(key);
    } else {
      *failed = true;
      failed_actions_++;
      Backoff& b = backoff_[key];
      b.failures++;
      auto delay = std::min<std::chrono::seconds>(kMaxBackoff, std::chrono::seconds(1 << std::min(b.failures - 1, 6)));
      b.next_try = now + delay;
      log::Warn("{} {} failed: {}", controller::ToString(a.type), a.volume, s.message());
    }
    outcomes[i] = std::move(s);
  }

  std::vector<controller::Write> writes =
      controller::WritesToCommit(snapshot, plan, outcomes, inputs);
  store::WriteBatch batch = ToBatch(writes, *stored, snapshot.events);
  if (batch.empty()) return Status::Ok();
  Status s = store_->Apply(batch);
  if (!s.ok()) {
    // The commit is all or nothing, but the actions happened. A volume directory provisioned in
    // this round is named only by its new PV: dropping that write would leave the directory to
    // no one (a claim deleted right after it was created made the claim's write fail). The PV
    // is committed alone; the next round binds it, or releases and reclaims it.
    std::vector<controller::Write> records = controller::ProvisionedVolumes(plan, outcomes);
    if (!records.empty()) {
      Status r = store_->Apply(ToBatch(records, *stored, snapshot.events));
      for (const controller::Write& w : records) {
        const auto& pv = std::get<model::PersistentVolume>(w.object);
        if (r.ok()) {
          log::Info(
              "recorded provisioned volume {} on its own ({}): the next round binds or "
              "reclaims it",
              pv.metadata.name, s.message());
        } else {
          log::Error(
              "cannot record provisioned volume {}: {}; its directory {} is named by no "
              "PersistentVolume",
              pv.metadata.name, r.message(),
              pv.spec.host_path ? pv.spec.host_path->path : std::string("?"));
        }
      }
    }
  }
  if (s.code() == StatusCode::kConflict || s.code() == StatusCode::kNotFound) {
    // A client changed an object since the snapshot: the next round sees its change.
    log::Debug("reconcile: {}; retrying with fresh state", s.message());
    return Status::Ok();
  }
  return s;
}

}  // namespace claimfs::claimfsd
