// Kernel-enforced volumes (issue 11; docs/dataplane.md section 9): on a btrfs subvolume with
// quotas on, the capacity is the subvolume's qgroup limit and every regular-file open is a FUSE
// passthrough open, so the kernel does the I/O and refuses a write past the limit at the call.
// Each test makes its own btrfs: a sparse image, mkfs.btrfs, mount -o loop, quota enable.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/fs/server_pool.h"
#include "claimfs/fs/volume.h"
#include "claimfs/limits/limit_backend.h"
#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using claimfs::fs::Volume;
using claimfs::fs::VolumeOptions;

constexpr uint64_t kMi = 1024 * 1024;
constexpr uint64_t kCapacity = 64 * kMi;
constexpr uid_t kUser = 1000;
constexpr gid_t kGroup = 1000;

// Writes 1 MiB chunks to `path` until a write fails; returns the bytes written and the errno.
std::pair<uint64_t, int> FillUntilRefused(const std::string& path, uint64_t at_most) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return {0, errno};
  std::string chunk(kMi, 'x');
  uint64_t total = 0;
  int err = 0;
  while (total < at_most) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      err = errno;
      break;
    }
    total += static_cast<uint64_t>(n);
  }
  close(fd);
  return {total, err};
}

class KernelMode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "tests kernel-mode volumes (native mode)";
    if (access("/dev/loop-control", F_OK) != 0) GTEST_SKIP() << "no loop devices here";
    base_ = MakeTempDir("claimfs-it-btrfs");
    ASSERT_FALSE(base_.empty());
    btrfs_ = base_ + "/btrfs";
    ASSERT_EQ(mkdir(btrfs_.c_str(), 0755), 0);
    Sh("truncate -s 1G " + base_ + "/image && mkfs.btrfs -q " + base_ + "/image");
    RunResult r = it::Run({"mount", "-o", "loop", base_ + "/image", btrfs_});
    ASSERT_TRUE(r.Succeeded()) << "mount -o loop: " << r.Describe();
    btrfs_mounted_ = true;
    // Enabling starts a rescan; until it ends the qgroups are marked inconsistent.
    Sh("btrfs quota enable " + btrfs_ + " && btrfs quota rescan -w " + btrfs_);
    watchdog_ = std::make_unique<Watchdog>(120s, [this] {
      fprintf(stderr, "watchdog: test hung; detaching mounts and aborting\n");
      for (const std::string& m : mount_points_) umount2(m.c_str(), MNT_DETACH);
      abort();
    });
  }

  void TearDown() override {
    for (auto& v : volumes_) v->Stop();
    volumes_.clear();
    pool_.reset();
    servers_.clear();
    watchdog_.reset();
    for (const std::string& m : mount_points_) {
      EXPECT_EQ(ForceUnmount(m), "");
    }
    if (btrfs_mounted_) {
      RunResult r = it::Run({"umount", btrfs_});
      if (!r.Succeeded()) r = it::Run({"umount", "-l", btrfs_});
      EXPECT_TRUE(r.Succeeded()) << r.Describe();
    }
    if (!base_.empty()) {
      EXPECT_EQ(RemoveTree(base_), "");
    }
  }

  // Runs a shell command that must succeed.
  void Sh(const std::string& script) {
    RunResult r = RunShell(script, RunOptions{60s});
    ASSERT_TRUE(r.Succeeded()) << script << ": " << r.Describe();
  }
  std::string Subvolume(const std::string& name) {
    std::string path = btrfs_ + "/" + name;
    Sh("btrfs -q subvolume create " + path);
    return path;
  }
  std::string MountPoint(const std::string& name) {
    std::string path = base_ + "/" + name + "-mnt";
    EXPECT_EQ(mkdir(path.c_str(), 0755), 0);
    mount_points_.push_back(path);
    return path;
  }

  // Mounts `source` with the library, served by the fixture's pool (whose counters the tests
  // read).
  Volume* MountLibrary(const std::string& source, std::optional<uint64_t> capacity,
                       const std::string& name = "vol") {
    if (!pool_) {
      auto pool = fs::ServerPool::Create(4);
      EXPECT_TRUE(pool.ok()) << pool.status().ToString();
      if (!pool.ok()) return nullptr;
      pool_ = std::move(*pool);
    }
    VolumeOptions o;
    o.source = source;
    o.mountpoint = MountPoint(name);
    o.capacity_bytes = capacity;
    o.allow_other = true;  // the set-id test writes as another user
    auto v = Volume::Mount(o);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (!v.ok()) return nullptr;
    Status s = (*v)->Start(pool_.get());
    EXPECT_TRUE(s.ok()) << s.ToString();
    volumes_.push_back(std::move(*v));
    return volumes_.back().get();
  }

  uint64_t OpCount(const std::string& op) {
    for (const fs::OperationStats& s : pool_->Stats()) {
      if (s.operation == op) return s.count;
    }
    return 0;
  }

  std::string base_, btrfs_;
  bool btrfs_mounted_ = false;
  std::vector<std::string> mount_points_;
  std::unique_ptr<fs::ServerPool> pool_;  // outlives volumes_: TearDown stops them first
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::vector<std::unique_ptr<ClaimfsServer>> servers_;
  std::unique_ptr<Watchdog> watchdog_;
};

// Issue 11's "done when": dd past 64 MiB fails at the call with the kernel's EDQUOT, df shows
// exactly 64 MiB, through the library and through `claimfs SRC MNT -o capacity=64Mi`.
TEST_F(KernelMode, DdPast64MiBFailsAtTheCallAndDfShows64MiB) {
  Volume* v = MountLibrary(Subvolume("lib"), kCapacity);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->mode(), "kernel (btrfs qgroup 0/256, passthrough)");
  std::string root = mount_points_.back();
  FsUsage before = StatFs(root);
  EXPECT_EQ(before.total, kCapacity);
  auto [written, err] = FillUntilRefused(root + "/big", 100 * kMi);
  EXPECT_EQ(err, EDQUOT) << ErrnoName(err);
  EXPECT_LE(written, kCapacity);
  EXPECT_GE(written, kCapacity - 4 * kMi);
  FsUsage after = StatFs(root);
  EXPECT_EQ(after.total, kCapacity);
  EXPECT_GE(after.used(), written);
  EXPECT_LE(after.free, kCapacity - written);
  EXPECT_EQ(OpCount("write"), 0u) << "the writes must not reach the daemon";
  EXPECT_EQ(v->Usage().capacity_bytes, kCapacity);

  // The real program.
  std::string source = Subvolume("program");
  std::string mnt = MountPoint("program");
  std::unique_ptr<ClaimfsServer> server;
  ASSERT_TRUE(ClaimfsServer::Start(source, mnt, ServerOptions{"capacity=64Mi"},
                                   base_ + "/claimfs.log", &server));
  servers_.push_back(std::move(server));
  RunResult dd = RunShell("dd if=/dev/zero of=" + mnt + "/f bs=1M count=100 2>&1; df -B1 " + mnt);
  EXPECT_FALSE(dd.output.find("Disk quota exceeded") == std::string::npos) << dd.output;
  EXPECT_FALSE(dd.output.find(" 67108864 ") == std::string::npos) << dd.output;
  EXPECT_EQ(StatFs(mnt).total, kCapacity);
  struct stat st;
  ASSERT_EQ(stat((mnt + "/f").c_str(), &st), 0);
  EXPECT_LE(static_cast<uint64_t>(st.st_size), kCapacity);
  EXPECT_NE(servers_.back()->Log().find("enforced by the kernel"), std::string::npos)
      << servers_.back()->Log();
}

// Reads, writes and mmap go from the kernel to the backing file: the daemon sees opens only.
TEST_F(KernelMode, NoReadOrWriteReachesTheDaemon) {
  std::string source = Subvolume("vol");
  Volume* v = MountLibrary(source, kCapacity);
  ASSERT_NE(v, nullptr);
  std::string root = mount_points_.back();
  std::string data(8 * kMi, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  ASSERT_TRUE(WriteFile(root + "/file", data));
  EXPECT_EQ(ReadFile(root + "/file"), data);
  EXPECT_EQ(ReadFile(source + "/file"), data) << "the data is in the backing file";
  int fd = open((root + "/file").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* map = mmap(nullptr, kMi, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(memcmp(map, data.data(), kMi), 0);
  memcpy(map, "mapped", 6);
  ASSERT_EQ(msync(map, kMi, MS_SYNC), 0);
  munmap(map, kMi);
  char buf[6];
  ASSERT_EQ(pread(fd, buf, 6, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "mapped");
  ASSERT_EQ(pwrite(fd, "direct", 6, 4 * kMi), 6);
  close(fd);
  EXPECT_EQ(ReadFile(source + "/file").substr(4 * kMi, 6), "direct");
  EXPECT_EQ(OpCount("read"), 0u);
  EXPECT_EQ(OpCount("write"), 0u);
  EXPECT_GE(OpCount("open") + OpCount("create"), 3u);
}

// The kernel fails every open of an inode in passthrough that does not carry its backing id
// (EIO): concurrent opens, hard links and opens after the last close all work.
TEST_F(KernelMode, EveryOpenOfAnInodeIsPassthrough) {
  Volume* v = MountLibrary(Subvolume("vol"), kCapacity);
  ASSERT_NE(v, nullptr);
  std::string root = mount_points_.back();
  ASSERT_TRUE(WriteFile(root + "/a", "0123456789"));
  ASSERT_EQ(link((root + "/a").c_str(), (root + "/b").c_str()), 0);
  int first = open((root + "/a").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(first, 0) << strerror(errno);
  int second = open((root + "/b").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(second, 0) << strerror(errno);
  ASSERT_EQ(pwrite(first, "AB", 2, 0), 2);
  char buf[10];
  ASSERT_EQ(pread(second, buf, 10, 0), 10) << strerror(errno);
  EXPECT_EQ(std::string(buf, 10), "AB23456789");
  close(first);
  int third = open((root + "/a").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(third, 0) << strerror(errno);
  ASSERT_EQ(write(third, "!", 1), 1);
  close(third);
  close(second);
  // After the last close the node has no backing id; the next open gets a fresh one.
  EXPECT_EQ(ReadFile(root + "/b"), "AB23456789!");
  // Many threads opening one inode at once.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int fd = open((root + (t % 2 ? "/a" : "/b")).c_str(), O_RDWR | O_CLOEXEC);
        char c;
        if (fd < 0 || pread(fd, &c, 1, 0) != 1) failures.fetch_add(1);
        if (fd >= 0) close(fd);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(OpCount("read"), 0u);
}

// The set-id rule of docs/dataplane.md 9.3: a passthrough write runs with the daemon's
// credentials and would leave S_ISUID/S_ISGID, so set-id files are opened with direct I/O and
// the daemon clears the bits on a write by another user.
TEST_F(KernelMode, WriteByNonOwnerClearsSetuidBit) {
  Volume* v = MountLibrary(Subvolume("vol"), kCapacity);
  ASSERT_NE(v, nullptr);
  std::string root = mount_points_.back();
  for (const char* name : {"suid", "sgid", "truncated", "opened-trunc"}) {
    ASSERT_TRUE(WriteFile(root + "/" + name, "data"));
  }
  ASSERT_EQ(chmod((root + "/suid").c_str(), 04777), 0);
  ASSERT_EQ(chmod((root + "/sgid").c_str(), 02777), 0);
  ASSERT_EQ(chmod((root + "/truncated").c_str(), 06777), 0);
  ASSERT_EQ(chmod((root + "/opened-trunc").c_str(), 04777), 0);
  ChildResult r = RunInChild(
      [&root] {
        std::string out;
        for (const char* name : {"suid", "sgid"}) {
          int fd = open((root + "/" + name).c_str(), O_WRONLY | O_CLOEXEC);
          if (fd < 0) return std::string(name) + " open " + ErrnoName(errno);
          if (write(fd, "more", 4) != 4) out += std::string(name) + " write " + ErrnoName(errno);
          close(fd);
        }
        if (truncate((root + "/truncated").c_str(), 1) != 0) out += " truncate " + ErrnoName(errno);
        int fd = open((root + "/opened-trunc").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) return out + " open(O_TRUNC) " + ErrnoName(errno);
        close(fd);
        return out;
      },
      Credentials{kUser, kGroup, {}});
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.output, "");
  struct stat st;
  for (const char* name : {"suid", "sgid", "truncated", "opened-trunc"}) {
    ASSERT_EQ(stat((root + "/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0777u) << name;
  }
  EXPECT_EQ(ReadFile(root + "/suid"), "more");
  // Root's writes keep them (CAP_FSETID), as on any file system.
  ASSERT_EQ(chmod((root + "/suid").c_str(), 04755), 0);
  int fd = open((root + "/suid").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "x", 1), 1);
  close(fd);
  ASSERT_EQ(stat((root + "/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
}

// Without FUSE_HANDLE_KILLPRIV_V2 the kernel asks for security.capability before every write,
// passthrough or not (one round trip per write: the 4 KiB random-write row).
TEST_F(KernelMode, SmallWritesSendNoGetxattr) {
  Volume* v = MountLibrary(Subvolume("vol"), kCapacity);
  ASSERT_NE(v, nullptr);
  std::string root = mount_points_.back();
  int fd = open((root + "/f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  uint64_t before = OpCount("getxattr");
  char block[4096] = {};
  for (int i = 0; i < 100; ++i) ASSERT_EQ(pwrite(fd, block, sizeof block, i * 8192), 4096);
  close(fd);
  EXPECT_LE(OpCount("getxattr") - before, 2u);
  EXPECT_EQ(OpCount("write"), 0u);
}

// Quotas off: the volume is accounted by the daemon, and says why.
TEST_F(KernelMode, FallbackReasonShownWhenQuotasOff) {
  std::string source = Subvolume("vol");
  Sh("btrfs quota disable " + btrfs_);
  Volume* v = MountLibrary(source, kCapacity);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->mode(), "accounted (btrfs quotas are off (btrfs quota enable))");
  std::string root = mount_points_.back();
  EXPECT_EQ(StatFs(root).total, kCapacity);
  auto [written, err] = FillUntilRefused(root + "/big", 100 * kMi);
  EXPECT_EQ(err, ENOSPC) << "the daemon's quota errno: " << ErrnoName(err);
  EXPECT_LE(written, kCapacity);
  EXPECT_GT(OpCount("write"), 0u);

  std::string mnt = MountPoint("program");
  std::unique_ptr<ClaimfsServer> server;
  ASSERT_TRUE(ClaimfsServer::Start(Subvolume("program"), mnt, ServerOptions{"capacity=64Mi"},
                                   base_ + "/claimfs.log", &server));
  EXPECT_NE(server->Log().find("not the kernel: btrfs quotas are off"), std::string::npos)
      << server->Log();
  servers_.push_back(std::move(server));
}

// Hostile sources: each keeps a working limit, accounted by the daemon, with the reason.
TEST_F(KernelMode, PlainDirectoryOnBtrfsIsAccounted) {
  std::string dir = btrfs_ + "/plain";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  Volume* v = MountLibrary(dir, kCapacity);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->mode(), "accounted (a plain directory on btrfs, not a subvolume)");
  auto [written, err] = FillUntilRefused(mount_points_.back() + "/big", 100 * kMi);
  EXPECT_EQ(err, ENOSPC) << ErrnoName(err);
  EXPECT_LE(written, kCapacity);
}

TEST_F(KernelMode, TopLevelSubvolumeIsAccounted) {
  Volume* v = MountLibrary(btrfs_, 8 * kMi);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->mode(),
            "accounted (the file system's top-level subvolume, which has no limit of its own)");
}

// A subvolume whose qgroup belongs to a higher-level qgroup shared with another subvolume: the
// parent's limit could refuse writes that df says fit, so the daemon accounts the volume.
TEST_F(KernelMode, SubvolumeInASharedQgroupIsAccounted) {
  std::string a = Subvolume("a");
  Subvolume("b");
  Sh("btrfs qgroup create 1/100 " + btrfs_ + " && btrfs qgroup assign 0/256 1/100 " + btrfs_ +
     " && btrfs qgroup assign 0/257 1/100 " + btrfs_ + " && btrfs qgroup limit 16M 1/100 " +
     btrfs_);
  Volume* v = MountLibrary(a, kCapacity);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->mode(),
            "accounted (qgroup 0/256 is shared: it belongs to qgroup 1/100, whose limit the "
            "volume's size would not show)");
  RunResult show = RunShell("btrfs qgroup show -r " + btrfs_);
  EXPECT_EQ(show.output.find("64.00MiB"), std::string::npos)
      << "the subvolume's own limit must be left alone: " << show.output;
}

// A snapshot shares its source's extents: referenced counts them fully, as a disk would, so a
// 10 MiB snapshot in a 64 MiB volume has 54 MiB left, and its source is not touched.
TEST_F(KernelMode, SnapshotCountsTheExtentsItShares) {
  std::string origin = Subvolume("origin");
  ASSERT_TRUE(WriteFile(origin + "/data", std::string(10 * kMi, 'o')));
  Sh("sync && btrfs -q subvolume snapshot " + origin + " " + btrfs_ + "/snap && sync");
  Volume* v = MountLibrary(btrfs_ + "/snap", kCapacity);
  ASSERT_NE(v, nullptr);
  std::string root = mount_points_.back();
  EXPECT_GE(StatFs(root).used(), 10 * kMi);
  auto [written, err] = FillUntilRefused(root + "/more", 100 * kMi);
  EXPECT_EQ(err, EDQUOT) << ErrnoName(err);
  EXPECT_LE(written, kCapacity - 10 * kMi);
  EXPECT_EQ(ReadFile(origin + "/data"), std::string(10 * kMi, 'o'));
  EXPECT_EQ(ReadFile(root + "/data"), std::string(10 * kMi, 'o'));
}

// capacity=0 is refused before anything is mounted, and an existing limit stays as it was.
TEST_F(KernelMode, CapacityZeroIsRefusedAndLeavesTheLimitAlone) {
  std::string source = Subvolume("vol");
  Sh("btrfs qgroup limit 32M " + source);
  std::string mnt = MountPoint("zero");
  RunResult r = it::Run({ClaimfsBinary(), source, mnt, "-f", "-o", "capacity=0"});
  EXPECT_EQ(r.ExitCode(), 2) << r.Describe();
  EXPECT_NE(r.output.find("capacity must be greater than zero"), std::string::npos) << r.output;
  EXPECT_FALSE(FindMount(mnt).has_value());
  std::ifstream in("/sys/fs/btrfs/" +
                   RunShell("findmnt -no UUID " + btrfs_).output.substr(0, 36) +
                   "/qgroups/0_256/max_referenced");
  uint64_t limit = 0;
  in >> limit;
  EXPECT_EQ(limit, 32 * kMi);
}

// What the daemon still serves in kernel mode, and POSIX behaviour through passthrough opens.
TEST_F(KernelMode, DaemonServedOpsMapEdquotToTheQuotaErrno) {
  Volume* v = MountLibrary(Subvolume("vol"), 16 * kMi);
  ASSERT_NE(v, nullptr);
  std::string root = mount_points_.back();
  int fd = open((root + "/f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  // fallocate is served by the daemon: EDQUOT from btrfs becomes the volume's ENOSPC.
  EXPECT_EQ(fallocate(fd, 0, 0, 32 * kMi), -1);
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  EXPECT_EQ(fallocate(fd, 0, 0, 4 * kMi), 0) << ErrnoName(errno);
  EXPECT_EQ(ftruncate(fd, 1), 0);
  EXPECT_EQ(ftruncate(fd, 100 * kMi), 0) << "a sparse extension allocates nothing";
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(100 * kMi));
  EXPECT_EQ(fsync(fd), 0);
  close(fd);
  EXPECT_GE(v->Usage().quota_rejections, 1u);
  // Unlinked while open: the open file keeps working.
  fd = open((root + "/g").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink((root + "/g").c_str()), 0);
  ASSERT_EQ(pwrite(fd, "abc", 3, 0), 3);
  char buf[3];
  ASSERT_EQ(pread(fd, buf, 3, 0), 3);
  EXPECT_EQ(std::string(buf, 3), "abc");
  close(fd);
  // O_DIRECT through passthrough.
  fd = open((root + "/d").c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << ErrnoName(errno);
  void* aligned = nullptr;
  ASSERT_EQ(posix_memalign(&aligned, 4096, 4096), 0);
  memset(aligned, 'd', 4096);
  EXPECT_EQ(pwrite(fd, aligned, 4096, 0), 4096) << ErrnoName(errno);
  EXPECT_EQ(pread(fd, aligned, 4096, 0), 4096) << ErrnoName(errno);
  free(aligned);
  close(fd);
  EXPECT_EQ(OpCount("write"), 0u);
}

// `btrfs quota disable` under a mounted kernel-mode volume takes the qgroup and its limit away:
// df kept failing ENOENT, usage showed 0 and nothing said why. Now df shows the capacity and the
// last usage, the mode and one log line say the limit is gone, and quotas on again bring the
// limit back.
TEST_F(KernelMode, QuotaDisableAfterMountKeepsDfAndSaysTheLimitIsGone) {
  Volume* v = MountLibrary(Subvolume("vol"), kCapacity);
  ASSERT_NE(v, nullptr);
  std::string root = mount_points_.back();
  Sh("dd if=/dev/zero of=" + root + "/f bs=1M count=8 conv=fsync status=none && sync");
  ASSERT_GE(StatFs(root).used(), 8 * kMi);

  std::string mnt = MountPoint("program");
  std::unique_ptr<ClaimfsServer> server;
  ASSERT_TRUE(ClaimfsServer::Start(Subvolume("program"), mnt, ServerOptions{"capacity=64Mi"},
                                   base_ + "/claimfs.log", &server));
  servers_.push_back(std::move(server));
  Sh("dd if=/dev/zero of=" + mnt + "/f bs=1M count=4 conv=fsync status=none && sync");
  ASSERT_GE(StatFs(mnt).used(), 4 * kMi);

  Sh("btrfs quota disable " + btrfs_);
  for (const std::string& m : {root, mnt, root, mnt}) {
    struct statvfs st;
    ASSERT_EQ(statvfs(m.c_str(), &st), 0) << m << ": " << ErrnoName(errno);
  }
  FsUsage after = StatFs(root);
  EXPECT_EQ(after.total, kCapacity);
  EXPECT_GE(after.used(), 8 * kMi);
  EXPECT_GE(StatFs(mnt).used(), 4 * kMi);
  EXPECT_EQ(v->mode(),
            "kernel (btrfs qgroup 0/256, limit gone: btrfs quotas were turned off, passthrough)");
  fs::VolumeUsage usage = v->Usage();
  EXPECT_GE(usage.used_bytes, 8 * kMi);
  EXPECT_EQ(usage.capacity_bytes, kCapacity);
  RunResult df = RunShell("df -B1 " + mnt);
  EXPECT_TRUE(df.Succeeded()) << df.Describe();
  std::string log = servers_.back()->Log();
  size_t first = log.find("btrfs quotas were turned off");
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("btrfs quotas were turned off", first + 1), std::string::npos)
      << "one line, not one per statfs:\n"
      << log;

  Sh("btrfs quota enable " + btrfs_ + " && btrfs quota rescan -w " + btrfs_);
  EXPECT_EQ(StatFs(root).total, kCapacity);
  EXPECT_EQ(v->mode(), "kernel (btrfs qgroup 0/256, passthrough)");
  auto [written, err] = FillUntilRefused(root + "/big", 100 * kMi);
  EXPECT_EQ(err, EDQUOT) << "the limit is set again: " << ErrnoName(err);
  EXPECT_LE(written, kCapacity);
}

// Deleting a kernel-mode volume removes its subvolume's qgroup too; a plain rmdir left
// 0/<id> behind as "<stale>" until btrfs dropped the subvolume, or for good when it kept it.
TEST_F(KernelMode, DestroyVolumeLeavesNoQgroupBehind) {
  int pool = open(btrfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(pool, 0);
  ASSERT_TRUE(limits::CreateSubvolume(pool, "vol").ok());
  Sh("dd if=/dev/zero of=" + btrfs_ + "/vol/f bs=1M count=4 status=none && sync && rm " + btrfs_ +
     "/vol/f && sync");
  ASSERT_NE(RunShell("btrfs qgroup show " + btrfs_).output.find("0/256"), std::string::npos);
  Status s = limits::DestroyVolume(pool, "vol");
  EXPECT_TRUE(s.ok()) << s.ToString();
  struct stat st;
  EXPECT_NE(lstat((btrfs_ + "/vol").c_str(), &st), 0);
  RunResult shown = RunShell("btrfs qgroup show " + btrfs_);
  EXPECT_EQ(shown.output.find("0/256"), std::string::npos) << shown.output;

  // A plain directory is just removed; a name that escapes the pool is refused.
  ASSERT_EQ(mkdir((btrfs_ + "/plain").c_str(), 0700), 0);
  EXPECT_TRUE(limits::DestroyVolume(pool, "plain").ok());
  EXPECT_NE(lstat((btrfs_ + "/plain").c_str(), &st), 0);
  EXPECT_EQ(limits::DestroyVolume(pool, "../x").code(), StatusCode::kInvalid);
  EXPECT_EQ(limits::DestroyVolume(pool, "..").code(), StatusCode::kInvalid);
  close(pool);
}

}  // namespace
}  // namespace claimfs::it
