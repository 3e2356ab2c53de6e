// claimfsd's serving processes (docs/dataplane.md, 3): named `claimfsd: serve N volumes`, gone
// after a stop, serving through a kill -9 of main, and replaced when one of them is killed.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "claimfs/handoff/holder_client.h"
#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

class Serve : public DaemonTest {};

// "claimfsd: serve 2 volumes" of every serving process, or a description of what there is.
std::string Titles(const std::map<pid_t, std::string>& servers) {
  std::string out;
  for (const auto& [pid, cmdline] : servers) out += std::to_string(pid) + ": " + cmdline + "\n";
  return out.empty() ? "(no serving process)" : out;
}

std::string DeviceOf(const std::string& path) {
  auto m = MountAt(path);
  if (!m) return "";
  return std::to_string(m->major) + ":" + std::to_string(m->minor);
}

TEST_F(Serve, ProcessesAreNamedServeNVolumesAndAStopLeavesNone) {
  ASSERT_TRUE(StartDaemon());
  EXPECT_TRUE(ServerProcesses().empty()) << Titles(ServerProcesses());
  for (const char* c : {"one", "two", "three"}) ASSERT_TRUE(CreateDynamicClaim(c, "16Mi"));
  auto servers = ServerProcesses();
  ASSERT_EQ(servers.size(), 1u) << Titles(servers);
  EXPECT_EQ(servers.begin()->second, "claimfsd: serve 3 volumes");
  std::ifstream comm("/proc/" + std::to_string(servers.begin()->first) + "/comm");
  std::string name;
  std::getline(comm, name);
  EXPECT_EQ(name, "claimfsd-serve");

  CommandResult r = Claimctl({"delete", "pvc", "two"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor(
      [&] {
        auto now = ServerProcesses();
        return now.size() == 1 && now.begin()->second == "claimfsd: serve 2 volumes";
      },
      10s))
      << Titles(ServerProcesses());

  ASSERT_TRUE(StopDaemon());
  EXPECT_TRUE(WaitFor([&] { return ServerProcesses().empty(); }, 10s)) << "left after a stop:\n"
                                                                       << Titles(ServerProcesses());
  EXPECT_TRUE(VolumeMountsUnder(data_dir()).empty());
}

// A writer appends and fsyncs through one open fd for `seconds`; exit 0 when every call
// succeeded, the count of records written in *progress (a pipe) after each.
int AppendAndFsync(const std::string& path, int seconds, int progress) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return 10;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  char record[4096];
  for (uint32_t i = 0; std::chrono::steady_clock::now() < end; ++i) {
    memset(record, 'a' + static_cast<int>(i % 26), sizeof record);
    if (write(fd, record, sizeof record) != static_cast<ssize_t>(sizeof record)) return 11;
    if (fsync(fd) != 0) return 12;
    uint32_t count = i + 1;
    if (write(progress, &count, sizeof count) != sizeof count) return 13;
    usleep(2000);
  }
  return close(fd) == 0 ? 0 : 14;
}

TEST_F(Serve, Kill9OfMainServersKeepServing) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("keep", "256Mi"));
  const std::string volume = VolumeOf("keep");
  const std::string device = DeviceOf(MountPath("keep"));
  const std::string path = MountPath("keep") + "/log.bin";
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  int out = p[1];
  pid_t writer = SpawnFunction([=] { return AppendAndFsync(path, 8, out); });
  close(p[1]);
  uint32_t written = 0;
  auto drain = [&] {
    uint32_t c;
    while (read(p[0], &c, sizeof c) == sizeof c) written = c;
  };
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  ASSERT_TRUE(WaitFor(
      [&] {
        drain();
        return written >= 20;
      },
      10s))
      << written;

  Kill9();
  EXPECT_EQ(ServerProcesses().size(), 1u) << "the serving process died with main";
  uint32_t at_kill = written;
  ASSERT_TRUE(WaitFor(
      [&] {
        drain();
        return written >= at_kill + 50;
      },
      10s))
      << "the writer stopped when main was killed: " << at_kill << " -> " << written;
  ASSERT_TRUE(StartDaemon());

  std::optional<int> status = WaitSpawned(writer, 30s);
  drain();
  close(p[0]);
  ASSERT_TRUE(status.has_value()) << "the writer hangs";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "the writer saw an error (wait status " << *status << ")";

  // The same mount all along, with every record.
  EXPECT_EQ(DeviceOf(MountPath("keep")), device);
  EXPECT_EQ(ClaimPhase("keep"), "Bound");
  EXPECT_EQ(VolumeOf("keep"), volume);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), uint64_t{written} * 4096);
  std::string data(static_cast<size_t>(st.st_size), '\0');
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pread(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  close(fd);
  for (uint32_t i = 0; i < written; ++i) {
    char want = static_cast<char>('a' + static_cast<int>(i % 26));
    ASSERT_EQ(data.find_first_not_of(want, uint64_t{i} * 4096),
              i + 1 == written ? std::string::npos : uint64_t{i + 1} * 4096)
        << "record " << i;
  }
  CommandResult r = Claimctl({"get", "pvc", "keep"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.out.find("Bound"), std::string::npos) << r.out;
  EXPECT_EQ(ServerProcesses().size(), 1u) << Titles(ServerProcesses());
}

// One claim at a time on an otherwise idle daemon started a serving process for every claim
// (19 ms a mount instead of 7): an emptied server now waits for the next volume, then ends.
TEST_F(Serve, AnEmptiedServerServesTheNextClaimThenEndsWhenIdle) {
  ASSERT_EQ(setenv("CLAIMFS_SERVER_IDLE_SECONDS", "3", 1), 0);
  ::testing::AssertionResult started = StartDaemon();
  unsetenv("CLAIMFS_SERVER_IDLE_SECONDS");
  ASSERT_TRUE(started);
  auto pids = [&] {
    std::set<pid_t> out;
    for (const auto& [pid, title] : ServerProcesses()) out.insert(pid);
    return out;
  };
  ASSERT_TRUE(CreateDynamicClaim("first", "16Mi"));
  const std::set<pid_t> first = pids();
  ASSERT_EQ(first.size(), 1u) << Titles(ServerProcesses());

  CommandResult r = Claimctl({"delete", "pvc", "first"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitFor([&] { return VolumeMountsUnder(data_dir()).empty(); }, 10s));
  EXPECT_EQ(pids(), first) << "the emptied server did not wait for the next volume";

  ASSERT_TRUE(CreateDynamicClaim("second", "16Mi"));
  EXPECT_EQ(pids(), first) << "the next claim started a server of its own";

  r = Claimctl({"delete", "pvc", "second"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return ServerProcesses().empty(); }, 20s))
      << "left after its idle time:\n"
      << Titles(ServerProcesses());
  EXPECT_TRUE(VolumeMountsUnder(data_dir()).empty());
}

TEST_F(Serve, KilledServerVolumesComeBackMountedAndTheirClaimsStayBound) {
  ASSERT_TRUE(StartDaemon());
  for (const char* c : {"a", "b"}) ASSERT_TRUE(CreateDynamicClaim(c, "16Mi"));
  auto servers = ServerProcesses();
  ASSERT_EQ(servers.size(), 1u) << Titles(servers);
  const pid_t old = servers.begin()->first;
  int open_before = open((MountPath("a") + "/open.txt").c_str(),
                         O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(open_before, 0) << strerror(errno);
  ASSERT_EQ(kill(old, SIGKILL), 0);

  for (const char* c : {"a", "b"}) {
    std::string file = MountPath(c) + "/after.txt";
    EXPECT_TRUE(WaitFor(
        [&] {
          int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
          if (fd < 0) return false;
          bool ok = write(fd, "x", 1) == 1;
          return close(fd) == 0 && ok;
        },
        10s))
        << c << " is not served again: " << strerror(errno);
    EXPECT_EQ(ClaimPhase(c), "Bound") << c;
  }
  // The holder kept the connection and the new server adopted it: a file open across the kill
  // still works.
  EXPECT_EQ(write(open_before, "y", 1), 1) << strerror(errno);
  EXPECT_EQ(close(open_before), 0) << strerror(errno);
  // One event per volume (device numbers of FUSE mounts are reused, so they cannot tell). The
  // event is written once the server's volumes are served again, so it may come just after.
  for (const char* c : {"a", "b"}) {
    auto restarted = [&] {
      int n = 0;
      for (const nlohmann::json& e : EventsFor("PersistentVolumeClaim", c)) {
        n += JsonString(e, "/reason") == "VolumeServerRestarted" &&
             JsonString(e, "/message").find("took over its connection") != std::string::npos;
      }
      return n;
    };
    EXPECT_TRUE(WaitFor([&] { return restarted() >= 1; }, 10s))
        << DescribeEvents("PersistentVolumeClaim", c);
    EXPECT_EQ(restarted(), 1) << DescribeEvents("PersistentVolumeClaim", c);
  }
  servers = ServerProcesses();
  ASSERT_EQ(servers.size(), 1u) << Titles(servers);
  EXPECT_NE(servers.begin()->first, old);
  EXPECT_EQ(servers.begin()->second, "claimfsd: serve 2 volumes");
  EXPECT_EQ(VolumeMountsUnder(data_dir() + "/claims").size(), 2u);
}

// Bytes the claim mounted at `path` uses, as df shows it.
uint64_t UsedBytes(const std::string& path) {
  struct statvfs sv;
  if (statvfs(path.c_str(), &sv) != 0) return 0;
  return static_cast<uint64_t>(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
}

// The holder's orphan names (claimfs.1.<pv>.orphan.<slot>.<gen>) of `pv`; nullopt when the
// holder cannot be asked.
std::optional<std::vector<std::string>> HeldOrphans(const std::string& run_dir, const std::string& pv) {
  auto holder = handoff::HolderClient::Connect(run_dir);
  if (!holder.ok()) return std::nullopt;
  auto names = holder->List();
  if (!names.ok()) return std::nullopt;
  std::vector<std::string> out;
  for (const std::string& n : *names) {
    if (n.rfind("claimfs.1." + pv + ".orphan.", 0) == 0) out.push_back(n);
  }
  return out;
}

// Issue 10: a kill -9 of the serving process costs programs no error, also for a file they
// unlinked while holding it open (temp files, journals): the holder keeps it as an orphan, the
// new server serves it, and its last close drops it from the holder and frees its space.
TEST_F(Serve, UnlinkedOpenFileKeepsWorkingAcrossAKillOfItsServerAndIsFreedAtItsLastClose) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("o", "64Mi"));
  const std::string pv = VolumeOf("o");
  ASSERT_FALSE(pv.empty());
  auto servers = ServerProcesses();
  ASSERT_EQ(servers.size(), 1u) << Titles(servers);
  const pid_t old = servers.begin()->first;
  std::error_code ec;
  const std::string run_dir =
      std::filesystem::read_symlink("/proc/" + std::to_string(old) + "/cwd", ec).string();
  ASSERT_FALSE(ec) << ec.message();

  const std::string path = MountPath("o") + "/journal";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << strerror(errno);
  std::string block(1 << 20, 'j');
  for (int i = 0; i < 4; ++i) ASSERT_EQ(write(fd, block.data(), block.size()), 1 << 20);
  ASSERT_EQ(fsync(fd), 0) << strerror(errno);
  ASSERT_EQ(unlink(path.c_str()), 0) << strerror(errno);
  EXPECT_GE(UsedBytes(MountPath("o")), uint64_t{4} << 20);
  auto held = HeldOrphans(run_dir, pv);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->size(), 1u);

  ASSERT_EQ(kill(old, SIGKILL), 0);
  // The program goes on at once; its requests wait in the kernel until the new server adopts.
  EXPECT_EQ(pwrite(fd, "tail", 4, 4 << 20), 4) << strerror(errno);
  EXPECT_EQ(fsync(fd), 0) << strerror(errno);
  std::string back(4, '\0');
  EXPECT_EQ(pread(fd, back.data(), 4, 4 << 20), 4) << strerror(errno);
  EXPECT_EQ(back, "tail");
  std::string first(1 << 20, '\0');
  EXPECT_EQ(pread(fd, first.data(), first.size(), 0), 1 << 20) << strerror(errno);
  EXPECT_EQ(first, block);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_size, (4 << 20) + 4);
  servers = ServerProcesses();
  ASSERT_EQ(servers.size(), 1u) << Titles(servers);
  EXPECT_NE(servers.begin()->first, old);
  EXPECT_GE(UsedBytes(MountPath("o")), uint64_t{4} << 20) << "the orphan's blocks are not counted";
  EXPECT_EQ(ftruncate(fd, 1 << 20), 0) << strerror(errno);
  held = HeldOrphans(run_dir, pv);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->size(), 1u);

  EXPECT_EQ(close(fd), 0) << strerror(errno);
  EXPECT_TRUE(WaitFor(
      [&] {
        auto names = HeldOrphans(run_dir, pv);
        return names && names->empty();
      },
      10s))
      << "the holder still keeps the closed file";
  EXPECT_TRUE(WaitFor([&] { return UsedBytes(MountPath("o")) < (uint64_t{1} << 20); }, 10s))
      << UsedBytes(MountPath("o")) << " bytes still used";
  EXPECT_EQ(ClaimPhase("o"), "Bound");
}

}  // namespace
}  // namespace claimfs::it
