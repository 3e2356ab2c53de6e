// Restarts and upgrades without a pause the programs notice (issue 10, phase 4c): main
// restarted in place by SIGUSR2, upgraded to a freshly installed binary whose servers take the
// volumes over, a SIGTERM that systemd sends for a restart (the StopIntent injected with
// CLAIMFS_STOP_INTENT), and a real stop. Writers and readers hold their files open all along.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/open_files_workload.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

class Upgrade : public OpenFilesWorkloadTest {
 protected:
  void TearDown() override {
    unsetenv("CLAIMFS_STOP_INTENT");
    unsetenv("CLAIMFS_CRASH_AT");
    if (!saved_binary_.empty()) setenv("CLAIMFSD_BINARY", saved_binary_.c_str(), 1);
    if (replaced_binary_ && saved_binary_.empty()) unsetenv("CLAIMFSD_BINARY");
    OpenFilesWorkloadTest::TearDown();
  }

  // The daemon runs base()/bin/claimfsd, a copy of the built binary, from now on.
  void UseInstalledCopy() {
    if (const char* v = getenv("CLAIMFSD_BINARY")) saved_binary_ = v;
    original_ = ClaimfsdBinary();
    ASSERT_EQ(mkdir((base() + "/bin").c_str(), 0755), 0) << strerror(errno);
    installed_ = base() + "/bin/claimfsd";
    ASSERT_TRUE(Install(original_));
    setenv("CLAIMFSD_BINARY", installed_.c_str(), 1);
    replaced_binary_ = true;
  }
  // Copies `from` to a new file and renames it over the installed path, as a package manager
  // does. True on success.
  bool Install(const std::string& from) {
    std::string tmp = installed_ + ".new";
    std::error_code ec;
    std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec || chmod(tmp.c_str(), 0755) != 0) return false;
    return rename(tmp.c_str(), installed_.c_str()) == 0;
  }
  static ino_t InodeOf(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  }
  // True when at least one serving process runs and every one runs the file of inode `ino`.
  bool ServersRun(ino_t ino) {
    auto servers = ServerProcesses();
    if (servers.empty()) return false;
    for (const auto& [pid, title] : servers) {
      if (InodeOf("/proc/" + std::to_string(pid) + "/exe") != ino) return false;
    }
    return true;
  }

  // SIGUSR2 and the new image's READY=1 after RELOADING=1; same pid all along.
  ::testing::AssertionResult RestartInPlace() {
    size_t since = notify().Count();
    pid_t pid = daemon_pid();
    SignalDaemon(SIGUSR2);
    if (!notify().WaitFor("RELOADING=1", since, 10s)) {
      return ::testing::AssertionFailure() << "no RELOADING=1\n" << DaemonLog();
    }
    since = notify().Count();
    if (!notify().WaitFor("READY=1", since, 30s)) {
      return ::testing::AssertionFailure() << "no READY=1 from the new image\n" << DaemonLog();
    }
    if (!DaemonRunning() || daemon_pid() != pid) {
      return ::testing::AssertionFailure() << "main is not the same process\n" << DaemonLog();
    }
    return ::testing::AssertionSuccess();
  }

  std::string original_;  // the binary CMake built
  std::string installed_;
  std::string saved_binary_;
  bool replaced_binary_ = false;
};

TEST_F(Upgrade, Sigusr2RestartsInPlaceWithoutAnErrorToWriters) {
  ASSERT_TRUE(StartDaemon());
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  auto servers = ServerProcesses();
  for (int round = 0; round < 3; ++round) {
    std::vector<uint64_t> before = Counts();
    ASSERT_TRUE(RestartInPlace()) << "round " << round;
    ASSERT_TRUE(Progressed(before, 5, 20s)) << "round " << round << "\n" << Errors();
    ASSERT_EQ(Errors(), "") << "round " << round;
  }
  // The same binary: the same servers serve on, nothing was mounted again.
  EXPECT_EQ(ServerProcesses(), servers);
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound");
}

// Both ways to the new binary: SIGUSR2 (rounds 0 and 2), and a systemd-style restart -- SIGTERM
// with the restart intent, then a start of the installed file (rounds 1, 3 and 4; the last
// start is a plain one, so that the teardown's SIGTERM stops).
TEST_F(Upgrade, UpgradesToAFreshlyBuiltBinary) {
  UseInstalledCopy();
  setenv("CLAIMFS_STOP_INTENT", "restart", 1);
  ASSERT_TRUE(StartDaemon());
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  ASSERT_TRUE(ServersRun(InodeOf(installed_)));
  for (int round = 0; round < 5; ++round) {
    ino_t old_ino = InodeOf(installed_);
    // A new file at the recorded path: another inode, so another build.
    ASSERT_TRUE(Install(original_)) << "round " << round;
    ino_t new_ino = InodeOf(installed_);
    ASSERT_NE(new_ino, old_ino);
    std::vector<uint64_t> before = Counts();
    if (round % 2 == 0 && round != 4) {
      ASSERT_TRUE(RestartInPlace()) << "round " << round;
    } else {
      int status = -1;
      ASSERT_TRUE(StopDaemon(&status)) << "round " << round;
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
      if (round == 4) unsetenv("CLAIMFS_STOP_INTENT");
      ASSERT_TRUE(StartDaemon()) << "round " << round;
    }
    EXPECT_TRUE(WaitFor([&] { return ServersRun(new_ino); }, 20s))
        << "round " << round << ": serving processes of the old build remain\n"
        << DaemonLog();
    ASSERT_TRUE(Progressed(before, 5, 20s)) << "round " << round << "\n" << Errors();
    ASSERT_EQ(Errors(), "") << "round " << round;
  }
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound");
}

// The old server dies right after it released a volume, before main hears of it: the volume,
// served by nobody, is adopted from the holder by a server of the new build, and every other
// volume of the dead server too.
TEST_F(Upgrade, AServerThatDiesDuringTheHandoverCostsNoError) {
  UseInstalledCopy();
  setenv("CLAIMFS_CRASH_AT", "serve.after_release", 1);
  ASSERT_TRUE(StartDaemon());
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  ASSERT_TRUE(Install(original_));
  ino_t new_ino = InodeOf(installed_);
  std::vector<uint64_t> before = Counts();
  ASSERT_TRUE(RestartInPlace());
  EXPECT_TRUE(WaitFor([&] { return ServersRun(new_ino); }, 20s)) << DaemonLog();
  ASSERT_TRUE(Progressed(before, 5, 20s)) << Errors();
  EXPECT_NE(DaemonLog().find("died"), std::string::npos) << "the crash point was not reached";
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound");
}

TEST_F(Upgrade, RestartIntentKeepsVolumes) {
  setenv("CLAIMFS_STOP_INTENT", "restart", 1);
  ASSERT_TRUE(StartDaemon());
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  auto servers = ServerProcesses();
  int status = -1;
  ASSERT_TRUE(StopDaemon(&status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  // Mounted and served with main gone.
  EXPECT_EQ(VolumeMountsUnder(data_dir()).size(), static_cast<size_t>(kVolumes));
  EXPECT_EQ(ServerProcesses(), servers);
  EXPECT_FALSE(HolderProcesses().empty());
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  unsetenv("CLAIMFS_STOP_INTENT");
  std::vector<uint64_t> before = Counts();
  ASSERT_TRUE(StartDaemon());
  EXPECT_EQ(ServerProcesses(), servers) << "the new main did not adopt the serving processes";
  ASSERT_TRUE(Progressed(before, 5, 20s)) << Errors();
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound");
}

// Not injected: without systemd the StopIntent finds no restart job, so SIGTERM is a stop.
TEST_F(Upgrade, StopUnmountsEverythingAndLeavesNoProcess) {
  unsetenv("CLAIMFS_STOP_INTENT");
  ASSERT_TRUE(StartDaemon());
  CreateClaims();
  ASSERT_FALSE(ServerProcesses().empty());
  int status = -1;
  ASSERT_TRUE(StopDaemon(&status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_TRUE(WaitFor([&] { return ServerProcesses().empty() && HolderProcesses().empty(); }, 10s));
  EXPECT_TRUE(VolumeMountsUnder(data_dir()).empty());
}

}  // namespace
}  // namespace claimfs::it
