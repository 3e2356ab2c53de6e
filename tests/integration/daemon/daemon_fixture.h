// End-to-end fixture: the real claimfsd on a fresh data directory, its sd_notify messages, the
// real claimctl and raw HTTP on its socket, and a teardown that always stops the daemon, detaches
// every mount it left and removes what the test created.
//
// CLAIMFSD_BINARY / CLAIMCTL_BINARY in the environment override the programs CMake built.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace claimfs::it {

// A finished command: its exit code and what it wrote, stdout and stderr apart.
struct CommandResult {
  int exit_code = -1;  // -1 when it did not exit normally (signal, timeout, exec failure)
  bool timed_out = false;
  std::string out;
  std::string err;

  // "exit 1\nstdout: ...\nstderr: ..." for failure messages.
  std::string Describe() const;
};

struct CommandOptions {
  std::string stdin_data;
  std::vector<std::string> env;  // "NAME=value", added to (or replacing in) the inherited env
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

// Runs argv (argv[0] looked up on PATH) and collects stdout and stderr; a command that overruns
// `timeout` is killed with its process group.
CommandResult RunCommand(const std::vector<std::string>& argv, const CommandOptions& options = {});

// One HTTP exchange on a Unix socket.
struct HttpResult {
  long status = 0;    // 0: no response (error says why)
  std::string body;
  std::string error;  // libcurl's message when the exchange failed

  // The body as JSON; null when it is not JSON.
  nlohmann::json Json() const;
  std::string Describe() const;
};

HttpResult HttpRequest(const std::string& socket_path, const std::string& method,
                       const std::string& target, const std::string& body = "",
                       const std::string& content_type = "application/json",
                       std::chrono::seconds timeout = std::chrono::seconds(30));

// Receives sd_notify datagrams on a socket of its own (what $NOTIFY_SOCKET names).
class NotifyListener {
 public:
  NotifyListener() = default;
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  // Binds `path` (AF_UNIX, SOCK_DGRAM) and starts reading; a problem, empty on success.
  std::string Start(const std::string& path);
  void Stop();
  // How many messages arrived so far (an index for WaitFor's `since`).
  size_t Count();
  // Waits until a message from index `since` on contains the line `line` (e.g. "READY=1").
  bool WaitFor(const std::string& line, size_t since, std::chrono::milliseconds timeout);
  std::vector<std::string> Messages();

 private:
  void Run();

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> messages_;  // GUARDED_BY(mu_)
};

// One line of /proc/self/mountinfo.
struct MountInfo {
  unsigned major = 0, minor = 0;
  std::string mount_point;
  std::string mount_options;  // per mount: rw,nosuid,nodev,noexec,...
  std::string fs_type;
  std::string super_options;
};
std::vector<MountInfo> ReadMounts();
std::optional<MountInfo> MountAt(const std::string& path);
// Mount points at `dir` or below it.
std::vector<std::string> MountsUnder(const std::string& dir);
// Mount points of volumes (FUSE mounts) at `dir` or below it: not the mount root's own tmpfs.
std::vector<std::string> VolumeMountsUnder(const std::string& dir);

// Polls `predicate` every `interval` until it holds or `timeout` passes; true if it held.
bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
             std::chrono::milliseconds interval = std::chrono::milliseconds(100));

// Sum of st_blocks * 512 over `dir` and everything below it (hard links once, no symlink
// followed): what `du -B1` counts. nullopt when the walk fails.
std::optional<uint64_t> AllocatedBytes(const std::string& dir);

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // ---- the daemon ----
  // Starts claimfsd with `args` (default: --data-dir data_dir()) and waits for READY=1 (30 s).
  // Use ASSERT_TRUE(StartDaemon()).
  ::testing::AssertionResult StartDaemon(std::vector<std::string> args = {});
  // SIGTERM, then waits up to `timeout` for the exit; the wait status in *status.
  ::testing::AssertionResult StopDaemon(int* status = nullptr,
                                        std::chrono::seconds timeout = std::chrono::seconds(20));
  // SIGKILL and reap: the crash.
  void Kill9();
  // StopDaemon (or nothing if it is not running) then StartDaemon with the same arguments.
  ::testing::AssertionResult Restart();
  void SignalDaemon(int sig);
  bool DaemonRunning();
  pid_t daemon_pid() const { return pid_; }
  // Everything claimfsd wrote on stdout and stderr, over every start.
  std::string DaemonLog() const;
  NotifyListener& notify() { return notify_; }
  // Index of the first notify message of the current start.
  size_t start_notify_index() const { return start_notify_index_; }

  // A config file (for --config) with the quick-start layout under data_dir() plus `extra`
  // (YAML lines appended at the top level). Returns its path.
  std::string WriteConfig(const std::string& extra, const std::string& name = "claimfsd.yaml");

  // ---- paths ----
  const std::string& base() const { return base_; }
  std::string data_dir() const { return base_ + "/data"; }
  std::string socket_path() const { return data_dir() + "/claimfsd.sock"; }
  std::string pool_dir() const { return data_dir() + "/pools/default"; }
  std::string MountPath(const std::string& claim, const std::string& ns = "default") const {
    return data_dir() + "/claims/" + ns + "/" + claim;
  }

  // ---- clients ----
  // claimctl --socket socket_path() args...
  CommandResult Claimctl(std::vector<std::string> args, const CommandOptions& options = {});
  // Writes `yaml` to a new file and runs `claimctl apply -f` on it.
  CommandResult Apply(const std::string& yaml);
  // Writes `text` to base()/manifests/<name> and returns the path.
  std::string WriteManifest(const std::string& name, const std::string& text);
  HttpResult Http(const std::string& method, const std::string& target,
                  const std::string& body = "",
                  const std::string& content_type = "application/json");

  // ---- objects through the API ----
  std::optional<nlohmann::json> GetClaim(const std::string& name, const std::string& ns = "default");
  std::optional<nlohmann::json> GetVolume(const std::string& name);
  // status.phase; "" when the object does not exist.
  std::string ClaimPhase(const std::string& name, const std::string& ns = "default");
  std::string VolumePhase(const std::string& name);
  // spec.volumeName of a claim; "" when none.
  std::string VolumeOf(const std::string& claim, const std::string& ns = "default");
  // Waits until the claim is Bound and its mount shows in /proc/self/mountinfo.
  ::testing::AssertionResult WaitBoundAndMounted(
      const std::string& claim, std::chrono::milliseconds timeout = std::chrono::seconds(10),
      const std::string& ns = "default");
  // Applies a dynamically provisioned claim of `size` (default class) and waits until it is
  // Bound and mounted.
  ::testing::AssertionResult CreateDynamicClaim(
      const std::string& name, const std::string& size,
      const std::string& access_mode = "ReadWriteOnce");
  // Events whose involvedObject has this kind and name, from every namespace's event list.
  std::vector<nlohmann::json> EventsFor(const std::string& kind, const std::string& name);
  // "reason: message" of every event, one per line (for failure messages).
  std::string DescribeEvents(const std::string& kind, const std::string& name);
  // Items of a leases list (accepts {"items": [...]} and a bare array).
  std::vector<nlohmann::json> Leases(const std::string& claim, const std::string& ns = "default");

  // ---- helper processes ----
  // Starts argv in its own process group; killed (whole group) and reaped at teardown.
  pid_t Spawn(const std::vector<std::string>& argv);
  // Forks a child in its own process group running `fn` (must not use gtest); `fn`'s result is
  // the exit code. Killed and reaped at teardown.
  pid_t SpawnFunction(const std::function<int()>& fn);
  // SIGKILLs the process group of a spawned child and reaps it.
  void KillSpawned(pid_t pid);
  // Waits for a spawned child; its wait status, or nullopt if still running after `timeout`.
  std::optional<int> WaitSpawned(pid_t pid, std::chrono::milliseconds timeout);
  // claimfsd's serving processes of this test's daemon (running in its run directory), by pid,
  // with their command lines as /proc/PID/cmdline shows them (up to the first NUL).
  std::map<pid_t, std::string> ServerProcesses() const;
  // The holder (`claimfsd: hold`) of this test's daemon, the same way.
  std::map<pid_t, std::string> HolderProcesses() const;
  std::map<pid_t, std::string> ProcessesNamed(const std::string& comm_name) const;
  // A path removed at teardown (recursively; mounts below it are detached first).
  void RemoveAtTearDown(const std::string& path) { cleanup_paths_.push_back(path); }

 private:
  ::testing::AssertionResult Launch(const std::vector<std::string>& args);

  std::string base_;
  std::string log_path_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  NotifyListener notify_;
  size_t start_notify_index_ = 0;
  int manifest_counter_ = 0;
  std::vector<pid_t> spawned_;
  std::vector<std::string> cleanup_paths_;
  bool k8s_pv_existed_ = false;

 protected:
  // Set by tests that use the article's hostPath /tmp/k8s-pv (they hold the ctest resource lock
  // "k8s-pv"): only they may remove it, other tests run beside them.
  bool uses_article_host_path_ = false;
};

// The programs under test: $CLAIMFSD_BINARY / $CLAIMCTL_BINARY, else the ones CMake built.
std::string ClaimfsdBinary();
std::string ClaimctlBinary();

// The string at a JSON pointer ("/status/phase"), or `fallback` when it is absent or not a string.
std::string JsonString(const nlohmann::json& j, const std::string& pointer,
                       const std::string& fallback = "");

// A static hostPath PV `name` over `path` and a claim `name` pre-bound to it (storageClassName
// ""), 16Mi each, as one multi-document manifest. `mount_options` is a flow list's inside
// ("ro, noexec"); empty leaves mountOptions out.
std::string StaticPairYaml(const std::string& name, const std::string& path,
                           const std::string& access_mode = "ReadWriteOnce",
                           const std::string& reclaim_policy = "Retain",
                           const std::string& mount_options = "");

// A static 16Mi ReadWriteOnce PersistentVolume `name` of no class over `path`, as the JSON body
// the tests POST; `source` is "hostPath" or "local".
nlohmann::json StaticVolumeJson(const std::string& name, const std::string& path,
                                const std::string& reclaim_policy = "Delete",
                                const std::string& source = "hostPath");

// The directory of the example manifests (config/examples).
std::string ExamplesDir();

}  // namespace claimfs::it
