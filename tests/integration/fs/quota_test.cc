// The quota (issue 2, Semantics: "usage = allocated bytes (st_blocks × 512 of every object, as
// du counts) and the inode count. Scanned at mount, then exact after every operation. Any
// operation that would take usage past the capacity fails with the quota errno at that call";
// and "statfs": f_blocks × f_frsize = capacity, f_bfree = f_bavail = capacity − usage).
//
// Exactness is tested with data writes, not with counts of creates: near full, the volume may
// refuse a new name while fewer than about two filesystem blocks are free (one for the object,
// one for directory growth), so every test creates its files before it fills the volume.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kKi = 1024;
constexpr uint64_t kMi = 1024 * 1024;
constexpr uint64_t kBlock = 4096;  // the backing ext4's block: the overshoot bound

class QuotaTest : public VolumeTest {
 protected:
  void SetUp() override {
    VolumeTest::SetUp();
    if (HasFatalFailure()) return;
    if (NativeMode()) GTEST_SKIP() << "quota semantics need a claimfs mount (native mode)";
  }

  uint64_t Used() { return StatFs(root()).used(); }
  uint64_t Free() {
    FsUsage u = StatFs(root());
    EXPECT_EQ(u.free, u.avail) << "f_bfree and f_bavail must agree";
    return u.free;
  }

  // statfs's used figure against du of the mount and of the backing directory.
  void ExpectDuAgrees(const std::string& context) {
    uint64_t used = Used();
    std::optional<uint64_t> du_mount = DuBytes(root());
    std::optional<uint64_t> du_source = DuBytes(source());
    ASSERT_TRUE(du_mount && du_source);
    EXPECT_EQ(*du_mount, used) << context << ": du -sB1 MOUNTPOINT vs statfs used";
    EXPECT_EQ(*du_source, used) << context << ": du -sB1 SOURCE vs statfs used";
  }

  int Create(const std::string& rel, int flags = O_RDWR) {
    int fd = open(P(rel).c_str(), O_CREAT | O_CLOEXEC | flags, 0644);
    EXPECT_GE(fd, 0) << "create " << rel << ": " << strerror(errno);
    return fd;
  }
};

std::string Bytes(size_t n, char c = 'q') { return std::string(n, c); }

// write() until it fails or `limit` bytes are written; the total and the final errno.
struct WriteOutcome {
  uint64_t total = 0;
  int err = 0;
  std::vector<ssize_t> returns;  // every write()'s return value
};
WriteOutcome WriteUntilError(int fd, size_t chunk, uint64_t limit) {
  WriteOutcome out;
  std::string buf = Bytes(chunk);
  while (out.total < limit) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, limit - out.total));
    ssize_t rv = write(fd, buf.data(), n);
    out.returns.push_back(rv);
    if (rv < 0) {
      out.err = errno;
      break;
    }
    out.total += static_cast<uint64_t>(rv);
    if (rv == 0) break;
  }
  return out;
}

// --- statfs ------------------------------------------------------------------------------------

struct CapacityCase {
  const char* option;
  uint64_t bytes;
  bool block_multiple;  // f_blocks × f_frsize can equal it exactly with 4 KiB blocks
};

// Stable test names in ctest (gtest prints unknown structs as bytes).
void PrintTo(const CapacityCase& c, std::ostream* os) { *os << c.option; }

class StatfsCapacityTest : public QuotaTest, public ::testing::WithParamInterface<CapacityCase> {};

TEST_P(StatfsCapacityTest, TotalIsTheCapacityAndFreeIsWhatIsLeft) {
  const CapacityCase& c = GetParam();
  ASSERT_NO_FATAL_FAILURE(MountVolume(std::string("capacity=") + c.option));
  FsUsage u = StatFs(root());
  if (c.block_multiple) {
    EXPECT_EQ(u.total, c.bytes) << "f_blocks × f_frsize (frsize " << u.frsize << ")";
  } else {
    EXPECT_LE(u.total, c.bytes);
    EXPECT_LT(c.bytes - std::min(c.bytes, u.total), u.frsize) << "f_blocks × f_frsize";
  }
  EXPECT_EQ(u.free, u.avail);
  EXPECT_LE(u.used(), 2 * kBlock) << "an empty volume uses its root directory, no more";
  ExpectDuAgrees("empty volume");
}

INSTANTIATE_TEST_SUITE_P(Quantities, StatfsCapacityTest,
                         ::testing::Values(CapacityCase{"64Mi", 64 * kMi, true},
                                           CapacityCase{"1Gi", 1024 * kMi, true},
                                           CapacityCase{"1.5Gi", 1536 * kMi, true},
                                           CapacityCase{"8388608", 8 * kMi, true},
                                           CapacityCase{"1G", 1000000000, false},
                                           CapacityCase{"500M", 500000000, false},
                                           CapacityCase{"1.5G", 1500000000, false}),
                         [](const ::testing::TestParamInfo<CapacityCase>& info) {
                           std::string s = info.param.option;
                           std::replace(s.begin(), s.end(), '.', '_');
                           return "Capacity" + s;
                         });

// --- the "Done when" scenario -----------------------------------------------------------------

TEST_F(QuotaTest, DdPast64MiStopsWithNoSpaceAt64MiAndRmFreesIt) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi"));
  FsUsage u = StatFs(root());
  EXPECT_EQ(u.total, 64 * kMi);
  uint64_t empty_free = Free();
  // dd if=/dev/zero of=MNT/f bs=1M count=100
  int fd = Create("f", O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  uint64_t free_before = Free();
  WriteOutcome w = WriteUntilError(fd, kMi, 100 * kMi);
  EXPECT_EQ(w.err, ENOSPC) << "dd must stop with No space left on device, got " << ErrnoName(w.err);
  EXPECT_LE(w.total, free_before);
  EXPECT_GE(w.total, free_before - 64 * kKi) << "stopped far short of the capacity";
  // Like a full disk: at most one short write, then the errno.
  ASSERT_GE(w.returns.size(), 2u);
  EXPECT_EQ(w.returns.back(), -1);
  for (size_t i = 0; i + 2 < w.returns.size(); ++i) {
    EXPECT_EQ(w.returns[i], static_cast<ssize_t>(kMi)) << "write #" << i;
  }
  EXPECT_EQ(fsync(fd), 0) << "an accepted write must not fail later: " << strerror(errno);
  EXPECT_EQ(close(fd), 0) << strerror(errno);
  struct stat st {};
  ASSERT_EQ(stat(P("f").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), w.total);
  EXPECT_LE(Used(), 64 * kMi);
  ExpectDuAgrees("full");
  // rm MNT/f
  ASSERT_EQ(unlink(P("f").c_str()), 0);
  EXPECT_EQ(Free(), empty_free) << "after rm all must be free again";
  ExpectDuAgrees("after rm");
}

// --- each quota path ---------------------------------------------------------------------------

TEST_F(QuotaTest, WriteFillsExactlyThenFailsAtTheCall) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  int fd = Create("f");
  ASSERT_GE(fd, 0);
  uint64_t free_before = Free();
  ASSERT_GT(free_before, 512 * kKi);
  std::string data = Bytes(free_before);
  EXPECT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(free_before))
      << "a write of exactly the free space must fit: " << strerror(errno);
  EXPECT_EQ(Free(), 0u);
  errno = 0;
  EXPECT_EQ(write(fd, "x", 1), -1) << "one byte past a full volume";
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  EXPECT_EQ(pwrite(fd, "x", 1, static_cast<off_t>(free_before + 10 * kBlock)), -1)
      << "a write into a hole past EOF needs a block";
  EXPECT_EQ(errno, ENOSPC);
  // Overwriting allocated blocks needs no space and must work when full.
  std::string over = Bytes(2 * kBlock, 'o');
  EXPECT_EQ(pwrite(fd, over.data(), over.size(), 4096), static_cast<ssize_t>(over.size()))
      << "overwrite in place when full: " << strerror(errno);
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(close(fd), 0);
  EXPECT_EQ(Used(), 1 * kMi);
  ExpectDuAgrees("full");
}

TEST_F(QuotaTest, WriteThatPartlyFitsReturnsTheShortCount) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  int fd = Create("f");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, Bytes(100000).data(), 100000), 100000);  // not block aligned
  uint64_t free_before = Free();
  // The partly used last block holds 100000 % 4096 more bytes for free.
  uint64_t fits = free_before + (kBlock - 100000 % kBlock);
  std::string data = Bytes(fits + 64 * kKi);
  errno = 0;
  ssize_t rv = write(fd, data.data(), data.size());
  EXPECT_EQ(rv, static_cast<ssize_t>(fits)) << "short count: " << strerror(errno);
  errno = 0;
  EXPECT_EQ(write(fd, data.data(), 10), -1);
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  EXPECT_EQ(close(fd), 0);
  struct stat st {};
  ASSERT_EQ(stat(P("f").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 100000 + std::max<ssize_t>(rv, 0));
  EXPECT_EQ(Free(), 0u);
  ExpectDuAgrees("after the short write");
}

TEST_F(QuotaTest, AcceptedWritesAreNeverLostNearFull) {
  // Proves that whatever write-back caching the volume uses keeps the quota at the call: every
  // write() that returned success is on disk after fsync, and fsync/close report nothing late.
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=2Mi"));
  for (size_t chunk : {size_t{100}, size_t{4096}, size_t{5000}}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    std::string name = "f" + std::to_string(chunk);
    int fd = Create(name, O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    WriteOutcome w = WriteUntilError(fd, chunk, 16 * kMi);
    EXPECT_EQ(w.err, ENOSPC) << ErrnoName(w.err);
    EXPECT_EQ(fsync(fd), 0) << "late error: " << strerror(errno);
    EXPECT_EQ(close(fd), 0) << "late error: " << strerror(errno);
    std::string content = ReadFile(P(name));
    EXPECT_EQ(content.size(), w.total) << "bytes accepted by write() vs bytes in the file";
    EXPECT_EQ(content, Bytes(w.total)) << "content differs";
    EXPECT_LE(Used(), 2 * kMi);
    ExpectDuAgrees("full");
    ASSERT_EQ(unlink(P(name).c_str()), 0);
  }
}

TEST_F(QuotaTest, FallocateBeyondFreeSpaceFailsAndAllocatesNothing) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  int fd = Create("f");
  ASSERT_GE(fd, 0);
  uint64_t used_before = Used();
  uint64_t free_before = Free();
  errno = 0;
  EXPECT_EQ(fallocate(fd, 0, 0, 2 * kMi), -1);
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * kMi), -1);
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_blocks, 0) << "a refused fallocate must not leave blocks behind";
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(Used(), used_before);
  // Exactly the free space fits.
  EXPECT_EQ(fallocate(fd, 0, 0, static_cast<off_t>(free_before)), 0) << strerror(errno);
  EXPECT_EQ(Free(), 0u);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(free_before), kBlock), -1);
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  // Re-allocating what is already allocated needs nothing.
  EXPECT_EQ(fallocate(fd, 0, 0, 64 * kKi), 0) << strerror(errno);
  // Punching a hole frees at once.
  EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 256 * kKi), 0);
  EXPECT_EQ(Free(), 256 * kKi);
  EXPECT_EQ(close(fd), 0);
  ExpectDuAgrees("after fallocate and punch");
}

TEST_F(QuotaTest, TruncateExtendsSparselyAndShrinkingFreesAtOnce) {
  // On ext4 (and XFS with project quotas) extending a file with truncate allocates nothing, so
  // it must succeed past the capacity; what allocates is writing into the hole, and that is
  // where the quota must stop it.
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  int fd = Create("f");
  ASSERT_GE(fd, 0);
  uint64_t used_before = Used();
  EXPECT_EQ(ftruncate(fd, 8 * kMi), 0) << strerror(errno);
  EXPECT_EQ(truncate(P("f").c_str(), 16 * kMi), 0) << strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(16 * kMi));
  EXPECT_EQ(st.st_blocks, 0);
  EXPECT_EQ(Used(), used_before);
  uint64_t free_before = Free();
  std::string data = Bytes(free_before + 64 * kKi);
  EXPECT_EQ(pwrite(fd, data.data(), data.size(), 4 * kMi), static_cast<ssize_t>(free_before))
      << "writing into the sparse range: " << strerror(errno);
  EXPECT_EQ(Free(), 0u);
  // Shrinking below the written range frees it immediately, both ways of truncating.
  EXPECT_EQ(ftruncate(fd, 4 * kMi + 256 * kKi), 0) << strerror(errno);
  EXPECT_EQ(Free(), free_before - 256 * kKi);
  EXPECT_EQ(truncate(P("f").c_str(), 4 * kMi), 0) << strerror(errno);
  EXPECT_EQ(Free(), free_before);
  EXPECT_EQ(close(fd), 0);
  ExpectDuAgrees("after truncate");
}

TEST_F(QuotaTest, CopyFileRangeStopsAtCapacity) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  constexpr size_t kSize = 400 * kKi;
  std::string data(kSize, '\0');
  for (size_t i = 0; i < kSize; ++i) data[i] = static_cast<char>('a' + i % 23);
  ASSERT_TRUE(WriteFile(P("a"), data));
  int in = open(P("a").c_str(), O_RDONLY);
  int b = Create("b");
  int c = Create("c");
  ASSERT_TRUE(in >= 0 && b >= 0 && c >= 0);
  // The first copy fits.
  loff_t off_in = 0, off_out = 0;
  size_t copied = 0;
  while (copied < kSize) {
    ssize_t rv = copy_file_range(in, &off_in, b, &off_out, kSize - copied, 0);
    ASSERT_GT(rv, 0) << "copy that fits: " << strerror(errno);
    copied += static_cast<size_t>(rv);
  }
  EXPECT_EQ(ReadFile(P("b")), data);
  uint64_t free_before = Free();
  ASSERT_LT(free_before, kSize);
  // The second does not: it fails at the call, or copies a part that fits and then fails.
  off_in = 0;
  off_out = 0;
  errno = 0;
  ssize_t rv = copy_file_range(in, &off_in, c, &off_out, kSize, 0);
  uint64_t total = 0;
  int err = errno;
  while (rv > 0) {
    total += static_cast<uint64_t>(rv);
    errno = 0;
    rv = copy_file_range(in, &off_in, c, &off_out, kSize - total, 0);
    err = errno;
  }
  EXPECT_EQ(rv, -1) << "copy past the capacity must fail, copied " << total;
  EXPECT_EQ(err, ENOSPC) << ErrnoName(err);
  EXPECT_LE(total, free_before);
  EXPECT_EQ(ReadFile(P("c")), data.substr(0, total)) << "what was reported copied is there";
  close(in);
  close(b);
  close(c);
  EXPECT_LE(Used(), 1 * kMi);
  ExpectDuAgrees("after copy_file_range");
}

TEST_F(QuotaTest, SetxattrNeedingABlockFailsWhenFull) {
  // ext4 keeps a 3000-byte value in an xattr block (4 KiB, counted in st_blocks).
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  int x = Create("x");
  int f = Create("fill");
  ASSERT_TRUE(x >= 0 && f >= 0);
  close(x);
  uint64_t free_before = Free();
  std::string fill = Bytes(free_before);
  ASSERT_EQ(write(f, fill.data(), fill.size()), static_cast<ssize_t>(free_before));
  ASSERT_EQ(Free(), 0u);
  std::string value(3000, 'v');
  errno = 0;
  EXPECT_EQ(setxattr(P("x").c_str(), "user.big", value.data(), value.size(), 0), -1);
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  char buf[4096];
  EXPECT_EQ(getxattr(P("x").c_str(), "user.big", buf, sizeof(buf)), -1) << "nothing stored";
  EXPECT_EQ(Used(), 1 * kMi);
  // With a block free it works, and the block is counted.
  ASSERT_EQ(ftruncate(f, static_cast<off_t>(free_before - 2 * kBlock)), 0);
  uint64_t used = Used();
  EXPECT_EQ(setxattr(P("x").c_str(), "user.big", value.data(), value.size(), 0), 0)
      << strerror(errno);
  struct stat st {};
  ASSERT_EQ(stat(P("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_blocks, 8) << "the backing ext4 put the value in an xattr block";
  EXPECT_EQ(Used(), used + kBlock);
  ExpectDuAgrees("after setxattr");
  EXPECT_EQ(removexattr(P("x").c_str(), "user.big"), 0);
  EXPECT_EQ(Used(), used) << "removing the only xattr frees its block";
  close(f);
}

TEST_F(QuotaTest, InodeLimitRefusesEveryNewInode) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi,inodes=16"));
  FsUsage u = StatFs(root());
  EXPECT_EQ(u.files, 16u) << "f_files is the inode limit";
  ASSERT_GE(u.ffree, 10u);
  ASSERT_LT(u.ffree, 16u) << "the root directory is an inode";
  EXPECT_EQ(u.favail, u.ffree);
  uint64_t n = u.ffree;
  ASSERT_TRUE(WriteFile(P("keep"), "k"));
  for (uint64_t i = 1; i < n; ++i) {
    std::string name = P("o" + std::to_string(i));
    int rv = 0;
    switch (i % 4) {
      case 0:
        rv = mkdir(name.c_str(), 0755);
        break;
      case 1:
        rv = symlink("keep", name.c_str());
        break;
      case 2:
        rv = mkfifo(name.c_str(), 0644);
        break;
      default:
        rv = mknod(name.c_str(), S_IFREG | 0644, 0);
        break;
    }
    ASSERT_EQ(rv, 0) << "object " << i << " of " << n << ": " << strerror(errno);
  }
  EXPECT_EQ(StatFs(root()).ffree, 0u);
  auto expect_quota = [](int rv, const char* what) {
    EXPECT_EQ(rv, -1) << what;
    EXPECT_EQ(errno, ENOSPC) << what << ": " << ErrnoName(errno);
  };
  errno = 0;
  int fd = open(P("new").c_str(), O_CREAT | O_WRONLY, 0644);
  if (fd >= 0) close(fd);
  expect_quota(fd < 0 ? -1 : 0, "create");
  expect_quota(mkdir(P("newdir").c_str(), 0755), "mkdir");
  expect_quota(symlink("keep", P("newlink").c_str()), "symlink");
  expect_quota(mknod(P("newnode").c_str(), S_IFIFO | 0644, 0), "mknod");
  expect_quota(mkfifo(P("newfifo").c_str(), 0644), "mkfifo");
  // A hard link adds a name, not an inode (as on ext4, and under XFS project quotas): it still
  // works at the inode limit and the count does not move.
  EXPECT_EQ(link(P("keep").c_str(), P("newhard").c_str()), 0) << strerror(errno);
  EXPECT_EQ(StatFs(root()).ffree, 0u) << "a hard link took an inode";
  ASSERT_EQ(unlink(P("newhard").c_str()), 0);
  EXPECT_EQ(StatFs(root()).ffree, 0u) << "removing a second name freed an inode";
  // What needs no new inode still works.
  EXPECT_EQ(rename(P("keep").c_str(), P("kept").c_str()), 0) << strerror(errno);
  EXPECT_TRUE(WriteFile(P("kept"), "more data"));
  // Freeing one inode makes room for exactly one.
  ASSERT_EQ(unlink(P("o1").c_str()), 0);
  EXPECT_EQ(StatFs(root()).ffree, 1u);
  fd = open(P("again").c_str(), O_CREAT | O_WRONLY, 0644);
  EXPECT_GE(fd, 0) << strerror(errno);
  if (fd >= 0) close(fd);
  expect_quota(mkdir(P("again2").c_str(), 0755), "mkdir after refill");
}

TEST_F(QuotaTest, QuotaErrnoEdquot) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi,inodes=8,quota_errno=EDQUOT"));
  int fd = Create("f");
  int x = Create("x");
  ASSERT_TRUE(fd >= 0 && x >= 0);
  close(x);
  errno = 0;
  EXPECT_EQ(fallocate(fd, 0, 0, 2 * kMi), -1);
  EXPECT_EQ(errno, EDQUOT) << ErrnoName(errno);
  WriteOutcome w = WriteUntilError(fd, 64 * kKi, 4 * kMi);
  EXPECT_EQ(w.err, EDQUOT) << ErrnoName(w.err);
  EXPECT_EQ(fsync(fd), 0);
  // Near full a write keeps up to 3 blocks back for the file's extent tree (the README's quota
  // section): take what is left, so that the xattr below finds no free block.
  if (uint64_t left = Free(); left > 0) {
    ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(8 * kMi),
                        static_cast<off_t>(left)),
              0)
        << strerror(errno);
  }
  ASSERT_EQ(Free(), 0u);
  std::string value(3000, 'v');
  EXPECT_EQ(setxattr(P("x").c_str(), "user.big", value.data(), value.size(), 0), -1);
  EXPECT_EQ(errno, EDQUOT) << ErrnoName(errno);
  ASSERT_EQ(ftruncate(fd, 0), 0);
  uint64_t n = StatFs(root()).ffree;
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(mkfifo(P("p" + std::to_string(i)).c_str(), 0644), 0) << strerror(errno);
  }
  EXPECT_EQ(mkdir(P("one-too-many").c_str(), 0755), -1);
  EXPECT_EQ(errno, EDQUOT) << ErrnoName(errno);
  close(fd);
}

// --- renames ------------------------------------------------------------------------------------

// Regression: renameat2(RENAME_EXCHANGE) failed with ENOSPC on a full volume although an
// exchange allocates nothing. A rename over an existing name frees space and needs none
// either; only a new name may grow a directory, and that still needs a free block.
TEST_F(QuotaTest, RenameExchangeAndReplaceWorkOnAFullVolume) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("a"), Bytes(8 * kKi, 'a')));
  ASSERT_TRUE(WriteFile(P("b"), Bytes(16 * kKi, 'b')));
  ASSERT_TRUE(WriteFile(P("d/c"), Bytes(4 * kKi, 'c')));
  ASSERT_EQ(mkdir(P("d/sub").c_str(), 0755), 0);
  int fd = Create("fill");
  ASSERT_GE(fd, 0);
  std::string rest = Bytes(Free());
  ASSERT_EQ(write(fd, rest.data(), rest.size()), static_cast<ssize_t>(rest.size()));
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  ASSERT_EQ(Free(), 0u) << "the volume must be full";

  EXPECT_EQ(renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("b").c_str(), RENAME_EXCHANGE), 0)
      << "exchange in one directory: " << ErrnoName(errno);
  EXPECT_TRUE(ReadFile(P("a")) == Bytes(16 * kKi, 'b'));
  EXPECT_TRUE(ReadFile(P("b")) == Bytes(8 * kKi, 'a'));
  EXPECT_EQ(renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("d/c").c_str(), RENAME_EXCHANGE), 0)
      << "exchange across directories: " << ErrnoName(errno);
  EXPECT_TRUE(ReadFile(P("d/c")) == Bytes(16 * kKi, 'b'));
  EXPECT_EQ(renameat2(AT_FDCWD, P("d/sub").c_str(), AT_FDCWD, P("b").c_str(), RENAME_EXCHANGE), 0)
      << "exchange of a directory and a file across directories: " << ErrnoName(errno);
  struct stat st {};
  EXPECT_EQ(stat(P("b").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(Free(), 0u) << "an exchange allocates and frees nothing";
  ExpectDuAgrees("after exchanges");

  // A new name may grow the directory: refused while no block is free, and nothing moves.
  errno = 0;
  EXPECT_EQ(renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("new-name").c_str(), RENAME_NOREPLACE),
            -1);
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  EXPECT_EQ(access(P("a").c_str(), F_OK), 0);
  EXPECT_NE(access(P("new-name").c_str(), F_OK), 0);
  // RENAME_NOREPLACE onto an existing name is EEXIST, not a quota error.
  errno = 0;
  EXPECT_EQ(renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("d/sub").c_str(), RENAME_NOREPLACE),
            -1);
  EXPECT_EQ(errno, EEXIST) << ErrnoName(errno);

  // A plain rename over an existing file needs nothing and frees the file it replaces.
  ASSERT_EQ(rename(P("d/sub").c_str(), P("d/c").c_str()), 0) << ErrnoName(errno);
  EXPECT_TRUE(ReadFile(P("d/c")) == Bytes(8 * kKi, 'a'));
  EXPECT_EQ(Free(), 16 * kKi) << "the replaced file's blocks are free";
  ExpectDuAgrees("after a replacing rename");
  // With a block free, a new name works again.
  EXPECT_EQ(renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("new-name").c_str(), RENAME_NOREPLACE),
            0)
      << ErrnoName(errno);
  ExpectDuAgrees("after a rename to a new name");
}

// --- sparse files --------------------------------------------------------------------------------

// 1-byte writes, each into its own block with a hole before it, until the quota errno.
uint64_t ScatterBytesUntilFull(int fd, uint64_t stride, int* err) {
  uint64_t n = 0;
  for (;; ++n) {
    if (pwrite(fd, "x", 1, static_cast<off_t>(n * stride)) != 1) {
      *err = errno;
      return n;
    }
  }
}

// Regression: 1-byte writes scattered in a sparse file overshot the quota by 204,800 bytes on
// a 64 MiB volume (df 67,108,864 used, du 67,313,664): ext4 allocates a file's extent-tree
// blocks (one per ~340 extents) only at write-back, after the writes had been accounted.
TEST_F(QuotaTest, ScatteredOneByteWritesNeverPassTheCapacityAndDfAgreesWithDu) {
  constexpr uint64_t kCapacity = 16 * kMi;
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=16Mi"));
  int fd = Create("sparse", O_WRONLY);
  ASSERT_GE(fd, 0);
  int err = 0;
  uint64_t writes = ScatterBytesUntilFull(fd, 2 * kBlock, &err);
  EXPECT_EQ(err, ENOSPC) << ErrnoName(err);
  EXPECT_GT(writes, kCapacity / kBlock * 9 / 10) << "most of the volume holds data";
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(close(fd), 0);
  sync();
  std::optional<uint64_t> du_source = DuBytes(source());
  ASSERT_TRUE(du_source);
  EXPECT_LE(*du_source, kCapacity) << "what the backing filesystem really allocated";
  EXPECT_LE(Used(), kCapacity);
  ExpectDuAgrees("after scattered 1-byte writes");
}

// The same through copy_file_range, which the volume serves with its own copy.
TEST_F(QuotaTest, ScatteredOneByteCopiesNeverPassTheCapacity) {
  constexpr uint64_t kCapacity = 16 * kMi;
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=16Mi"));
  ASSERT_TRUE(WriteFile(P("one"), "x"));
  int in = open(P("one").c_str(), O_RDONLY | O_CLOEXEC);
  int out = Create("sparse", O_WRONLY);
  ASSERT_TRUE(in >= 0 && out >= 0);
  int err = 0;
  uint64_t n = 0;
  for (;; ++n) {
    loff_t in_pos = 0;
    loff_t out_pos = static_cast<loff_t>(n * 2 * kBlock);
    if (copy_file_range(in, &in_pos, out, &out_pos, 1, 0) != 1) {
      err = errno;
      break;
    }
  }
  EXPECT_EQ(err, ENOSPC) << ErrnoName(err) << " after " << n << " copies";
  EXPECT_GT(n, kCapacity / kBlock * 9 / 10) << "most of the volume holds data";
  EXPECT_EQ(close(in), 0);
  EXPECT_EQ(close(out), 0);
  sync();
  std::optional<uint64_t> du_source = DuBytes(source());
  ASSERT_TRUE(du_source);
  EXPECT_LE(*du_source, kCapacity) << "what the backing filesystem really allocated";
  ExpectDuAgrees("after scattered 1-byte copies");
}

// Concurrent sparse writers: the limit holds at every call, with no block of slack.
TEST_F(QuotaTest, ConcurrentScatteredWritersNeverPassTheCapacity) {
  constexpr uint64_t kCapacity = 16 * kMi;
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=16Mi"));
  constexpr int kWriters = 4;
  std::vector<int> fds;
  for (int i = 0; i < kWriters; ++i) fds.push_back(Create("sparse" + std::to_string(i), O_WRONLY));
  for (int fd : fds) ASSERT_GE(fd, 0);
  std::vector<int> errs(kWriters, 0);
  std::vector<std::thread> threads;
  std::atomic<uint64_t> max_used{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      uint64_t used = Used();
      if (used > max_used) max_used = used;
      std::this_thread::sleep_for(5ms);
    }
  });
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] { ScatterBytesUntilFull(fds[i], (3 + i) * kBlock, &errs[i]); });
  }
  for (std::thread& t : threads) t.join();
  done = true;
  watcher.join();
  for (int i = 0; i < kWriters; ++i) {
    EXPECT_EQ(errs[i], ENOSPC) << ErrnoName(errs[i]);
    EXPECT_EQ(close(fds[i]), 0);
  }
  sync();
  std::optional<uint64_t> du_source = DuBytes(source());
  ASSERT_TRUE(du_source);
  EXPECT_LE(*du_source, kCapacity) << "what the backing filesystem really allocated";
  EXPECT_LE(max_used.load(), kCapacity) << "statfs used during the run";
  ExpectDuAgrees("after concurrent scattered writers");
}

// --- concurrency -------------------------------------------------------------------------------

struct WorkerStats {
  long files = 0;
  long quota_errors = 0;
  long unexpected = 0;  // errors other than the quota errno
  long lost = 0;        // files whose size differs from the bytes write() accepted
  std::string first_unexpected;
};

// Writes files of random sizes in random chunks until `deadline`, deleting some of its own
// files when the volume is full so space keeps changing hands.
WorkerStats Churn(const std::string& dir, int id, std::chrono::steady_clock::time_point deadline) {
  WorkerStats s;
  std::mt19937 rng(static_cast<unsigned>(id * 7919 + 1));
  std::vector<std::pair<std::string, uint64_t>> mine;  // name, bytes accepted
  std::string buf(96 * 1024, static_cast<char>('a' + id % 26));
  auto unexpected = [&s](const std::string& what) {
    ++s.unexpected;
    if (s.first_unexpected.empty()) s.first_unexpected = what + ": " + ErrnoName(errno);
  };
  while (std::chrono::steady_clock::now() < deadline) {
    std::string name = dir + "/w" + std::to_string(id) + "-" + std::to_string(s.files++);
    int fd = open(name.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == ENOSPC) {
        ++s.quota_errors;
      } else {
        unexpected("create");
      }
    } else {
      uint64_t target = 1 + rng() % (1536 * 1024);
      uint64_t accepted = 0;
      while (accepted < target) {
        size_t n = 1 + rng() % buf.size();
        n = static_cast<size_t>(std::min<uint64_t>(n, target - accepted));
        ssize_t rv = write(fd, buf.data(), n);
        if (rv < 0) {
          if (errno == ENOSPC) {
            ++s.quota_errors;
          } else {
            unexpected("write");
          }
          break;
        }
        accepted += static_cast<uint64_t>(rv);
        if (static_cast<size_t>(rv) < n) continue;  // short: the next call reports the errno
      }
      if (close(fd) != 0) unexpected("close");
      mine.emplace_back(name, accepted);
    }
    // Full or not, drop a random older file now and then.
    if (!mine.empty() && rng() % 3 == 0) {
      size_t victim = rng() % mine.size();
      struct stat st {};
      if (stat(mine[victim].first.c_str(), &st) == 0 &&
          static_cast<uint64_t>(st.st_size) != mine[victim].second) {
        ++s.lost;
      }
      if (unlink(mine[victim].first.c_str()) != 0) unexpected("unlink");
      mine.erase(mine.begin() + static_cast<long>(victim));
    }
  }
  for (const auto& [name, accepted] : mine) {
    struct stat st {};
    if (stat(name.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != accepted) ++s.lost;
  }
  return s;
}

TEST_F(QuotaTest, ConcurrentWritersCannotOvershootByMoreThanOneBlock) {
  constexpr uint64_t kCapacity = 8 * kMi;
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=8Mi"));
  ASSERT_EQ(mkdir(P("w").c_str(), 0777), 0);
  auto deadline = std::chrono::steady_clock::now() + 3s;
  std::string dir = P("w");
  // Two processes (forked before any thread starts) and eight threads.
  std::vector<pid_t> children;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      WorkerStats s = Churn(dir, 100 + p, deadline);
      _exit(s.unexpected > 0 ? 1 : (s.lost > 0 ? 2 : 0));
    }
    children.push_back(pid);
  }
  std::vector<WorkerStats> stats(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { stats[i] = Churn(dir, i, deadline); });
  }
  uint64_t max_used = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    max_used = std::max(max_used, Used());
    std::this_thread::sleep_for(20ms);
  }
  for (std::thread& t : threads) t.join();
  for (pid_t pid : children) {
    std::optional<int> status = WaitForExit(pid, 30s);
    ASSERT_TRUE(status.has_value()) << "writer process hung";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "writer process: 1 = unexpected errors, 2 = accepted bytes lost; status " << *status;
  }
  long quota_errors = 0, files = 0;
  for (const WorkerStats& s : stats) {
    EXPECT_EQ(s.unexpected, 0) << "first: " << s.first_unexpected;
    EXPECT_EQ(s.lost, 0) << "files whose size is not what write() accepted";
    quota_errors += s.quota_errors;
    files += s.files;
  }
  RecordProperty("files", static_cast<int>(files));
  RecordProperty("quota_errors", static_cast<int>(quota_errors));
  EXPECT_GT(quota_errors, 0) << "the writers never reached the capacity";
  sync();
  uint64_t used = Used();
  EXPECT_LE(max_used, kCapacity + kBlock) << "statfs used during the run";
  EXPECT_LE(used, kCapacity + kBlock) << "statfs used after the run";
  std::optional<uint64_t> du_source = DuBytes(source());
  ASSERT_TRUE(du_source);
  EXPECT_LE(*du_source, kCapacity + kBlock) << "what the backing ext4 really allocated";
  ExpectDuAgrees("after concurrent writers");
}

// --- freeing ---------------------------------------------------------------------------------

TEST_F(QuotaTest, SpaceIsFreeTheMomentItIsFreed) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=8Mi"));
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  uint64_t base = Used();
  ASSERT_TRUE(WriteFile(P("a"), Bytes(2 * kMi)));
  EXPECT_EQ(Used(), base + 2 * kMi);
  ASSERT_EQ(unlink(P("a").c_str()), 0);
  EXPECT_EQ(Used(), base) << "unlink";
  ASSERT_TRUE(WriteFile(P("b"), Bytes(2 * kMi)));
  ASSERT_EQ(truncate(P("b").c_str(), 1 * kMi), 0);
  EXPECT_EQ(Used(), base + 1 * kMi) << "truncate";
  int fd = open(P("b").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 0), 0);
  EXPECT_EQ(Used(), base) << "ftruncate";
  ASSERT_EQ(write(fd, Bytes(2 * kMi).data(), 2 * kMi), static_cast<ssize_t>(2 * kMi));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 512 * kKi, 1 * kMi), 0);
  EXPECT_EQ(Used(), base + 1 * kMi) << "punch hole";
  close(fd);
  ASSERT_TRUE(WriteFile(P("d/c"), Bytes(kMi)));
  ASSERT_EQ(rename(P("d/c").c_str(), P("b").c_str()), 0);
  EXPECT_EQ(Used(), base + 1 * kMi) << "rename over a file frees the file it replaces";
  ASSERT_EQ(link(P("b").c_str(), P("d/b2").c_str()), 0);
  EXPECT_EQ(Used(), base + 1 * kMi) << "a hard link adds no bytes";
  ASSERT_EQ(unlink(P("b").c_str()), 0);
  EXPECT_EQ(Used(), base + 1 * kMi) << "the other link still holds the data";
  ASSERT_EQ(unlink(P("d/b2").c_str()), 0);
  EXPECT_EQ(Used(), base) << "last link";
  ASSERT_EQ(rmdir(P("d").c_str()), 0);
  EXPECT_EQ(Used(), base - kBlock) << "rmdir frees the directory's block";
  ExpectDuAgrees("after freeing");
}

TEST_F(QuotaTest, UnlinkedOpenFileKeepsItsSpaceUntilLastClose) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=4Mi"));
  uint64_t base = Used();
  int fd = Create("f");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, Bytes(kMi).data(), kMi), static_cast<ssize_t>(kMi));
  int fd2 = open(P("f").c_str(), O_RDONLY);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(unlink(P("f").c_str()), 0);
  EXPECT_EQ(Used(), base + kMi) << "as on ext4, an open unlinked file keeps its blocks";
  // It is still a file of this volume: writes to it are counted and limited.
  uint64_t free_now = Free();
  WriteOutcome w = WriteUntilError(fd, 256 * kKi, 8 * kMi);
  EXPECT_EQ(w.err, ENOSPC) << "writes to an unlinked file past the capacity: " << ErrnoName(w.err);
  EXPECT_EQ(w.total, free_now);
  EXPECT_EQ(Free(), 0u);
  close(fd);
  EXPECT_EQ(Free(), 0u) << "freed while a second descriptor is still open";
  close(fd2);
  // The kernel sends FUSE RELEASE asynchronously after close(): allow it a moment.
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (Used() != base && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(Used(), base) << "space of the unlinked file after its last close";
  ExpectDuAgrees("after last close");
}

// --- usage accounting ---------------------------------------------------------------------------

void BuildMixedTree(const std::string& root) {
  mkdir((root + "/d1").c_str(), 0755);
  mkdir((root + "/d1/d2").c_str(), 0755);
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097}, size_t{kMi + 3}}) {
    WriteFile(root + "/d1/f" + std::to_string(size), std::string(size, 'm'));
  }
  int fd = open((root + "/d1/d2/sparse").c_str(), O_CREAT | O_WRONLY, 0644);
  (void)!pwrite(fd, "end", 3, 10 * kMi);
  (void)!pwrite(fd, "start", 5, 0);
  close(fd);
  link((root + "/d1/f4097").c_str(), (root + "/d1/d2/hardlink").c_str());
  symlink("short", (root + "/d1/shortlink").c_str());
  symlink(std::string(200, 'L').c_str(), (root + "/d1/longlink").c_str());  // a block on ext4
  std::string value(3000, 'x');
  setxattr((root + "/d1/f1").c_str(), "user.big", value.data(), value.size(), 0);
  mkfifo((root + "/d1/fifo").c_str(), 0644);
  for (int i = 0; i < 300; ++i) {  // a directory that grew past one block
    WriteFile(root + "/d1/d2/name-with-some-length-" + std::to_string(i), "");
  }
}

TEST_F(QuotaTest, DuAgreesWithStatfsAndSurvivesRemount) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi"));
  BuildMixedTree(root());
  ExpectDuAgrees("mixed tree");
  uint64_t used = Used();
  UnmountVolume();
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi"));
  EXPECT_EQ(Used(), used) << "usage rescanned at mount";
  ExpectDuAgrees("after remount");
}

TEST_F(QuotaTest, UsageIsScannedAtMount) {
  BuildMixedTree(source());
  std::optional<uint64_t> du = DuBytes(source());
  ASSERT_TRUE(du);
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=32Mi"));
  EXPECT_EQ(Used(), *du);
  EXPECT_EQ(Free(), 32 * kMi - *du);
  ExpectDuAgrees("pre-populated source");
}

TEST_F(QuotaTest, VolumeAlreadyOverItsCapacityMountsButRefusesAllocation) {
  // A volume over its capacity (restored data, a capacity set too small) must stay readable
  // and let its owner free space; only allocation is refused.
  ASSERT_TRUE(WriteFile(source() + "/big", Bytes(2 * kMi)));
  ASSERT_TRUE(WriteFile(source() + "/small", "keep me"));
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=1Mi"));
  FsUsage u = StatFs(root());
  EXPECT_EQ(u.free, 0u);
  EXPECT_EQ(ReadFile(P("small")), "keep me");
  errno = 0;
  EXPECT_FALSE(WriteFile(P("more"), Bytes(8192)));
  EXPECT_EQ(errno, ENOSPC) << ErrnoName(errno);
  ASSERT_EQ(unlink(P("big").c_str()), 0) << strerror(errno);
  EXPECT_GT(StatFs(root()).free, 0u) << "freeing space brings the volume back under its capacity";
  EXPECT_TRUE(WriteFile(P("more"), Bytes(8192))) << strerror(errno);
}

}  // namespace
}  // namespace claimfs::it
