// A client of the holder (`claimfsd: hold`), the process that keeps every volume's bundle fds
// open apart from the processes that serve them. Not thread-safe: one connection, one request
// in flight; use one client per thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/handoff/unique_fd.h"

namespace claimfs::handoff {

// <run_dir>/hold.sock, <run_dir>/hold.lock (held by the live holder), <run_dir>/spawn.lock.
std::string HolderSocketPath(std::string_view run_dir);

// Creates `run_dir` (0700) if missing; Forbidden if it is not a directory of ours that only we
// may write to (whoever can write there can replace hold.sock), Invalid if it is not a
// directory (a symlink is not followed).
Status CheckRunDirectory(const std::string& run_dir);

// Opens (creating, 0600) a lock file of the run directory. Forbidden unless it is a regular
// file of ours with one link: another user's file would let them hold the lock forever. A
// symlink at `path` is not followed (ELOOP).
Result<UniqueFd> OpenLockFile(const std::string& path);

struct HolderHello {
  uint16_t version = 0;  // the holder's protocol version
  std::string build_id;  // the holder's build id
  pid_t pid = 0;         // from SO_PEERCRED
};

class HolderClient {
 public:
  // Connects to <run_dir>/hold.sock, checks that the holder runs as root or as our uid, and
  // says HELLO with `build_id`. Unavailable when nobody answers; Invalid/IOError otherwise.
  static Result<HolderClient> Connect(std::string_view run_dir, std::string_view build_id = "");

  HolderClient(HolderClient&&) = default;
  HolderClient& operator=(HolderClient&&) = default;

  const HolderHello& hello() const { return hello_; }
  int socket() const { return socket_.get(); }

  // Hands the holder its own copy of `fd` under `name` (checked here and by the holder:
  // see CheckFdMatchesName). `fd` stays the caller's. AlreadyExists if the name is held.
  Status Put(std::string_view name, int fd);
  // A dup of the fd held under `name`; the holder keeps its own. NotFound if not held.
  Result<UniqueFd> Take(std::string_view name);
  // Closes the holder's fd of `name`. NotFound if not held.
  Status Drop(std::string_view name);
  // Closes every fd of PV <pv> (`prefix` is "claimfs.1.<pv>."; names of PV <pv>.x that the
  // prefix starts too are left); returns how many.
  Result<size_t> DropPrefix(std::string_view prefix);
  // Every name held, in order (several requests when there are many).
  Result<std::vector<std::string>> List();
  // The holder closes what it holds and exits. Ok once it has said so.
  Status Shutdown();

 private:
  explicit HolderClient(UniqueFd socket) : socket_(std::move(socket)) {}
  struct Reply;
  Status Call(int op, std::string_view name, int fd, Reply* reply);

  UniqueFd socket_;
  HolderHello hello_;
};

struct HolderLaunch {
  // What to run: `binary_fd` (fexecve; an fd of claimfsd opened at start so a replaced file on
  // disk changes nothing) or else `binary_path`.
  int binary_fd = -1;
  std::string binary_path;
  // Build id for HELLO.
  std::string build_id;
  // Passed as --idle-exit-ms when set (tests); the holder's default is 60 s.
  std::chrono::milliseconds idle_exit{0};
  // How long to wait for a new holder to answer.
  std::chrono::milliseconds start_timeout{10'000};
};

// Connects to the holder of `run_dir`, starting one first if hold.sock answers nobody:
// `<binary> hold --run-dir <run_dir>` detached by a double fork (not our child; its own
// session). Concurrent callers (threads or processes) end with one holder: starting is
// serialised by <run_dir>/spawn.lock and a holder refuses to run while another holds
// <run_dir>/hold.lock. Creates run_dir (0700) if missing; Forbidden at once if it is not
// ours (CheckRunDirectory). A hold.sock answered by a process of another uid is replaced.
Result<HolderClient> EnsureHolder(std::string_view run_dir, const HolderLaunch& launch);

}  // namespace claimfs::handoff
