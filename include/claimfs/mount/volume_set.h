// VolumeSet: the volumes claimfsd serves, each mounted at {mountRoot}/{namespace}/{claim} and
// served by one of main's serving processes (`claimfsd: serve N volumes`, at most
// kMaxVolumesPerServer each), which keep serving when main dies (docs/dataplane.md, 3 and 8).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/fs/server_pool.h"
#include "claimfs/fs/volume.h"
#include "claimfs/mount/mount_root.h"
#include "claimfs/mount/mount_table.h"

namespace claimfs::handoff {
class HolderClient;
struct NamedFd;
}

namespace claimfs::mount {

struct MountRequest {
  std::string volume;  // PV name
  std::string claim;   // "namespace/name"
  std::string source;  // the volume's backing directory
  uint64_t capacity_bytes = 0;
  bool read_only = false;                  // the claim asks only for ReadOnlyMany
  std::vector<std::string> mount_options;  // the PV's mountOptions (Kubernetes' list)
};

struct MountedVolume {
  std::string volume;
  std::string claim;
  std::string source;
  std::string mount_path;
  dev_t device = 0;  // the FUSE mount's device number
  bool read_only = false;
  bool serving = false;  // false once unmounted behind the daemon's back
  fs::VolumeUsage usage;
};

// The mount root and namespace directories: owners reach their mounts by path (a volume's root
// decides who gets in), nobody lists them.
inline constexpr mode_t kMountRootMode = 0711;
// A namespace directory only root enters (the Docker volume plugin's, as /var/lib/docker/volumes).
inline constexpr mode_t kPrivateNamespaceMode = 0700;

// What became of a volume whose serving process died.
struct ServerLoss {
  MountedVolume volume;
  Status remounted;      // ok: served again
  bool adopted = false;  // served again on the same connection: its open files carried over
};

// The fewest FUSE threads a serving process gets, however many servers share workerThreads.
inline constexpr unsigned kMinThreadsPerServer = 4;

struct VolumeSetOptions {
  std::set<std::string> private_namespaces;  // their directories are kPrivateNamespaceMode
  int quota_errno = ENOSPC;
  // FUSE threads of all serving processes together: a new server gets its share (`threads` over
  // the servers maxVolumes needs, all of it with no limit) of what the live servers leave, and
  // at least kMinThreadsPerServer.
  unsigned threads = 16;
  size_t fd_cache_budget = 0;  // per volume; 0: the fs library's default
  int max_volumes = 0;         // the daemon's limit (0: none): how many servers share `threads`
  // How long a serving process emptied of its last volume is kept for the next one before it
  // ends (0: at once). Unmounting everything (UnmountAll, the destructor) still ends them all.
  std::chrono::milliseconds server_idle = std::chrono::seconds(60);

  // The serving processes: main's own binary (an fd opened at start, executed with execveat so
  // that a file replaced on disk does not change what a respawn runs), their run directory
  // (D/serve-<shard>.sock) and the log level they start with.
  int server_binary_fd = -1;
  std::string run_dir;
  std::string log_level = "info";
  std::string build_id;  // servers of another build hand their volumes over to this build's
  // Called (without the set's lock) once per volume whose server died, after a new server
  // adopted it or mounted it again (ok) or could not (the error): for an event.
  std::function<void(const ServerLoss& loss)> on_server_lost;
};

// Thread-safe: every call holds mu_. Mount and Unmount block while the kernel mounts/unmounts.
class VolumeSet {
 public:
  // Mounts go to <root>/<namespace>/<claim>; `root` makes their directories and must outlive
  // the set. Servers already running in the run directory (an earlier main's: kill -9 or a
  // restart) are taken over with the volumes they serve; the caller unmounts those it does not
  // want (Unmount).
  static Result<std::unique_ptr<VolumeSet>> Create(const VolumeSetOptions& options,
                                                   MountRoot* root);
  ~VolumeSet();  // unmounts everything and ends every server

  // Where a claim ("namespace/name") is mounted.
  std::string MountPath(const std::string& claim) const;

  // Mounts the volume for its claim and serves it. Fails with kInvalid naming a mount option
  // that is unknown or that claimfsd sets itself (capacity, threads, ...); nothing is mounted
  // then. Mounting a volume that is already mounted for the same claim is a no-op.
  Status Mount(const MountRequest& request);
  // Unmounts (lazily: the kernel detaches the mount at once) and removes the mountpoint
  // directory. Unknown volumes are fine.
  Status Unmount(const std::string& volume);
  void UnmountAll();
  // Removes every directory below the mount root that no mounted volume uses (a crash between
  // an unmount and its rmdir, a deleted claim that was never mounted again after a restart).
  void RemoveStrayDirectories();
  // Raises (or lowers, when usage allows) the live quota.
  Status SetCapacity(const std::string& volume, uint64_t bytes);

  std::set<std::string> MountedVolumes() const;
  std::vector<MountedVolume> List() const;
  std::optional<MountedVolume> Find(const std::string& volume) const;
  std::vector<fs::OperationStats> OperationStats() const;
  unsigned threads() const;
  // The device numbers of the mounts whose connection lives: served by a live server, or kept
  // by the holder for a server to adopt (start-up reconciliation keeps them).
  std::set<dev_t> ServedDevices() const;
  // Drops what the holder keeps for volumes that were not mounted again since the start (their
  // claims went while claimfsd was down) and detaches their mounts. Call after the recovery
  // pass.
  void DropUnclaimedBundles();
  // Pids of the serving processes.
  std::set<pid_t> ServerPids() const;

 private:
  struct Entry {
    MountRequest request;
    std::string mount_path;
    dev_t device = 0;
    int shard = -1;
  };
  struct Server {
    int shard = -1;
    pid_t pid = -1;
    int pidfd = -1;
    int fd = -1;  // the connection; one request at a time, under mu_
    unsigned threads = 0;
    size_t volumes = 0;
    bool child = false;  // spawned by this main (reaped by it)
    bool other_build = false;  // runs another binary: its volumes move off it at start
    // When it lost its last volume (while volumes == 0): it ends server_idle later.
    std::chrono::steady_clock::time_point idle_since{};
  };
  VolumeSet(VolumeSetOptions options, MountRoot* root);
  Status Adopt();
  Result<int> PlaceLocked();
  Result<int> SpawnLocked();
  Result<Server> ConnectServer(int shard);
  Status MountLocked(const MountRequest& request);
  void UnmountLocked(const std::string& name);
  // A server that died or stopped answering: its mounts are detached and mounted again on
  // another server. Returns the volumes it served, with the result of each.
  std::vector<ServerLoss> ReplaceServerLocked(int shard);
  void ForgetServerLocked(int shard);
  std::vector<MountedVolume> ListLocked(const std::string& only) const;
  void Supervise();
  void WakeSupervisor() const;
  // Removes a claim's mountpoint directory, and its namespace directory when that is empty.
  void RemoveMountpoint(const std::string& claim);
  // FUSE threads for a server about to start (VolumeSetOptions::threads).
  unsigned ThreadsForNewServerLocked() const;
  // Ends the servers empty for server_idle; returns how long until the next one is due (-1 ms:
  // none is empty).
  std::chrono::milliseconds EndIdleServersLocked();

  // ---- the holder and the fd store (volume_set_handoff.cc) ----
  // Starts or reaches the holder, gives it `stored` (what systemd's fd store handed back), and
  // notes the volumes it keeps that no live server serves (held_).
  void ConnectHolderLocked(std::vector<handoff::NamedFd>* stored);
  // Places a volume the holder keeps on a server that adopts its connection (no caller sees an
  // error). Fails when there is no bundle or it cannot be adopted; the caller mounts afresh.
  Status AdoptLocked(const MountRequest& request);
  // Moves the volumes of servers of another build to servers of this one, one at a time
  // (RELEASE, then ADOPT; volume_set_upgrade.cc), and ends the emptied servers. A volume that
  // cannot move stays where it was.
  void MoveOffOtherBuildsLocked();
  // A mounted volume's bundle goes to systemd's fd store too, when there is one.
  void StoreBundleLocked(const std::string& volume);
  // The volume's bundle leaves the holder and the fd store.
  void ForgetBundleLocked(const std::string& volume);
  // The serve protocol's MOUNT or ADOPT (`op`) of `request` at its mount path.
  nlohmann::json MountMessageLocked(const MountRequest& request, const char* op) const;
  // Records a volume a server now serves.
  void AddEntryLocked(const MountRequest& request, int shard, dev_t device);
  // Mounts of held volumes (fsname "claimfs:<pv>") below the mount root, by PV name.
  std::map<std::string, MountInfo> HeldMountsLocked() const;

  const VolumeSetOptions options_;
  MountRoot* const root_;
  // Lock order: mu_ only (callbacks run without it).
  mutable std::mutex mu_;
  std::map<std::string, Entry> volumes_;   // by PV name; guarded by mu_
  mutable std::map<int, Server> servers_;  // by shard; guarded by mu_
  int wake_fd_ = -1;                       // eventfd: the supervisor re-reads servers_
  bool stopping_ = false;                  // guarded by mu_
  // Null when no holder could be reached: volumes then die with their server, as before.
  std::unique_ptr<handoff::HolderClient> holder_;  // guarded by mu_
  std::set<std::string> held_;  // guarded by mu_: kept by the holder, served by nobody yet
  std::thread supervisor_;
};

}  // namespace claimfs::mount
