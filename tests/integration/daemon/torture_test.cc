// Volumes outlive the processes that serve them (issue 10): writers holding open descriptors
// append checksummed records with fsync, readers keep files open and check what they read, while
// the serving process is killed at random moments and the whole service is killed and started
// again through systemd's fd store (the test double of tests/integration/handoff). Every program
// must see no error at all, every fsync'd record must read back, and nothing may reach the host
// disk below the mount root.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/open_files_workload.h"
#include "daemon/systemd_main.h"
#include "handoff/fake_systemd.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

class Torture : public OpenFilesWorkloadTest {
 protected:
  // Nothing below the volumes' mountpoints: a non-recursive clone of the mount root carries none
  // of the mounts, so what it shows is the tmpfs itself.
  void ExpectNothingBelowTheMountRoot() {
    int clone = open_tree(AT_FDCWD, (data_dir() + "/claims").c_str(),
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    ASSERT_GE(clone, 0) << strerror(errno);
    std::vector<std::string> found;
    Find(clone, "", &found);
    close(clone);
    std::string all;
    for (const std::string& f : found) all += f + "\n";
    EXPECT_TRUE(found.empty()) << "below the mount root, outside every volume:\n" << all;
  }

  pid_t TheServer() {
    auto servers = ServerProcesses();
    return servers.size() == 1 ? servers.begin()->first : -1;
  }

 private:
  static void Find(int dir_fd, const std::string& prefix, std::vector<std::string>* found) {
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
    if (d == nullptr) return;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || (prefix.empty() && name == ".claimfsd.lock")) continue;
      if (e->d_type == DT_DIR) {
        int sub = openat(dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
          Find(sub, prefix + "/" + name, found);
          close(sub);
        }
        continue;
      }
      found->push_back(prefix + "/" + name);
    }
    closedir(d);
  }
};

TEST_F(Torture, Kill9OfTheServingProcess) {
  ASSERT_TRUE(StartDaemon());
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();

  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pause_ms(20, 400);
  for (int round = 0; round < 30; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));
    pid_t server = TheServer();
    ASSERT_GT(server, 0) << "round " << round;
    ASSERT_EQ(kill(server, SIGKILL), 0);
    ASSERT_TRUE(WaitFor([&] { pid_t now = TheServer(); return now > 0 && now != server; }, 20s))
        << "no new serving process after round " << round;
    // The programs go on: each writer gets further than it was at the kill.
    ASSERT_TRUE(Progressed(Counts(), 5, 20s)) << "round " << round << "\n" << Errors();
    ASSERT_EQ(Errors(), "") << "round " << round;
  }
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) {
    EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound");
  }
  ExpectNothingBelowTheMountRoot();
}

// The whole service dies (main, serving processes, holder: `systemctl kill -s KILL`, an OOM kill
// of the cgroup) and systemd starts it again with the fds it kept (Restart=on-failure).
TEST_F(Torture, FullRestartsThroughTheFdStore) {
  const std::string dir = base() + "/systemd";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0) << strerror(errno);
  FakeSystemd systemd({.dir = dir});
  std::string error;
  ASSERT_TRUE(systemd.Start(&error)) << error;
  SystemdMain unit(&systemd, ClaimfsdBinary(), data_dir(), dir + "/claimfsd.log");
  auto start = [&] { return unit.Start(); };
  ASSERT_TRUE(start()) << unit.Log();
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  ASSERT_TRUE(systemd.WaitForStore(
      [](const std::vector<std::string>& names) { return names.size() == 2 * kVolumes; }))
      << "the fd store does not keep every volume's connection and arena";

  for (int round = 0; round < 10; ++round) {
    systemd.StopMain(FakeSystemd::Exit::kCrashRestarted);
    for (const auto& [pid, title] : ServerProcesses()) kill(pid, SIGKILL);
    for (const auto& [pid, title] : HolderProcesses()) kill(pid, SIGKILL);
    ASSERT_TRUE(WaitFor([&] { return ServerProcesses().empty() && HolderProcesses().empty(); }, 10s));
    std::vector<uint64_t> at_kill = Counts();
    ASSERT_TRUE(start()) << "restart " << round << "\n" << unit.Log();
    ASSERT_TRUE(Progressed(at_kill, 5, 30s)) << "restart " << round << "\n" << Errors();
    ASSERT_EQ(Errors(), "") << "restart " << round;
  }
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) {
    EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound") << unit.Log();
  }
  ExpectNothingBelowTheMountRoot();
  // A manual stop unmounts everything and leaves no process and nothing in the store.
  int status = systemd.StopMain(FakeSystemd::Exit::kManualStop, 30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_TRUE(WaitFor([&] { return ServerProcesses().empty() && HolderProcesses().empty(); }, 10s));
  EXPECT_TRUE(VolumeMountsUnder(data_dir()).empty());
}

}  // namespace
}  // namespace claimfs::it
