#include "daemon/open_files_workload.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <optional>

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
  uint32_t sum = Checksum(out, 60);
  std::memcpy(out + 60, &sum, sizeof sum);
}

// The index of a record whose checksum holds, or -1.
int64_t CheckRecord(const unsigned char* in) {
  uint32_t sum;
  std::memcpy(&sum, in + 60, sizeof sum);
  if (sum != Checksum(in, 60)) return -1;
  uint64_t index;
  std::memcpy(&index, in, sizeof index);
  return static_cast<int64_t>(index);
}

// A forked workload child keeps none of the test's fds: a fake systemd's store holds FUSE
// connections, and a program using a volume holds none of those.
void CloseInheritedFds() { syscall(SYS_close_range, 3, ~0U, 0); }

}  // namespace

void OpenFilesWorkloadTest::SetUp() {
  DaemonTest::SetUp();
  void* memory =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  shared_ = new (memory) Shared();
}

void OpenFilesWorkloadTest::TearDown() {
  if (shared_ != nullptr) shared_->stop = true;
  DaemonTest::TearDown();  // kills children still running
  if (shared_ != nullptr) munmap(shared_, sizeof(Shared));
  shared_ = nullptr;
}

void OpenFilesWorkloadTest::CreateClaims() {
  for (int i = 0; i < kVolumes; ++i) ASSERT_TRUE(CreateDynamicClaim(ClaimName(i), "64Mi")) << i;
}

int OpenFilesWorkloadTest::Writer(const std::string& path, Progress* p,
                                  const std::atomic<bool>* stop) {
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

int OpenFilesWorkloadTest::Reader(const std::string& path, Progress* p,
                                  const std::atomic<bool>* stop) {
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

void OpenFilesWorkloadTest::StartWorkload() {
  for (int i = 0; i < kVolumes; ++i) {
    std::string path = MountPath(ClaimName(i)) + "/records";
    Progress* w = &shared_->writers[i];
    Progress* r = &shared_->readers[i];
    const std::atomic<bool>* stop = &shared_->stop;
    children_.push_back(SpawnFunction([=] { return Writer(path, w, stop); }));
    children_.push_back(SpawnFunction([=] { return Reader(path, r, stop); }));
  }
}

std::vector<uint64_t> OpenFilesWorkloadTest::Counts() const {
  std::vector<uint64_t> out;
  for (int i = 0; i < kVolumes; ++i) out.push_back(shared_->writers[i].fsynced);
  return out;
}

bool OpenFilesWorkloadTest::Progressed(const std::vector<uint64_t>& since, uint64_t more,
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

std::string OpenFilesWorkloadTest::Errors() const {
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

void OpenFilesWorkloadTest::StopAndVerify() {
  shared_->stop = true;
  for (pid_t child : children_) {
    std::optional<int> status = WaitSpawned(child, 30s);
    ASSERT_TRUE(status.has_value()) << "a writer or reader hangs\n" << Errors();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "wait status " << *status << "\n"
        << Errors();
  }
  children_.clear();
  EXPECT_EQ(Errors(), "");
  for (int i = 0; i < kVolumes; ++i) {
    std::string path = MountPath(ClaimName(i)) + "/records";
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
      ASSERT_EQ(CheckRecord(&data[r * kRecord]), static_cast<int64_t>(r))
          << path << " record " << r;
    }
    EXPECT_GT(shared_->readers[i].reads.load(), 0u) << "reader " << i << " never read";
  }
}

}  // namespace claimfs::it
