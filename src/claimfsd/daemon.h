// Daemon: claimfsd's engine. It reconciles the stored objects with the machine (pool
// directories, mounts), serves the API, and keeps leases and in-use facts for the controller.
// Its code, by concern: daemon.cc (start-up and recovery, stop, reload, health), control_loop.cc
// (the reconcile loop and a plan's inputs), actions.cc (what each action does), leases.cc,
// metrics.cc (stats, users, /metrics) and volume_paths.cc (where volume directories may lie and
// which claimfsd created).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/api/api_server.h"
#include "claimfs/api/volume_plugin.h"
#include "claimfs/common/status.h"
#include "claimfs/controller/controller.h"
#include "claimfs/mount/mount_root.h"
#include "claimfs/mount/usage_scanner.h"
#include "claimfs/mount/volume_set.h"
#include "claimfs/store/state_store.h"
#include "claimfs/yaml/daemon_config.h"

namespace claimfs::claimfsd {

class Daemon : public api::DaemonHooks {
 public:
  // Recovers and starts: opens the store, creates pools, detaches mounts a crash left behind,
  // creates the default StorageClass on a first start, reconciles until every Bound claim is
  // mounted (or its mount failed with an event), then serves the API. Nothing is left running
  // on failure.
  static Result<std::unique_ptr<Daemon>> Start(const yaml::DaemonConfig& config);
  ~Daemon() override;

  // Stops serving the API and the control loop, then unmounts every volume. Idempotent.
  void Stop();
  // Applies what can change while running (log level, maxVolumes, allowed hostPath prefixes,
  // pool capacities); says which other changes need a restart.
  void Reload(const yaml::DaemonConfig& config);
  // The control loop has finished a pass recently: what the watchdog pings on.
  bool Alive() const;
  // A one-line summary for systemd's STATUS=.
  std::string StatusLine() const;

  // api::DaemonHooks
  void ObjectsChanged() override;
  Result<api::Lease> AcquireLease(const std::string& claim_key, const std::string& holder,
                                  int pid) override;
  Status ReleaseLease(const std::string& claim_key, const std::string& lease_id) override;
  std::vector<api::Lease> ListLeases(const std::string& claim_key) override;
  std::vector<api::VolumeStats> Stats() override;
  std::vector<api::VolumeUser> Users(const std::string& claim_key) override;
  std::string DaemonMetrics() override;
  Status Health() override;
  Status CheckVolumeSource(const std::string& path) override;
  Status CheckVolumeOverlap(const std::string& name, const std::string& path) override;

 private:
  struct HeldLease {
    api::Lease lease;
    unsigned long long start_time = 0;  // the holder's start time (/proc/<pid>/stat), vs pid reuse
  };
  struct Backoff {
    int failures = 0;
    std::chrono::steady_clock::time_point next_try;
  };

  explicit Daemon(yaml::DaemonConfig config);
  Status Open();
  Status CreateDefaultClassOnFirstStart();
  void Loop();
  // One reconcile: snapshot, plan, act, commit. `worked` tells whether the plan had anything.
  Status ReconcileOnce(bool* worked, bool* failed);
  std::set<std::string> ClaimsInUse(const store::Snapshot& snapshot);
  // Performs one action of a plan made from these stored volumes and claims.
  Status Perform(const controller::Action& action,
                 const std::vector<model::PersistentVolume>& volumes,
                 const std::vector<model::PersistentVolumeClaim>& claims);
  // Logs each pvc-* directory of a pool that no stored PV names. It is never deleted: deleting a
  // Retain PV leaves its data on purpose, and nothing tells such a directory from one a lost
  // commit left behind; the admin decides.
  void WarnAboutUnnamedVolumeDirectories();
  std::vector<controller::Pool> Pools() const;
  // Where a volume's directory may lie: the pools and the allowed hostPath prefixes.
  std::vector<std::string> VolumeRoots() const;
  // The directories claimfsd keeps for itself (pools, state directory, mount root), each with
  // how a message names it.
  std::vector<std::pair<std::string, std::string>> ManagedDirectories() const;
  // PV name -> what else its path equals, contains or lies inside: another PV, or a managed
  // directory (a pool only when the path is the pool or contains it).
  std::map<std::string, std::string> Overlaps(
      const std::vector<model::PersistentVolume>& volumes) const;
  // The PVs whose directory claimfsd created and that is still that directory (same device and
  // inode), or whose path does not exist.
  std::set<std::string> CreatedDirectories(const std::vector<model::PersistentVolume>& volumes);
  // Records that claimfsd created `path` for `volume`.
  Status RecordCreatedDirectory(const std::string& volume, const std::string& path);
  // Ok when claimfsd created `path` for `volume` (or it is gone); kFailedPrecondition otherwise.
  // Checked again right before a reclaim removes data.
  Status CheckCreatedDirectory(const std::string& volume, const std::string& path);
  void DropLeasesOfExitedHolders();
  // Leases outlive the process in lease_path_: loaded at start (those of exited holders
  // dropped), saved after every change. SaveLeasesLocked needs leases_mu_ held.
  void RestoreLeases();
  // At start, before any mount: detaches the claimfs mounts an earlier claimfsd left under the
  // mount root and removes the directories of claims that are no longer Bound.
  Status ReconcileMountRoot();
  // One claim event for a volume whose serving process died (server_events.cc); runs on the
  // volume set's supervision thread.
  void RecordServerLost(const mount::ServerLoss& loss);
  void SaveLeasesLocked();

  mutable std::mutex config_mu_;
  yaml::DaemonConfig config_;  // guarded by config_mu_

  std::unique_ptr<store::StateStore> store_;
  // The read-only tmpfs, its view and its lock (a second claimfsd on the same root refuses to
  // start); outlives volumes_, which makes its directories through it.
  std::unique_ptr<mount::MountRoot> mount_root_;
  std::unique_ptr<mount::VolumeSet> volumes_;
  std::unique_ptr<api::ApiServer> api_;
  std::unique_ptr<api::VolumePluginServer> plugin_;  // Docker/Podman volume plugin
  mount::UsageScanner scanner_;

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;      // guarded by wake_mu_
  bool stopping_ = false;  // guarded by wake_mu_
  std::thread loop_;
  std::atomic<int64_t> last_pass_ns_{0};  // steady clock of the last finished pass

  std::mutex leases_mu_;  // before nothing else
  std::map<std::string, HeldLease> leases_;  // by lease id; guarded by leases_mu_
  std::string lease_path_;                   // {stateDir}/leases.json; set before any lease
  std::set<std::string> consumers_;          // claims a client waits to use; guarded by leases_mu_

  std::map<std::string, Backoff> backoff_;   // failing actions; only the loop thread uses it
  std::map<std::string, std::string> in_use_reason_;  // claim → why it is in use (for logs)
  std::atomic<uint64_t> passes_{0};
  std::atomic<uint64_t> failed_actions_{0};
};

}  // namespace claimfs::claimfsd
