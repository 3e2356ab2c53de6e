// A claimfsd pool on btrfs with quotas on (issue 11): each dynamic volume is a subvolume whose
// qgroup limit is the claim's size, enforced by the kernel at the call (FUSE passthrough);
// expansion raises the limit live, a shrink below usage is refused, Delete removes the
// subvolume.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kMiB = 1024 * 1024;

class KernelPoolTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (access("/dev/loop-control", F_OK) != 0) GTEST_SKIP() << "no loop devices here";
    RunResult r = RunShell("mkdir -p " + pool_dir() + " && truncate -s 1G " + base() +
                               "/pool.img && mkfs.btrfs -q " + base() + "/pool.img && mount -o loop " +
                               base() + "/pool.img " + pool_dir(),
                           RunOptions{60s});
    ASSERT_TRUE(r.Succeeded()) << r.Describe();
    pool_mounted_ = true;
    r = RunShell("btrfs quota enable " + pool_dir() + " && btrfs quota rescan -w " + pool_dir(),
                 RunOptions{60s});
    ASSERT_TRUE(r.Succeeded()) << r.Describe();
    ASSERT_TRUE(StartDaemon());
  }

  void TearDown() override {
    if (DaemonRunning()) {
      EXPECT_TRUE(StopDaemon());
    }
    if (pool_mounted_) {
      RunResult r = it::Run({"umount", pool_dir()});
      if (!r.Succeeded()) r = it::Run({"umount", "-l", pool_dir()});
      EXPECT_TRUE(r.Succeeded()) << r.Describe();
    }
    DaemonTest::TearDown();
  }

  bool pool_mounted_ = false;
};

TEST_F(KernelPoolTest, ClaimIsASubvolumeLimitedByTheKernelGrowsLiveAndIsDeleted) {
  ASSERT_TRUE(CreateDynamicClaim("data", "64Mi"));
  std::string volume = VolumeOf("data");
  std::string source = pool_dir() + "/" + volume;
  struct stat st;
  ASSERT_EQ(stat(source.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_ino, 256u) << "the volume's root must be a btrfs subvolume";
  EXPECT_EQ(st.st_mode & 07777, 0770u);
  std::string mount = MountPath("data");
  EXPECT_EQ(StatFs(mount).total, 64 * kMiB);
  EXPECT_NE(DaemonLog().find("enforced by the kernel"), std::string::npos) << DaemonLog();

  // The mode shows in get -o wide, describe and /metrics.
  CommandResult wide = Claimctl({"get", "pv", "-o", "wide"});
  ASSERT_EQ(wide.exit_code, 0) << wide.Describe();
  EXPECT_NE(wide.out.find(" MODE\n"), std::string::npos) << wide.out;
  EXPECT_NE(wide.out.find(" kernel\n"), std::string::npos) << wide.out;
  CommandResult describe = Claimctl({"describe", "pv", volume});
  ASSERT_EQ(describe.exit_code, 0) << describe.Describe();
  EXPECT_NE(describe.out.find("kernel (btrfs qgroup 0/"), std::string::npos) << describe.out;
  EXPECT_NE(describe.out.find(", passthrough)"), std::string::npos) << describe.out;
  HttpResult metrics = Http("GET", "/metrics");
  EXPECT_NE(metrics.body.find("claimfs_volume_mode{namespace=\"default\",persistentvolumeclaim="
                              "\"data\",mode=\"kernel\",detail=\"btrfs qgroup 0/"),
            std::string::npos)
      << metrics.body;

  int fd = open((mount + "/big").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  std::string chunk(kMiB, 'x');
  uint64_t written = 0;
  int write_errno = 0;
  while (written < 100 * kMiB) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      write_errno = errno;
      break;
    }
    written += static_cast<uint64_t>(n);
  }
  EXPECT_EQ(write_errno, EDQUOT) << ErrnoName(write_errno) << " after " << written;
  EXPECT_LE(written, 64 * kMiB);
  EXPECT_GE(written, 60 * kMiB);

  // Shrinking below usage is refused by the API; growing raises the qgroup limit live.
  CommandResult r = Claimctl({"patch", "pvc", "data", "-p",
                              R"({"spec":{"resources":{"requests":{"storage":"32Mi"}}}})"});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  r = Claimctl({"patch", "pvc", "data", "-p",
                R"({"spec":{"resources":{"requests":{"storage":"128Mi"}}}})"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return StatFs(mount).total == 128 * kMiB; }, 5s))
      << "statvfs total " << StatFs(mount).total;
  while (written < 100 * kMiB) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    ASSERT_GT(n, 0) << "write after expansion at " << written << ": " << ErrnoName(errno);
    written += static_cast<uint64_t>(n);
  }
  EXPECT_EQ(close(fd), 0);

  // Delete: the subvolume goes.
  r = Claimctl({"delete", "pvc", "data"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return access(source.c_str(), F_OK) != 0; }, 15s))
      << DescribeEvents("PersistentVolume", volume);
  RunResult list = RunShell("btrfs subvolume list " + pool_dir());
  EXPECT_EQ(list.output.find(volume), std::string::npos) << list.output;
  // ...and so does its qgroup: none is left "<stale>" (btrfs keeps a deleted subvolume's).
  RunResult qgroups = RunShell("btrfs qgroup show " + pool_dir());
  ASSERT_TRUE(qgroups.Succeeded()) << qgroups.Describe();
  EXPECT_EQ(qgroups.output.find("stale"), std::string::npos) << qgroups.output;
}

}  // namespace
}  // namespace claimfs::it
