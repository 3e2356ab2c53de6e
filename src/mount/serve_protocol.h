// The main <-> server protocol (docs/dataplane.md, 3 and 6): one SOCK_SEQPACKET message per
// request and one per reply, each a JSON object. Only this file and serve_protocol.cc know the
// wire format; VolumeSet (main's side) and the server role speak it through these functions.
//
// Requests {"op": ...}:
//   HELLO                                    -> {"version", "build", "pid", "shard", "volumes"}
//   MOUNT {"request", "mountpoint", "options"} -> {"device"}
//   UNMOUNT {"volume"}                        -> {}
//   ADOPT (as MOUNT)                          -> {"device"} (the holder's bundle, no new mount)
//   RELEASE {"volume"}                        -> {} (served no more, still mounted; the holder
//                                                keeps its bundle for an ADOPT elsewhere)
//   SET_CAPACITY {"volume", "bytes"}          -> {}
//   LIST {"after"}                            -> {"volumes": [...], "more"} (kListPage a page)
//   STATS                                     -> {"threads", "ops": [...]}
//   SHUTDOWN                                  -> {} (the server unmounts what it serves and exits)
// Every reply carries {"code", "message"}: a Status (code 0: ok).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/fs/server_pool.h"
#include "claimfs/mount/volume_set.h"

namespace claimfs::mount::serve {

inline constexpr int kProtocolVersion = 1;
// Entries a LIST reply carries at most: a SOCK_SEQPACKET message must fit the socket buffer.
inline constexpr size_t kListPage = 64;

// D/serve-<shard>.sock
std::string SocketPath(const std::string& run_dir, int shard);
// The shard a socket file name names ("serve-3.sock" -> 3); -1 for any other name.
int ShardOfSocketName(const std::string& name);

// Binds and listens on `path` (mode 0600; a stale socket file there is replaced). The fd.
Result<int> Listen(const std::string& path);
// Connects to a server's socket and checks that the peer runs as our own uid. The peer's pid
// (SO_PEERCRED) in *peer_pid. kUnavailable when nobody answers.
Result<int> Connect(const std::string& path, pid_t* peer_pid);
// Accepts one connection on `listen_fd` and checks the peer's uid. -1 with a log when refused.
int Accept(int listen_fd);

Status Send(int fd, const nlohmann::json& message);
// The next message; kUnavailable at EOF (the peer died or closed), kInvalid for bad JSON or a
// known field of the wrong type ("op", "volume", "after", "only" not strings, "bytes" not an
// unsigned integer, ...), so that the readers' json::value() calls cannot throw.
Result<nlohmann::json> Receive(int fd);
// Send + Receive, and the reply's own Status: a reply whose code is not ok becomes that Status.
Result<nlohmann::json> Call(int fd, const nlohmann::json& request);

nlohmann::json Reply(const Status& status, nlohmann::json body = nlohmann::json::object());
Status StatusOf(const nlohmann::json& reply);

// What a server needs besides the request to mount a volume (VolumeSetOptions' share).
struct MountSettings {
  std::string mountpoint;
  int quota_errno = 0;
  size_t fd_cache_budget = 0;
};
nlohmann::json MountMessage(const MountRequest& request, const MountSettings& settings);
Status ParseMountMessage(const nlohmann::json& message, MountRequest* request,
                         MountSettings* settings);

// One volume in a LIST reply: MountedVolume plus the request that mounted it (so that a new
// main knows what each volume was mounted with).
struct ListedVolume {
  MountRequest request;
  MountedVolume mounted;
};
nlohmann::json ToJson(const ListedVolume& volume);
Result<ListedVolume> ListedVolumeFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const fs::OperationStats& op);
fs::OperationStats OperationStatsFromJson(const nlohmann::json& j);

}  // namespace claimfs::mount::serve
