// Daemon: leases on claims (claimctl use, container engines), kept across restarts.
#include "daemon.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "claimfs/common/log.h"
#include "claimfs/model/objects.h"
#include "daemon_internal.h"
#include "lease_file.h"

namespace claimfs::claimfsd {
namespace {

// Field 22 of /proc/<pid>/stat, the process's start time: with the pid it names one process
// even after the pid is reused. 0 when the process is gone.
unsigned long long ProcessStartTime(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return std::stoull(field);
  }
  return 0;
}

std::pair<std::string, std::string> SplitClaimKey(const std::string& key) {
  size_t slash = key.find('/');
  if (slash == std::string::npos) return {"default", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace

void Daemon::DropLeasesOfExitedHolders() {
  std::lock_guard lock(leases_mu_);
  bool dropped = false;
  for (auto it = leases_.begin(); it != leases_.end();) {
    const HeldLease& h = it->second;
    if (h.lease.pid > 0 && ProcessStartTime(h.lease.pid) != h.start_time) {
      log::Info("lease {} on {} released: its holder (pid {}) exited", h.lease.id, h.lease.claim,
                h.lease.pid);
      it = leases_.erase(it);
      dropped = true;
      continue;
    }
    ++it;
  }
  if (dropped) SaveLeasesLocked();
}

void Daemon::RestoreLeases() {
  auto stored = LoadLeases(lease_path_);
  if (!stored.ok()) {
    // Losing in-use protection is safer than refusing to start: claims stay, only leases go.
    log::Error("leases not restored: {}", stored.status().message());
    return;
  }
  std::lock_guard lock(leases_mu_);
  for (const StoredLease& s : *stored) {
    if (s.lease.pid > 0 && ProcessStartTime(s.lease.pid) != s.start_time) continue;
    log::Info("lease {} on {} held by {} restored", s.lease.id, s.lease.claim, s.lease.holder);
    leases_[s.lease.id] = HeldLease{s.lease, s.start_time};
  }
  SaveLeasesLocked();
}

void Daemon::SaveLeasesLocked() {
  std::vector<StoredLease> leases;
  for (const auto& [id, held] : leases_) leases.push_back({held.lease, held.start_time});
  Status s = SaveLeases(lease_path_, leases);
  if (!s.ok()) log::Warn("leases not saved (a restart would forget them): {}", s.message());
}

Result<api::Lease> Daemon::AcquireLease(const std::string& claim_key, const std::string& holder,
                                        int pid) {
  auto [ns, name] = SplitClaimKey(claim_key);
  auto claim = store_->GetPersistentVolumeClaim(ns, name);
  if (!claim.ok()) return claim.status();
  std::string key = ns + "/" + name;
  if (claim->metadata.deletion_timestamp) {
    return Status::Forbidden("persistentvolumeclaim \"" + name + "\" is being deleted");
  }
  if (claim->status.phase != model::ClaimPhase::kBound ||
      !volumes_->Find(claim->spec.volume_name)) {
    {
      std::lock_guard lock(leases_mu_);
      consumers_.insert(key);  // WaitForFirstConsumer claims bind once someone waits for them
    }
    ObjectsChanged();
    return Status::Unavailable("persistentvolumeclaim \"" + name + "\" is not bound and mounted yet");
  }
  unsigned long long start_time = 0;
  if (pid > 0) {
    start_time = ProcessStartTime(pid);
    if (start_time == 0) return Status::Invalid("process " + std::to_string(pid) + " does not exist");
  }
  bool once_pod = std::count(claim->spec.access_modes.begin(), claim->spec.access_modes.end(),
                             model::AccessMode::kReadWriteOncePod) > 0;
  std::lock_guard lock(leases_mu_);
  if (once_pod) {
    for (const auto& [id, held] : leases_) {
      if (held.lease.claim == key) {
        return Status::Conflict("persistentvolumeclaim \"" + name +
                                "\" is ReadWriteOncePod and already used by " + held.lease.holder);
      }
    }
  }
  HeldLease held;
  held.lease.id = RandomHex(8);
  held.lease.claim = key;
  held.lease.holder = holder;
  held.lease.pid = pid;
  held.lease.acquired = Now();
  held.start_time = start_time;
  leases_[held.lease.id] = held;
  SaveLeasesLocked();
  consumers_.erase(key);
  log::Info("lease {} on {} taken by {}", held.lease.id, key, holder);
  return held.lease;
}

Status Daemon::ReleaseLease(const std::string& claim_key, const std::string& lease_id) {
  {
    std::lock_guard lock(leases_mu_);
    auto it = leases_.find(lease_id);
    if (it == leases_.end() || it->second.lease.claim != claim_key) {
      return Status::NotFound("lease \"" + lease_id + "\" not found on " + claim_key);
    }
    leases_.erase(it);
    SaveLeasesLocked();
  }
  log::Info("lease {} on {} released", lease_id, claim_key);
  ObjectsChanged();  // a Terminating claim may be free now
  return Status::Ok();
}

std::vector<api::Lease> Daemon::ListLeases(const std::string& claim_key) {
  std::lock_guard lock(leases_mu_);
  std::vector<api::Lease> out;
  for (const auto& [id, held] : leases_) {
    if (claim_key.empty() || held.lease.claim == claim_key) out.push_back(held.lease);
  }
  return out;
}

}  // namespace claimfs::claimfsd
