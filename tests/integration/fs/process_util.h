// Child processes for the integration tests: commands run with a timeout and code run in a
// forked child as another user, so no test can hang on a stuck mount or leak a process.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace claimfs::it {

// A user to become in a child: real, effective and saved ids, supplementary groups replaced.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // empty: no supplementary groups (setpriv --clear-groups)
};

// Switches the calling (child) process to `creds`; returns false with errno set on failure.
bool BecomeUser(const Credentials& creds);

struct RunOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
  std::optional<Credentials> creds;
  std::vector<std::string> env;  // "NAME=value" entries that override the inherited ones
  std::optional<rlim_t> nofile;  // RLIMIT_NOFILE (soft and hard) for the child
};

struct RunResult {
  int wait_status = -1;  // as from waitpid(); -1 when the command could not be started
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved

  bool Exited() const;
  int ExitCode() const;  // -1 unless the command exited normally
  bool Succeeded() const { return Exited() && ExitCode() == 0; }
  // "exit 1: <output>", "killed by signal 9", "timed out after ...".
  std::string Describe() const;
};

// Runs argv (argv[0] looked up on PATH) with stdin from /dev/null and waits at most
// `options.timeout`; a command that overruns is killed with its process group.
RunResult Run(const std::vector<std::string>& argv, const RunOptions& options = {});

// Runs `sh -c script`.
RunResult RunShell(const std::string& script, const RunOptions& options = {});

struct ChildResult {
  bool ok = false;      // the child ran `fn` and exited 0
  std::string output;   // what `fn` returned
  std::string problem;  // why not ok
};

// Forks; the child becomes `creds` (if given), runs `fn` and sends back its result. The parent
// waits at most `timeout`, then kills the child. `fn` must not use gtest assertions.
ChildResult RunInChild(const std::function<std::string()>& fn,
                       const std::optional<Credentials>& creds,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Waits for `pid` (a child of this process) at most `timeout`; the wait status, or nullopt if
// it is still running.
std::optional<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout);

// Reads a whole file; empty when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// Symbolic errno name ("ENOENT"), or the number when glibc has no name for it.
std::string ErrnoName(int err);

}  // namespace claimfs::it
