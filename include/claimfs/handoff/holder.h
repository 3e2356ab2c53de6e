// The holder role's loop (`claimfsd hold --run-dir D`): keeps fds by name for its clients. One
// thread, no libfuse, never parses what it holds.
#pragma once

#include <chrono>
#include <string>

#include "claimfs/common/status.h"

namespace claimfs::handoff {

struct HolderOptions {
  std::string run_dir;
  std::string build_id;
  // Exit when nothing is held and no client has been connected for this long.
  std::chrono::milliseconds idle_exit{60'000};
  // Most clients connected at once; more are accepted and closed at once.
  size_t max_clients = 64;
};

// Takes <run_dir>/hold.lock (AlreadyExists if another holder has it), binds <run_dir>/hold.sock
// (0600, a stale one replaced), then serves until SHUTDOWN or the idle exit. Ok on either;
// an error when it cannot start. Process-wide effects (signals, session, title) are the
// caller's: see src/claimfsd/hold_main.cc.
Status RunHolder(const HolderOptions& options);

}  // namespace claimfs::handoff
