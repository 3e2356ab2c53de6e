// The serving role (`claimfsd serve --run-dir D --shard K`): a process that mounts and serves
// the volumes main places on it, at most kMaxVolumesPerServer, with one fs::ServerPool, and keeps
// serving them when main dies (docs/dataplane.md, 3 and 8).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace claimfs::mount {

// libfuse 3.14 takes one pthread key per session and glibc has 1,024 a process: 400 leaves room
// for everything else in the process.
inline constexpr size_t kMaxVolumesPerServer = 400;

struct VolumeServerOptions {
  std::string run_dir;  // D: the server listens on D/serve-<shard>.sock
  int shard = 0;
  unsigned threads = 4;  // FUSE threads of this server's pool
  std::string build_id;  // HELLO's answer: which claimfsd this is
  // Called with the number of volumes served whenever it changes (the process title).
  std::function<void(size_t)> on_volume_count;
};

// Runs the server until main sends SHUTDOWN (after which every volume it served is unmounted)
// or it cannot listen. Ignores SIGINT, SIGTERM and SIGHUP: main drives it. Returns the process's
// exit code.
int RunVolumeServer(const VolumeServerOptions& options);

}  // namespace claimfs::mount
