// Volumes outlive the processes that serve them (issue 10): writers holding open descriptors
// append checksummed records with fsync, readers keep files open and check what they read, while
// the serving process is killed at random moments and the whole service is killed and started
// again through systemd's fd store (the test double of tests/integration/handoff). Every program
// must see no error at all, every fsync'd record must read back, and nothing may reach the host
// disk below the mount root.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/daemon_fixture.h"
#include "handoff/fake_systemd.h"

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

class Torture : public DaemonTest {
 protected:
  static constexpr int kVolumes = 4;

  void SetUp() override {
    DaemonTest::SetUp();
    shared_ = static_cast<Shared*>(
        mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(shared_, MAP_FAILED);
    new (shared_) Shared();
  }
  void TearDown() override {
    if (shared_ != nullptr) shared_->stop = true;
    DaemonTest::TearDown();
    if (shared_ != nullptr) munmap(shared_, sizeof(Shared));
  }

  void CreateClaims() {
    for (int i = 0; i < kVolumes; ++i) {
      ASSERT_TRUE(CreateDynamicClaim("t" + std::to_string(i), "64Mi")) << i;
    }
  }

  void StartWorkload() {
    for (int i = 0; i < kVolumes; ++i) {
      std::string path = MountPath("t" + std::to_string(i)) + "/records";
      Progress* w = &shared_->writers[i];
      Progress* r = &shared_->readers[i];
      const std::atomic<bool>* stop = &shared_->stop;
      children_.push_back(SpawnFunction([=] { return Writer(path, w, stop); }));
      children_.push_back(SpawnFunction([=] { return Reader(path, r, stop); }));
    }
  }

  // True once every writer has fsync'd `more` records since `since` (its counts then).
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
                 ": call " + std::to_string(p->where.load()) + " failed: " +
                 std::strerror(p->error) + "\n";
        }
      }
    }
    return out;
  }

  // Stops the workload; every child must have exited 0; every fsync'd record reads back.
  void StopAndVerify() {
    shared_->stop = true;
    for (pid_t child : children_) {
      std::optional<int> status = WaitSpawned(child, 30s);
      ASSERT_TRUE(status.has_value()) << "a writer or reader hangs\n" << Errors();
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
          << "wait status " << *status << "\n" << Errors();
    }
    EXPECT_EQ(Errors(), "");
    for (int i = 0; i < kVolumes; ++i) {
      std::string path = MountPath("t" + std::to_string(i)) + "/records";
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
      // The last record may have been written and not yet counted when the writer stopped.
      EXPECT_GE(records, fsynced) << path;
      EXPECT_LE(records, fsynced + 1) << path;
      for (uint64_t r = 0; r < records; ++r) {
        ASSERT_EQ(CheckRecord(&data[r * kRecord]), static_cast<int64_t>(r)) << path << " record " << r;
      }
      EXPECT_GT(shared_->readers[i].reads.load(), 0u) << "reader " << i << " never read";
    }
  }

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

  struct Shared {
    Progress writers[kVolumes];
    Progress readers[kVolumes];
    std::atomic<bool> stop{false};
  };
  Shared* shared_ = nullptr;
  std::vector<pid_t> children_;

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
    EXPECT_EQ(ClaimPhase("t" + std::to_string(i)), "Bound");
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
  const std::string log = dir + "/claimfsd.log";
  int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(log_fd, 0);
  auto daemon_log = [&] {
    std::ifstream in(log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1",
                                         ClaimfsdBinary(), "--data-dir", data_dir()};
  auto start = [&] {
    size_t seen = systemd.Notifications().size();
    if (systemd.StartMain(argv, {}, log_fd) <= 0) return false;
    return systemd.WaitForNotification(
        [&, n = size_t{0}](const FakeSystemd::Notification& m) mutable {
          return n++ >= seen && m.Has("READY=1");
        },
        30s);
  };
  ASSERT_TRUE(start()) << daemon_log();
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
    ASSERT_TRUE(start()) << "restart " << round << "\n" << daemon_log();
    ASSERT_TRUE(Progressed(at_kill, 5, 30s)) << "restart " << round << "\n" << Errors();
    ASSERT_EQ(Errors(), "") << "restart " << round;
  }
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) {
    EXPECT_EQ(ClaimPhase("t" + std::to_string(i)), "Bound");
  }
  ExpectNothingBelowTheMountRoot();
  // A manual stop unmounts everything and leaves no process and nothing in the store.
  int status = systemd.StopMain(FakeSystemd::Exit::kManualStop, 30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_TRUE(WaitFor([&] { return ServerProcesses().empty() && HolderProcesses().empty(); }, 10s));
  EXPECT_TRUE(VolumeMountsUnder(data_dir()).empty());
  close(log_fd);
}

}  // namespace
}  // namespace claimfs::it
