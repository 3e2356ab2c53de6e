// claimfsd's API server: Kubernetes-shaped HTTP/1.1 + JSON on a Unix socket (objects, events,
// leases, volume stats, /healthz, /metrics), answering from the StateStore and the daemon.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/store/state_store.h"

namespace claimfs::api {

// A claim's user: while a claim has a lease it is in use (it cannot finish deleting), and a
// ReadWriteOncePod claim takes one at a time.
struct Lease {           // JSON: {"id","claim","holder","pid","acquired"}
  std::string id;        // opaque, unique
  std::string claim;     // "namespace/name"
  std::string holder;    // free text, e.g. "claimctl use" or a Docker container id
  int pid = 0;           // 0: held until released; else released when that process exits
  std::string acquired;  // RFC 3339

  bool operator==(const Lease&) const = default;
};

// Something that keeps a mounted volume busy, as the daemon finds it in /proc. JSON camelCase:
// kind ("Process": a file, directory or mapping open; "MountNamespace": a mount of the volume
// in another namespace, a container's bind; "BindMount"), pid, command, container, path.
struct VolumeUser {
  std::string kind;
  int pid = 0;
  std::string command;
  std::string container;  // the Docker or Podman container id; "" when none
  std::string path;       // BindMount: where

  bool operator==(const VolumeUser&) const = default;
};

// One mounted volume's usage. JSON camelCase: volume, claim, mountPath, capacityBytes, usedBytes,
// availableBytes, usedInodes, inodeLimit (omitted when none), quotaRejections, readOnly.
struct VolumeStats {
  std::string volume, claim, mount_path;
  uint64_t capacity_bytes = 0, used_bytes = 0, available_bytes = 0, used_inodes = 0;
  std::optional<uint64_t> inode_limit;
  uint64_t quota_rejections = 0;
  bool read_only = false;
  // How the capacity is enforced: "kernel (btrfs qgroup 0/257, passthrough)",
  // "accounted (<why not the kernel>)", "unlimited"; empty when unknown.
  std::string mode;

  bool operator==(const VolumeStats&) const = default;
};

// The wire forms of Lease and VolumeStats, shared by server and client. The FromJson functions
// fail with kInvalid naming the field that is missing or typed wrongly.
nlohmann::json LeaseToJson(const Lease& lease);
Result<Lease> LeaseFromJson(const nlohmann::json& json);
nlohmann::json VolumeStatsToJson(const VolumeStats& stats);
Result<VolumeStats> VolumeStatsFromJson(const nlohmann::json& json);

// Implemented by the daemon. Called from server threads concurrently; implementations are
// thread-safe.
class DaemonHooks {
 public:
  virtual ~DaemonHooks() = default;
  // After any successful object write: reconcile soon.
  virtual void ObjectsChanged() = 0;
  // kNotFound, kConflict (ReadWriteOncePod already leased), kForbidden (claim not Bound /
  // terminating).
  virtual Result<Lease> AcquireLease(const std::string& claim_key, const std::string& holder,
                                     int pid) = 0;
  virtual Status ReleaseLease(const std::string& claim_key, const std::string& lease_id) = 0;
  virtual std::vector<Lease> ListLeases(const std::string& claim_key) = 0;  // "" = all
  virtual std::vector<VolumeStats> Stats() = 0;
  // Who keeps the claim's mounted volume busy; empty when it is not mounted or nobody does.
  virtual std::vector<VolumeUser> Users(const std::string& claim_key) {
    (void)claim_key;
    return {};
  }
  // Extra Prometheus text (FUSE op counters), appended verbatim to /metrics.
  virtual std::string DaemonMetrics() = 0;
  virtual Status Health() = 0;
  // Whether a PersistentVolume may expose the directory `path` (its hostPath or local path):
  // Ok, or kForbidden/kInvalid with a message naming the path and what is allowed.
  virtual Status CheckVolumeSource(const std::string& path) = 0;
  // Whether a new PersistentVolume `name` may take the directory `path`: kForbidden
  // ("overlaps PersistentVolume \"x\" (/path)") when it equals, contains or lies inside another
  // stored PersistentVolume's path. The API holds its admission lock around this check and the
  // volume's commit.
  virtual Status CheckVolumeOverlap(const std::string& name, const std::string& path) {
    (void)name;
    (void)path;
    return Status::Ok();
  }
};

struct ApiServerOptions {
  std::string socket_path;
  mode_t socket_mode = 0660;
  std::optional<gid_t> socket_group;
  size_t max_request_bytes = 4 << 20;
  int request_timeout_seconds = 10;
  unsigned threads = 4;
  unsigned max_connections = 128;

  // The Kubernetes-compatible HTTPS listener for kubectl and other Kubernetes clients: off when
  // kube_host is empty. kube_host must be a loopback address (127.0.0.0/8 or ::1); port 0 picks
  // a free one. Its CA, certificate and token secret live in state_dir (see
  // docs/api.md#kubectl). Tokens are given, through the Unix socket only, to those who may use
  // the socket (root and the members of socket_group, or of the daemon's group when unset), and
  // are accepted only while their user still may.
  std::string kube_host;
  uint16_t kube_port = 6443;
  std::string state_dir;
};

class ApiServer {
 public:
  // Binds the socket (replacing a stale socket file only if nothing listens on it; kUnavailable
  // if a live server does), chmod/chown, starts serving. `store` and `hooks` outlive the server.
  static Result<std::unique_ptr<ApiServer>> Start(const ApiServerOptions& options,
                                                  store::StateStore* store, DaemonHooks* hooks);
  ~ApiServer();  // Stop()
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Stops accepting, finishes in-flight requests, removes the socket file; idempotent.
  void Stop();

  // The port the HTTPS listener serves (0 when it is off).
  uint16_t kube_port() const;

 private:
  class Impl;
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace claimfs::api
