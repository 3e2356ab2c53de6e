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

#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

// A record: its index, 52 bytes of payload derived from it, and a checksum of the first 60 bytes.
constexpr size_t kRecord = 64;

uint32_t Checksum(const unsigned char* data, size_t n) {  // FNV-1a
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) h = (h ^ data[i]) * 16777619u;
  return h;
}

void MakeRecord(uint64_t index, unsigned char* out) {
  std::memcpy(out, &index, sizeof index);
  for (size_t i = 8; i < 60; ++i) out[i] = static_cast<unsigned char>((index * 131 + i) & 0xff);
  uint32_t crc = Checksum(out, 60);
  std::memcpy(out + 60, &crc, sizeof crc);
}

// The index of a record whose checksum holds, or -1.
int64_t CheckRecord(const unsigned char* in) {
  uint32_t crc;
  std::memcpy(&crc, in + 60, sizeof crc);
  if (crc != Checksum(in, 60)) return -1;
  uint64_t index;
  std::memcpy(&index, in, sizeof index);
  return static_cast<int64_t>(index);
}

// Shared with the children: what each has done, and the first error it saw.
struct Progress {
  std::atomic<uint64_t> fsynced{0};  // records written and fsync'd
  std::atomic<uint64_t> reads{0};
  std::atomic<int> error{0};  // errno of the first failed call
  std::atomic<int> where{0};  // which call: 1 write, 2 fsync, 3 pread, 4 fstat, 5 bad record
};

// A forked workload child keeps none of the test's fds: the fake systemd's store holds FUSE
// connections, and a program using a volume holds none of those.
void CloseInheritedFds() { syscall(SYS_close_range, 3, ~0U, 0); }

// Appends records through one descriptor held open all along, until `stop` is set.
int Writer(const std::string& path, Progress* p, const std::atomic<bool>* stop) {
  CloseInheritedFds();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return 10;
  unsigned char record[kRecord];
  for (uint64_t i = 0; !stop->load(); ++i) {
    MakeRecord(i, record);
    if (write(fd, record, kRecord) != static_cast<ssize_t>(kRecord)) {
      p->where = 1;
      p->error = errno ? errno : EIO;
      return 11;
    }
    if (fsync(fd) != 0) {
      p->where = 2;
      p->error = errno;
      return 12;
    }
    p->fsynced = i + 1;
  }
  return close(fd) == 0 ? 0 : 13;
}

// Keeps the writer's file open and checks its first and last complete records, until `stop`.
int Reader(const std::string& path, Progress* p, const std::atomic<bool>* stop) {
  CloseInheritedFds();
  int fd = -1;
  while (fd < 0 && !stop->load()) {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) usleep(1000);
  }
  unsigned char record[kRecord];
  while (!stop->load()) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      p->where = 4;
      p->error = errno;
      return 14;
    }
    uint64_t n = static_cast<uint64_t>(st.st_size) / kRecord;
    for (uint64_t i : {uint64_t{0}, n > 0 ? n - 1 : 0}) {
      if (n == 0) break;
      if (pread(fd, record, kRecord, static_cast<off_t>(i * kRecord)) != kRecord) {
        p->where = 3;
        p->error = errno ? errno : EIO;
        return 15;
      }
      if (CheckRecord(record) != static_cast<int64_t>(i)) {
        p->where = 5;
        p->error = EBADMSG;
        return 16;
      }
    }
    p->reads.fetch_add(1);
    usleep(500);
  }
  return close(fd) == 0 ? 0 : 17;
}

class Upgrade : public DaemonTest {
 protected:
  static constexpr int kVolumes = 3;

  void SetUp() override {
    DaemonTest::SetUp();
    shared_ = static_cast<Shared*>(
        mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(shared_, MAP_FAILED);
    new (shared_) Shared();
  }
  void TearDown() override {
    if (shared_ != nullptr) shared_->stop = true;
    unsetenv("CLAIMFS_STOP_INTENT");
    unsetenv("CLAIMFS_CRASH_AT");
    if (!saved_binary_.empty()) setenv("CLAIMFSD_BINARY", saved_binary_.c_str(), 1);
    if (replaced_binary_ && saved_binary_.empty()) unsetenv("CLAIMFSD_BINARY");
    DaemonTest::TearDown();
    if (shared_ != nullptr) munmap(shared_, sizeof(Shared));
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

  void CreateClaims() {
    for (int i = 0; i < kVolumes; ++i) {
      ASSERT_TRUE(CreateDynamicClaim("u" + std::to_string(i), "64Mi")) << i;
    }
  }
  void StartWorkload() {
    for (int i = 0; i < kVolumes; ++i) {
      std::string path = MountPath("u" + std::to_string(i)) + "/records";
      Progress* w = &shared_->writers[i];
      Progress* r = &shared_->readers[i];
      const std::atomic<bool>* stop = &shared_->stop;
      children_.push_back(SpawnFunction([=] { return Writer(path, w, stop); }));
      children_.push_back(SpawnFunction([=] { return Reader(path, r, stop); }));
    }
  }
  bool Progressed(const std::vector<uint64_t>& since, uint64_t more,
                  std::chrono::milliseconds timeout) {
    return WaitFor(
        [&] {
          for (int i = 0; i < kVolumes; ++i) {
            if (shared_->writers[i].fsynced < since[i] + more) return false;
          }
          return true;
        },
        timeout);
  }
  std::vector<uint64_t> Counts() {
    std::vector<uint64_t> out;
    for (int i = 0; i < kVolumes; ++i) out.push_back(shared_->writers[i].fsynced);
    return out;
  }
  std::string Errors() {
    std::string out;
    for (int i = 0; i < kVolumes; ++i) {
      for (const Progress* p : {&shared_->writers[i], &shared_->readers[i]}) {
        if (p->error != 0) {
          out += (p == &shared_->writers[i] ? "writer " : "reader ") + std::to_string(i) +
                 ": call " + std::to_string(p->where.load()) +
                 " failed: " + std::strerror(p->error) + "\n";
        }
      }
    }
    return out;
  }
  // Stops the workload; every child exited 0; every fsync'd record reads back.
  void StopAndVerify() {
    shared_->stop = true;
    for (pid_t child : children_) {
      std::optional<int> status = WaitSpawned(child, 30s);
      ASSERT_TRUE(status.has_value()) << "a writer or reader hangs\n" << Errors();
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
          << "wait status " << *status << "\n"
          << Errors();
    }
    EXPECT_EQ(Errors(), "");
    for (int i = 0; i < kVolumes; ++i) {
      std::string path = MountPath("u" + std::to_string(i)) + "/records";
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
      struct stat st;
      ASSERT_EQ(fstat(fd, &st), 0);
      std::vector<unsigned char> data(static_cast<size_t>(st.st_size));
      ASSERT_EQ(pread(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
      close(fd);
      uint64_t fsynced = shared_->writers[i].fsynced;
      uint64_t records = data.size() / kRecord;
      EXPECT_EQ(data.size() % kRecord, 0u) << path;
      EXPECT_GE(records, fsynced) << path;
      EXPECT_LE(records, fsynced + 1) << path;
      for (uint64_t r = 0; r < records; ++r) {
        ASSERT_EQ(CheckRecord(&data[r * kRecord]), static_cast<int64_t>(r))
            << path << " record " << r;
      }
      EXPECT_GT(shared_->readers[i].reads.load(), 0u) << "reader " << i << " never read";
    }
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

  struct Shared {
    Progress writers[kVolumes];
    Progress readers[kVolumes];
    std::atomic<bool> stop{false};
  };
  Shared* shared_ = nullptr;
  std::vector<pid_t> children_;
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
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase("u" + std::to_string(i)), "Bound");
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
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase("u" + std::to_string(i)), "Bound");
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
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase("u" + std::to_string(i)), "Bound");
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
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase("u" + std::to_string(i)), "Bound");
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
