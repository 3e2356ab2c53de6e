// claimfsd's configuration (/etc/claimfs/claimfsd.yaml): its values and defaults, the parser that
// reports every mistake at file:line:column, and the environment overrides.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/yaml/manifest.h"

namespace claimfs::yaml {

// A backing directory volumes are carved from.
struct PoolConfig {
  std::string name;                       // a DNS-1123 label; StorageClass parameters.pool
  std::string path;                       // absolute, lexically normalized
  std::optional<int64_t> capacity_bytes;  // at most what the pool hands out; the disk's room caps it

  friend bool operator==(const PoolConfig&, const PoolConfig&) = default;
};

// The Docker/Podman volume plugin socket (see include/claimfs/api/volume_plugin.h).
struct VolumePluginConfig {
  // Absent: serve the plugin when claimfsd runs as root (the daemon decides at start).
  std::optional<bool> enabled;
  // Docker finds plugin sockets in /run/docker/plugins; the file name is the driver's name.
  std::string socket_path = "/run/docker/plugins/claimfs.sock";
  // Volumes created through the plugin are claims in this namespace (a DNS-1123 label).
  std::string namespace_ = "docker";

  friend bool operator==(const VolumePluginConfig&, const VolumePluginConfig&) = default;
};

struct DaemonConfig {
  // Defaults to one pool, {"default", "/var/lib/claimfs/pools/default"} (DefaultDaemonConfig()).
  std::vector<PoolConfig> pools;
  std::string state_dir = "/var/lib/claimfs/state";
  std::string mount_root = "/run/claimfs/claims";
  std::string socket_path = "/run/claimfs/claimfsd.sock";
  mode_t socket_mode = 0660;
  std::string socket_group;  // "" = the daemon's own group; else a group name or numeric gid
  int max_volumes = 0;       // 0 = no limit
  std::vector<std::string> allowed_host_path_prefixes = {"/tmp"};
  int quota_errno = ENOSPC;        // ENOSPC or EDQUOT
  std::string log_level = "info";  // trace|debug|info|warn|error|off
  unsigned worker_threads = 16;    // FUSE worker threads shared by every volume
  int api_request_timeout_seconds = 10;
  int64_t api_max_request_bytes = 4 << 20;
  // The Kubernetes-compatible HTTPS listener (api.listen): "127.0.0.1:6443", "[::1]:6443"; ""
  // off. A loopback address only.
  std::string api_listen;
  // Whether a listener that cannot bind (its port taken) is only a warning: the quick start's
  // default, never an address the user asked for.
  bool api_listen_optional = false;
  VolumePluginConfig volume_plugin;

  friend bool operator==(const DaemonConfig&, const DaemonConfig&) = default;
};

// The configuration of a daemon started with no config file: DaemonConfig's defaults plus the
// pool "default" at /var/lib/claimfs/pools/default.
DaemonConfig DefaultDaemonConfig();

// `claimfsd --data-dir DIR`: the defaults with everything under one directory: pool "default" at
// DIR/pools/default, state DIR/state, mounts DIR/claims, socket DIR/claimfsd.sock, volume plugin
// socket DIR/docker-plugin.sock (Docker finds it through a spec file in /etc/docker/plugins
// holding "unix://DIR/docker-plugin.sock"; it does not look in DIR itself). DIR is made
// absolute against the working directory and normalized. Does not touch the disk; run
// ValidateDaemonConfig on the result (a deep DIR can make the socket path too long).
DaemonConfig QuickStartConfig(const std::string& data_dir);

// Splits api.listen: "127.0.0.1:6443" or "[::1]:6443" into host and port; kInvalid otherwise.
Status SplitListenAddress(std::string_view address, std::string* host, uint16_t* port);

struct ConfigResult {
  DaemonConfig config;  // the parsed values; a field whose value was in error keeps its default
  std::vector<Diagnostic> errors;    // "claimfsd.yaml:4:12: maxVolumes: Invalid value: ..."
  std::vector<Diagnostic> warnings;  // settings that work but are probably not what was meant

  bool ok() const { return errors.empty(); }
  // kInvalid with every error, one per line, or Ok.
  Status status() const;
};

// Parses claimfsd.yaml text; `file` names it in diagnostics. Keys (camelCase):
//   pools: [{name, path, capacity}], stateDir, mountRoot, socket: {path, mode, group},
//   maxVolumes, allowedHostPathPrefixes, quotaErrno, logLevel, workerThreads,
//   api: {requestTimeoutSeconds, maxRequestBytes, listen}, volumePlugin: {enabled, socket,
//   namespace}
// Absent or null keys keep their value in `defaults` (the quick start's, for --data-dir with
// --config); an empty file is `defaults`. Every error is
// collected, in file order: wrong types, unknown keys (errors, with the closest known key
// suggested), relative or overlapping paths, bad pool names and capacities, out-of-range numbers,
// unsupported enum values, a socket path longer than sun_path. Never throws.
ConfigResult ParseDaemonConfig(std::string_view text, std::string_view file,
                               const DaemonConfig& defaults = DefaultDaemonConfig());

// Reads `path` and parses it. Fails with kNotFound when the file does not exist and kIOError when
// it cannot be read, naming the file; parse errors are in the ConfigResult, not the Status.
Result<ConfigResult> LoadDaemonConfig(const std::string& path,
                                      const DaemonConfig& defaults = DefaultDaemonConfig());

// The checks ParseDaemonConfig makes on values (paths, ranges, names, overlaps), for a config
// built in code (QuickStartConfig, flags, ApplyEnvironment). kInvalid listing every problem as
// "field: message", one per line; Ok when there is none.
Status ValidateDaemonConfig(const DaemonConfig& config);

// Applies environment overrides, read with getenv, after parsing: CLAIMFS_MAX_VOLUMES (an integer
// >= 0; empty is the same as unset). A bad value fails with kInvalid naming the variable and
// leaves `config` unchanged. Not thread-safe against setenv in other threads.
Status ApplyEnvironment(DaemonConfig* config);

}  // namespace claimfs::yaml
