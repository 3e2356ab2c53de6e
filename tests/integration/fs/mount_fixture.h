// Real claimfs mounts for the integration tests: a temp tree (SOURCE, MOUNTPOINT, a native
// twin for parity and an "outside" directory for confinement checks), a claimfs process serving
// it, and a teardown that always unmounts, reaps the process and removes the tree.
//
// CLAIMFS_TEST_NATIVE=1 runs the tests against a plain directory instead of a mount (the
// unmounted MOUNTPOINT serves as volume and as its own SOURCE; tests that need the quota or the
// program skip), to validate the tests themselves on ext4.
// CLAIMFS_BINARY overrides the claimfs binary CMake built.
#pragma once

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace claimfs::it {

// True when CLAIMFS_TEST_NATIVE=1: no mount, the "volume" is the backing directory itself.
bool NativeMode();
// True when CLAIMFS_TEST_KERNEL_MODE=1: VolumeTest's SOURCE is the root of a btrfs subvolume
// (quotas on, a loop image per test; the native twin another subvolume of it, so parity is
// against btrfs) and every mount gets a capacity, so volumes are served in
// kernel mode (qgroup limit, FUSE passthrough). For running the POSIX suites in that mode; the
// quota suite's exact-accounting tests do not apply to it.
bool KernelModeRun();

// The claimfs program under test: $CLAIMFS_BINARY, else the one CMake built.
std::string ClaimfsBinary();

// One line of /proc/self/mountinfo.
struct MountEntry {
  unsigned major = 0;
  unsigned minor = 0;
  std::string mount_point;
  std::string mount_options;  // per-mount: rw,nosuid,nodev,noexec,relatime
  std::string fs_type;        // fuse.claimfs
  std::string source;         // the fsname
  std::string super_options;  // rw,user_id=0,group_id=0,allow_other
};

// The topmost mount at exactly `mount_point`, if any.
std::optional<MountEntry> FindMount(const std::string& mount_point);

// Blocks until `mount_point` is (or is not) a mount, at most `timeout`; true if reached.
bool WaitForMountState(const std::string& mount_point, bool mounted,
                       std::chrono::milliseconds timeout);

// Unmounts whatever is mounted at `mount_point`: fusermount3 -u, then a lazy umount as the
// last resort. Returns what went wrong, empty when the mount point ends up unmounted.
std::string ForceUnmount(const std::string& mount_point);

struct ServerOptions {
  std::string options;                  // the -o list; empty: none
  std::optional<rlim_t> nofile;         // RLIMIT_NOFILE for the claimfs process
  std::vector<std::string> extra_args;  // appended to the command line
};

// A `claimfs SOURCE MOUNTPOINT -f` process started by the test. The destructor unmounts and
// reaps it whatever state it is in.
class ClaimfsServer {
 public:
  // Starts claimfs in the foreground and waits until /proc/self/mountinfo shows the mount
  // (at most 15 s). Failure explains why, with claimfs's output.
  static ::testing::AssertionResult Start(const std::string& source, const std::string& mount_point,
                                          const ServerOptions& options, const std::string& log_path,
                                          std::unique_ptr<ClaimfsServer>* out);
  ~ClaimfsServer();
  ClaimfsServer(const ClaimfsServer&) = delete;
  ClaimfsServer& operator=(const ClaimfsServer&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& mount_point() const { return mount_point_; }
  // claimfs's stdout and stderr so far.
  std::string Log() const;
  // Whether the process has not been reaped yet (it may be a zombie).
  bool Running();
  void Signal(int sig);
  // Waits for the process to end; its wait status, or nullopt if it is still running.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  // Kills the process (the kernel then aborts the FUSE connection: blocked calls on the mount
  // return ENOTCONN) and detaches the mount. For watchdogs.
  void Abort();
  // Unmounts and reaps: fusermount3 -u, wait, SIGTERM, SIGKILL. Returns what went wrong
  // (empty when it unmounted and exited cleanly).
  std::string Stop();

 private:
  ClaimfsServer(pid_t pid, std::string mount_point, std::string log_path)
      : pid_(pid), mount_point_(std::move(mount_point)), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::optional<int> exit_status_;
  std::string mount_point_;
  std::string log_path_;
};

// Calls `on_expiry` from its own thread if not disarmed within `timeout`: the guard that turns
// a hung FUSE call into a failed test instead of a hung suite.
class Watchdog {
 public:
  Watchdog(std::chrono::seconds timeout, std::function<void()> on_expiry);
  ~Watchdog();  // disarms
  bool fired() const { return fired_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;  // GUARDED_BY(mu_)
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

// statvfs of a path, in bytes.
struct FsUsage {
  uint64_t frsize = 0;
  uint64_t total = 0;  // f_blocks * f_frsize
  uint64_t free = 0;   // f_bfree * f_frsize
  uint64_t avail = 0;  // f_bavail * f_frsize
  uint64_t used() const { return total - free; }
  uint64_t files = 0;
  uint64_t ffree = 0;
  uint64_t favail = 0;
};
FsUsage StatFs(const std::string& path);

// `du -sB1 path` (allocated bytes, hard links once); nullopt when du fails.
std::optional<uint64_t> DuBytes(const std::string& path);

// Writes `size` bytes of `byte` at `offset`, creating the file 0644; true on success.
bool WriteFile(const std::string& path, std::string_view data);
std::string ReadFile(const std::string& path);

// The base fixture: a fresh temp tree per test, a mount on request, teardown always.
//   base/            0755, on the ext4 of /tmp
//   base/src/        SOURCE
//   base/m/mnt/      MOUNTPOINT (one level deeper than SOURCE: a relative symlink "../x"
//                    means base/x to the backing fs but base/m/x to the mount)
//   base/native/     the native twin for parity runs
//   base/outside/    things no volume operation may touch
class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Mounts SOURCE at MOUNTPOINT with `options` (native mode: uses SOURCE as the root). Use
  // ASSERT_NO_FATAL_FAILURE(MountVolume(...)).
  void MountVolume(const std::string& options = "", ServerOptions extra = {});
  // Unmounts now (Stop()); expects a clean exit.
  void UnmountVolume();
  // Seconds before the watchdog aborts the mount (set before MountVolume).
  void SetWatchdog(std::chrono::seconds timeout) { watchdog_timeout_ = timeout; }

  // The volume as tests see it: MOUNTPOINT, or SOURCE in native mode.
  const std::string& root() const { return root_; }
  std::string P(std::string_view rel) const;  // root()/rel
  const std::string& base() const { return base_; }
  const std::string& source() const { return source_; }
  const std::string& mount_point() const { return mount_point_; }
  const std::string& native() const { return native_; }
  const std::string& outside() const { return outside_; }
  ClaimfsServer* server() { return server_.get(); }
  bool mounted() const { return server_ != nullptr; }

 private:
  std::string base_, source_, mount_point_, native_, outside_, root_;
  bool btrfs_source_ = false;  // KernelModeRun(): SOURCE is a btrfs subvolume mount
  std::unique_ptr<ClaimfsServer> server_;
  std::unique_ptr<Watchdog> watchdog_;
  std::chrono::seconds watchdog_timeout_{100};
};

// Creates a 0755 temp directory under /tmp; removes it recursively (never across a mount).
std::string MakeTempDir(const std::string& prefix);
// Removes `path` recursively unless something is still mounted below it; returns a problem.
std::string RemoveTree(const std::string& path);

}  // namespace claimfs::it

// Skips the test in native mode: it needs the quota or the claimfs program itself.
#define CLAIMFS_REQUIRE_MOUNT()                                                             \
  do {                                                                                      \
    if (::claimfs::it::NativeMode()) GTEST_SKIP() << "needs a claimfs mount (native mode)"; \
  } while (0)
