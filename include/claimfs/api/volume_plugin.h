// claimfsd's Docker/Podman volume plugin: the legacy volume-plugin protocol (Plugin.Activate,
// VolumeDriver.*) on its own Unix socket, answering with the claims in the StateStore.
//
// Volume names. A Docker volume `NAME` (no dot) is the claim NAME in the plugin's namespace
// (VolumePluginOptions::namespace_, "docker" by default); `NS.NAME` is the claim NAME in namespace
// NS (namespaces are DNS-1123 labels, so they hold no dot and the split at the first dot is
// unambiguous). List names plugin-namespace claims without a dot by their bare name and every
// other claim as NS.NAME, so `docker volume ls` shows claims made with claimctl (e.g.
// `default.data`) and `docker run -v default.data:/data` uses them.
//
// Create options (`docker volume create -d claimfs --opt KEY=VALUE`):
//   size           required; a Kubernetes quantity ("1Gi", "500Mi"): resources.requests.storage
//   class          storageClassName; absent: the default class
//   accessMode     ReadWriteOnce (default) | ReadWriteMany | ReadOnlyMany | ReadWriteOncePod
//   reclaimPolicy  Delete | Retain: the provisioned volume's policy instead of the class's
//                  (annotation claimfs.io/reclaim-policy)
//   uid, gid       owner of the volume's root directory (claimfs.io/owner-uid, owner-gid)
//   mode           octal permission bits of the volume's root (claimfs.io/mode); default 0755,
//                  root:root, as Docker's local driver makes them
//
// Errors are answered with HTTP 500 and {"Err": "..."}, as Docker's plugin helpers do: Docker
// reads Err from any status, Podman only from a non-200 one.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "claimfs/api/api_server.h"
#include "claimfs/common/status.h"
#include "claimfs/store/state_store.h"

namespace claimfs::api {

struct VolumePluginOptions {
  // Docker finds plugins by socket in /run/docker/plugins (or by a spec file in
  // /etc/docker/plugins naming the socket); the file's base name is the driver's name. The
  // parent directory is created when missing.
  std::string socket_path = "/run/docker/plugins/claimfs.sock";
  mode_t socket_mode = 0660;
  std::optional<gid_t> socket_group;  // nullopt: the daemon's own group
  // Where volumes created through the plugin live, and which claims go by their bare name.
  std::string namespace_ = "docker";
  // How long VolumeDriver.Mount waits for a claim to be Bound and mounted. Podman gives a plugin
  // 5 s per request by default, so stay below that.
  std::chrono::milliseconds mount_wait{4000};
  unsigned threads = 4;
};

class VolumePluginServer {
 public:
  // Binds the socket (a stale socket file is replaced; a live server there fails with
  // kUnavailable, anything else at the path with kAlreadyExists) and starts serving. Fails with
  // kInvalid when the namespace is not a DNS-1123 label. `store` and `hooks` outlive the server.
  static Result<std::unique_ptr<VolumePluginServer>> Start(const VolumePluginOptions& options,
                                                           store::StateStore* store,
                                                           DaemonHooks* hooks);
  ~VolumePluginServer();  // Stop()
  VolumePluginServer(const VolumePluginServer&) = delete;
  VolumePluginServer& operator=(const VolumePluginServer&) = delete;

  // Stops accepting, finishes in-flight requests (a Mount may wait up to mount_wait), removes the
  // socket file. Leases taken for mounts stay with the daemon. Idempotent; thread-safe.
  void Stop();

 private:
  class Impl;
  explicit VolumePluginServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace claimfs::api
