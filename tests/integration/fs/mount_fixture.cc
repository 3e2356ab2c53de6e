#include "fs/mount_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fs/process_util.h"

#ifndef CLAIMFS_BINARY
#define CLAIMFS_BINARY "claimfs"
#endif

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    ADD_FAILURE() << "mkdir " << path << ": " << strerror(errno);
  }
  chmod(path.c_str(), 0755);
}

std::vector<MountEntry> ReadMountInfo() {
  std::vector<MountEntry> entries;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root;
    MountEntry e;
    fields >> id >> parent >> devno >> root >> e.mount_point >> e.mount_options;
    std::string f;
    while (fields >> f && f != "-") {
    }
    fields >> e.fs_type >> e.source >> e.super_options;
    sscanf(devno.c_str(), "%u:%u", &e.major, &e.minor);
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace

bool NativeMode() {
  const char* v = getenv("CLAIMFS_TEST_NATIVE");
  return v != nullptr && std::string(v) == "1";
}

bool KernelModeRun() {
  const char* v = getenv("CLAIMFS_TEST_KERNEL_MODE");
  return v != nullptr && std::string(v) == "1" && !NativeMode();
}

std::string ClaimfsBinary() {
  const char* v = getenv("CLAIMFS_BINARY");
  if (v != nullptr && *v != '\0') return v;
  return CLAIMFS_BINARY;
}

std::optional<MountEntry> FindMount(const std::string& mount_point) {
  std::optional<MountEntry> found;
  for (MountEntry& e : ReadMountInfo()) {
    if (e.mount_point == mount_point) found = std::move(e);
  }
  return found;
}

bool WaitForMountState(const std::string& mount_point, bool mounted,
                       std::chrono::milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (FindMount(mount_point).has_value() == mounted) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::string ForceUnmount(const std::string& mount_point) {
  std::string problems;
  if (!FindMount(mount_point)) return problems;
  RunResult r = Run({"fusermount3", "-u", "-q", mount_point}, {.timeout = 10s});
  if (WaitForMountState(mount_point, false, 2s)) {
    if (!r.Succeeded()) problems += "fusermount3 -u: " + r.Describe() + "; ";
    return problems;
  }
  problems += "fusermount3 -u left the mount (" + r.Describe() + "), lazy unmount; ";
  for (int i = 0; i < 8 && FindMount(mount_point); ++i) {
    if (umount2(mount_point.c_str(), MNT_DETACH) != 0) {
      problems += std::string("umount -l: ") + strerror(errno) + "; ";
      break;
    }
  }
  return problems;
}

// --- ClaimfsServer -------------------------------------------------------------------------

::testing::AssertionResult ClaimfsServer::Start(const std::string& source,
                                                const std::string& mount_point,
                                                const ServerOptions& options,
                                                const std::string& log_path,
                                                std::unique_ptr<ClaimfsServer>* out) {
  std::string binary = ClaimfsBinary();
  if (access(binary.c_str(), X_OK) != 0) {
    return ::testing::AssertionFailure()
           << "claimfs binary not found at " << binary
           << " (build the claimfs target or set CLAIMFS_BINARY; CLAIMFS_TEST_NATIVE=1 runs the "
              "parity tests against the backing directory)";
  }
  std::vector<std::string> args = {binary, source, mount_point, "-f"};
  if (!options.options.empty()) {
    args.push_back("-o");
    args.push_back(options.options);
  }
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0)
    return ::testing::AssertionFailure() << "open " << log_path << ": " << strerror(errno);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return ::testing::AssertionFailure() << "fork: " << strerror(errno);
  }
  if (pid == 0) {
    // If the test process dies, the server unmounts instead of leaving a dead mount behind.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (options.nofile) {
      rlimit rl{*options.nofile, *options.nofile};
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        dprintf(2, "setrlimit: %s\n", strerror(errno));
        _exit(1);
      }
    }
    execv(argv[0], argv.data());
    dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(log_fd);
  std::unique_ptr<ClaimfsServer> server(new ClaimfsServer(pid, mount_point, log_path));
  Clock::time_point deadline = Clock::now() + 15s;
  while (true) {
    std::optional<MountEntry> m = FindMount(mount_point);
    if (m && m->fs_type.rfind("fuse", 0) == 0) break;
    if (!server->Running()) {
      return ::testing::AssertionFailure()
             << "claimfs exited before mounting (status " << server->exit_status_.value_or(-1)
             << "): " << server->Log();
    }
    if (Clock::now() >= deadline) {
      std::string log = server->Log();
      server->Stop();
      return ::testing::AssertionFailure() << "claimfs did not mount within 15 s: " << log;
    }
    std::this_thread::sleep_for(5ms);
  }
  *out = std::move(server);
  return ::testing::AssertionSuccess();
}

ClaimfsServer::~ClaimfsServer() {
  std::string problems = Stop();
  if (!problems.empty()) fprintf(stderr, "claimfs teardown: %s\n", problems.c_str());
}

std::string ClaimfsServer::Log() const { return ReadFileOrEmpty(log_path_); }

bool ClaimfsServer::Running() {
  if (exit_status_) return false;
  int status;
  pid_t rv = waitpid(pid_, &status, WNOHANG);
  if (rv == pid_) {
    exit_status_ = status;
    return false;
  }
  return rv == 0;
}

void ClaimfsServer::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

std::optional<int> ClaimfsServer::WaitExit(std::chrono::milliseconds timeout) {
  if (exit_status_) return exit_status_;
  exit_status_ = WaitForExit(pid_, timeout);
  return exit_status_;
}

void ClaimfsServer::Abort() {
  if (Running()) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    WaitExit(5s);
  }
  if (FindMount(mount_point_)) umount2(mount_point_.c_str(), MNT_DETACH);
}

std::string ClaimfsServer::Stop() {
  std::string problems = ForceUnmount(mount_point_);
  if (Running()) {
    if (!WaitExit(5s)) {
      problems += "claimfs still running 5 s after unmount, SIGTERM; ";
      kill(pid_, SIGTERM);
      if (!WaitExit(3s)) {
        problems += "SIGKILL; ";
        kill(-pid_, SIGKILL);
        kill(pid_, SIGKILL);
        WaitExit(5s);
      }
    }
  }
  if (FindMount(mount_point_)) {
    umount2(mount_point_.c_str(), MNT_DETACH);
    problems += "mount still present after claimfs exited, detached; ";
  }
  return problems;
}

// --- Watchdog ------------------------------------------------------------------------------

Watchdog::Watchdog(std::chrono::seconds timeout, std::function<void()> on_expiry) {
  thread_ = std::thread([this, timeout, on_expiry = std::move(on_expiry)] {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return disarmed_; })) {
      fired_ = true;
      lock.unlock();
      on_expiry();
    }
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    disarmed_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

// --- helpers ----------------------------------------------------------------------------------

FsUsage StatFs(const std::string& path) {
  struct statvfs sv {};
  FsUsage u;
  if (statvfs(path.c_str(), &sv) != 0) {
    ADD_FAILURE() << "statvfs " << path << ": " << strerror(errno);
    return u;
  }
  u.frsize = sv.f_frsize;
  u.total = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
  u.free = static_cast<uint64_t>(sv.f_bfree) * sv.f_frsize;
  u.avail = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  u.files = sv.f_files;
  u.ffree = sv.f_ffree;
  u.favail = sv.f_favail;
  return u;
}

std::optional<uint64_t> DuBytes(const std::string& path) {
  RunResult r = Run({"du", "-sB1", path}, {.timeout = 120s});
  if (!r.Succeeded()) {
    ADD_FAILURE() << "du -sB1 " << path << ": " << r.Describe();
    return std::nullopt;
  }
  return std::stoull(r.output);
}

bool WriteFile(const std::string& path, std::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n <= 0) {
      close(fd);
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return close(fd) == 0;
}

std::string ReadFile(const std::string& path) { return ReadFileOrEmpty(path); }

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << strerror(errno);
    return "";
  }
  chmod(tmpl.c_str(), 0755);
  return tmpl;
}

std::string RemoveTree(const std::string& path) {
  if (path.empty()) return "";
  for (const MountEntry& e : ReadMountInfo()) {
    if (e.mount_point == path || e.mount_point.rfind(path + "/", 0) == 0) {
      return "not removing " + path + ": " + e.mount_point + " is still mounted";
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return "remove " + path + ": " + ec.message();
  return "";
}

// --- VolumeTest ------------------------------------------------------------------------------

void VolumeTest::SetUp() {
  base_ = MakeTempDir("claimfs-it");
  ASSERT_FALSE(base_.empty());
  source_ = base_ + "/src";
  mount_point_ = base_ + "/m/mnt";
  native_ = base_ + "/native";
  outside_ = base_ + "/outside";
  for (const std::string& d : {source_, base_ + "/m", mount_point_, native_, outside_}) {
    MakeDir(d);
  }
  if (NativeMode()) {
    // No mount: the (plain) mount point directory is the volume and its own backing directory,
    // at the mount point's depth so relative symlinks resolve as they would on a mount.
    source_ = mount_point_;
  }
  if (KernelModeRun()) {
    // SOURCE becomes the root of subvolume "src" of a fresh btrfs, mounted there (subvol=src)
    // so that it keeps its depth, and the native twin subvolume "native" of the same btrfs, so
    // parity compares with btrfs; the top-level mount is only needed to create them.
    std::string top = base_ + "/btrfs-top";
    MakeDir(top);
    RunResult r = RunShell(
        "set -e; truncate -s 2G " + base_ + "/btrfs.img; mkfs.btrfs -q " + base_ +
            "/btrfs.img; mount -o loop " + base_ + "/btrfs.img " + top + "; btrfs quota enable " +
            top + "; btrfs quota rescan -w " + top + " >/dev/null; btrfs -q subvolume create " +
            top + "/src; btrfs -q subvolume create " + top + "/native; dev=$(findmnt -no SOURCE " + top +
            "); mount -o subvol=src $dev " + source_ + "; mount -o subvol=native $dev " + native_ +
            "; umount " + top,
        RunOptions{std::chrono::seconds(60)});
    ASSERT_TRUE(r.Succeeded()) << "kernel-mode source: " << r.Describe();
    btrfs_source_ = true;
  }
  root_ = source_;
}

void VolumeTest::TearDown() {
  watchdog_.reset();
  if (server_) {
    std::string problems = server_->Stop();
    if (!problems.empty()) ADD_FAILURE() << "unmount: " << problems << "log: " << server_->Log();
    server_.reset();
  }
  std::string leftover = ForceUnmount(mount_point_);
  if (!leftover.empty()) ADD_FAILURE() << leftover;
  for (const std::string& m : {native_, source_}) {
    if (!btrfs_source_) break;
    RunResult r = it::Run({"umount", m});
    if (!r.Succeeded()) r = it::Run({"umount", "-l", m});
    if (!r.Succeeded()) ADD_FAILURE() << "umount " << m << ": " << r.Describe();
  }
  std::string problem = RemoveTree(base_);
  if (!problem.empty()) ADD_FAILURE() << problem;
}

void VolumeTest::MountVolume(const std::string& options, ServerOptions extra) {
  if (NativeMode()) return;
  ASSERT_EQ(server_, nullptr) << "already mounted";
  extra.options = options;
  if (btrfs_source_ && options.find("capacity=") == std::string::npos &&
      options.find("size=") == std::string::npos) {
    extra.options += std::string(options.empty() ? "" : ",") + "capacity=4Gi";
  }
  ASSERT_TRUE(ClaimfsServer::Start(source_, mount_point_, extra, base_ + "/claimfs.log", &server_));
  root_ = mount_point_;
  // A kernel-mode run that silently fell back to the accounted path would prove nothing.
  if (btrfs_source_ && extra.options.find("inodes=") == std::string::npos) {
    EXPECT_NE(server_->Log().find("enforced by the kernel"), std::string::npos) << server_->Log();
  }
  ClaimfsServer* server = server_.get();
  watchdog_ = std::make_unique<Watchdog>(watchdog_timeout_, [server, this] {
    ADD_FAILURE() << "watchdog: test still running after " << watchdog_timeout_.count()
                  << " s; killing claimfs so blocked calls fail (ENOTCONN)";
    server->Abort();
  });
}

void VolumeTest::UnmountVolume() {
  if (!server_) return;
  watchdog_.reset();
  std::string problems = server_->Stop();
  EXPECT_EQ(problems, "") << server_->Log();
  server_.reset();
  root_ = source_;
}

std::string VolumeTest::P(std::string_view rel) const {
  if (rel.empty()) return root_;
  return root_ + "/" + std::string(rel);
}

}  // namespace claimfs::it
