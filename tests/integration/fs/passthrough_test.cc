// Passthrough parity: every scenario runs on native ext4 and on a claimfs volume of the same
// ext4, and must see the same results (issue 2, Semantics: "Everything applications rely on
// from a local filesystem passes through"). Each test runs without a quota and with one, since
// accounting changes the code paths.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <unordered_set>
#include <vector>

#include "fs/mount_fixture.h"
#include "fs/parity.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

// Opens and closes at once; 0 or -1 with the open's errno.
int OpenClose(const char* path, int flags, mode_t mode = 0644) {
  int fd = open(path, flags | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

std::string Pattern(size_t size, unsigned seed) {
  std::string s(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 16);
  }
  return s;
}

std::string ReadFd(int fd, size_t size, off_t offset) {
  std::string s(size, '\0');
  ssize_t n = pread(fd, s.data(), size, offset);
  if (n < 0) return "<" + ErrnoName(errno) + ">";
  s.resize(static_cast<size_t>(n));
  return s;
}

struct timespec Now(clockid_t clock) {
  struct timespec ts {};
  clock_gettime(clock, &ts);
  return ts;
}

bool Within(const struct timespec& t, const struct timespec& lo, const struct timespec& hi) {
  auto ns = [](const struct timespec& x) { return x.tv_sec * 1000000000LL + x.tv_nsec; };
  return ns(t) >= ns(lo) - 20000000 && ns(t) <= ns(hi) + 20000000;
}

class PassthroughTest : public VolumeTest, public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    VolumeTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(MountVolume(GetParam()));
  }
  void Parity(const Scenario& scenario, ParityOptions options = {}) {
    ExpectParity(native(), root(), scenario, options);
  }
};

TEST_P(PassthroughTest, FilesAndDirectories) {
  Parity([](Trace& t) {
    t.Ret("mkdir d", mkdir(t.C("d"), 0755));
    t.Ret("mkdir d again", mkdir(t.C("d"), 0755));
    int fd =
        static_cast<int>(t.Ok("create d/f", open(t.C("d/f"), O_CREAT | O_EXCL | O_WRONLY, 0640)));
    t.Ret("write", write(fd, "hello world", 11));
    t.Ret("pwrite at 20", pwrite(fd, "tail", 4, 20));
    t.Fstat("d/f", fd);
    t.Ret("close", close(fd));
    t.Stat("d/f");
    t.Content("d/f");
    t.Ret("create excl existing", OpenClose(t.C("d/f"), O_CREAT | O_EXCL | O_WRONLY));
    t.Ret("open missing", OpenClose(t.C("d/missing"), O_RDONLY));
    t.Ret("open dir for writing", OpenClose(t.C("d"), O_WRONLY));
    t.Ret("open file as dir", OpenClose(t.C("d/f"), O_RDONLY | O_DIRECTORY));
    t.Ret("open through a file", OpenClose(t.C("d/f/x"), O_RDONLY));
    t.Ret("mkdir d/sub", mkdir(t.C("d/sub"), 0700));
    t.Stat("d", kDirFields);
    t.Stat("d/sub", kDirFields);
    t.Listing("d");
    t.Ret("rmdir non-empty", rmdir(t.C("d")));
    t.Ret("unlink a dir", unlink(t.C("d/sub")));
    t.Ret("rmdir a file", rmdir(t.C("d/f")));
    t.Ret("O_TRUNC", OpenClose(t.C("d/f"), O_WRONLY | O_TRUNC));
    t.Stat("d/f");
    t.Ret("name of 255", OpenClose(t.C("d/" + std::string(255, 'n')), O_CREAT | O_WRONLY));
    t.Ret("name of 256", OpenClose(t.C("d/" + std::string(256, 'n')), O_CREAT | O_WRONLY));
    t.Ret("unlink 255", unlink(t.C("d/" + std::string(255, 'n'))));
    t.Ret("unlink d/f", unlink(t.C("d/f")));
    t.Ret("unlink d/f again", unlink(t.C("d/f")));
    t.Ret("rmdir d/sub", rmdir(t.C("d/sub")));
    t.Ret("rmdir d", rmdir(t.C("d")));
    t.Listing("");
    // Larger content through several FUSE requests.
    std::string big = Pattern(3 * 1024 * 1024 + 17, 1);
    t.Ret("write 3 MiB", WriteFile(t.P("big"), big) ? 0 : -1);
    t.Stat("big");
    t.Content("big");
  });
}

TEST_P(PassthroughTest, Symlinks) {
  Parity([](Trace& t) {
    WriteFile(t.P("target"), "data");
    t.Ret("symlink", symlink("target", t.C("link")));
    t.Ret("symlink exists", symlink("target", t.C("link")));
    t.Ret("symlink dangling", symlink("nowhere/at/all", t.C("dangling")));
    t.Ret("symlink loop a", symlink("loop-b", t.C("loop-a")));
    t.Ret("symlink loop b", symlink("loop-a", t.C("loop-b")));
    char buf[256];
    ssize_t n = readlink(t.C("link"), buf, sizeof(buf));
    t.Ret("readlink", n);
    if (n > 0) t.Note("readlink -> " + std::string(buf, static_cast<size_t>(n)));
    n = readlink(t.C("dangling"), buf, sizeof(buf));
    if (n > 0) t.Note("readlink dangling -> " + std::string(buf, static_cast<size_t>(n)));
    t.Ret("readlink short buffer", readlink(t.C("dangling"), buf, 3));
    t.Ret("readlink of a file", readlink(t.C("target"), buf, sizeof(buf)));
    t.Stat("link", kMode | kSize | kOwner | kNlink);
    t.Stat("link", kDefaultFields, /*follow=*/true);
    t.Content("link");
    t.Ret("open dangling", OpenClose(t.C("dangling"), O_RDONLY));
    t.Ret("open loop", OpenClose(t.C("loop-a"), O_RDONLY));
    t.Ret("open O_NOFOLLOW", OpenClose(t.C("link"), O_RDONLY | O_NOFOLLOW));
    t.Ret("open O_PATH|O_NOFOLLOW", OpenClose(t.C("link"), O_PATH | O_NOFOLLOW));
    t.Ret("mkdir dir", mkdir(t.C("dir"), 0755));
    t.Ret("symlink to dir", symlink("dir", t.C("dirlink")));
    t.Ret("create through dir link", OpenClose(t.C("dirlink/inner"), O_CREAT | O_WRONLY));
    t.Stat("dir/inner");
    t.Ret("long symlink", symlink(std::string(4000, 'x').c_str(), t.C("longlink")));
    t.Stat("longlink", kMode | kSize);
    t.Listing("");
    t.Ret("unlink link", unlink(t.C("link")));
    t.Stat("target");
  });
}

TEST_P(PassthroughTest, HardLinks) {
  Parity([](Trace& t) {
    WriteFile(t.P("a"), "first");
    t.Ret("link a b", link(t.C("a"), t.P("b").c_str()));
    t.Ret("link a b again", link(t.C("a"), t.P("b").c_str()));
    t.Ret("mkdir d", mkdir(t.C("d"), 0755));
    t.Ret("link into d", link(t.C("a"), t.P("d/c").c_str()));
    t.Ret("link a dir", link(t.C("d"), t.P("dlink").c_str()));
    t.Ret("link missing", link(t.C("missing"), t.P("x").c_str()));
    t.Stat("a");
    t.Stat("b");
    struct stat sa {
    }, sb{}, sc{};
    lstat(t.C("a"), &sa);
    lstat(t.C("b"), &sb);
    lstat(t.C("d/c"), &sc);
    t.Note(std::string("same inode: ") +
           (sa.st_ino == sb.st_ino && sb.st_ino == sc.st_ino ? "yes" : "no"));
    int fd = open(t.C("b"), O_WRONLY | O_APPEND);
    t.Ret("append via b", write(fd, "+second", 7));
    close(fd);
    t.Content("a");
    t.Content("d/c");
    t.Ret("chmod via c", chmod(t.C("d/c"), 0600));
    t.Stat("a");
    t.Ret("unlink a", unlink(t.C("a")));
    t.Stat("b");
    t.Ret("unlink d/c", unlink(t.C("d/c")));
    t.Stat("b");
    t.Content("b");
    // A hard link to a symlink is a link to the symlink itself.
    t.Ret("symlink", symlink("b", t.C("sl")));
    t.Ret("link the symlink", linkat(AT_FDCWD, t.P("sl").c_str(), AT_FDCWD, t.C("sl2"), 0));
    t.Stat("sl2", kMode | kNlink | kSize);
    t.Ret("link following",
          linkat(AT_FDCWD, t.P("sl").c_str(), AT_FDCWD, t.C("bl"), AT_SYMLINK_FOLLOW));
    t.Stat("b");
  });
}

TEST_P(PassthroughTest, Rename) {
  Parity([](Trace& t) {
    WriteFile(t.P("a"), "A");
    WriteFile(t.P("b"), "B");
    WriteFile(t.P("c"), "C");
    mkdir(t.C("d1"), 0755);
    mkdir(t.C("d2"), 0755);
    mkdir(t.C("full"), 0755);
    WriteFile(t.P("full/x"), "x");
    mkdir(t.C("empty"), 0755);
    t.Ret("rename a a2", rename(t.C("a"), t.P("a2").c_str()));
    t.Ret("rename missing", rename(t.C("a"), t.P("zz").c_str()));
    t.Ret("rename over b", rename(t.C("a2"), t.P("b").c_str()));
    t.Content("b");
    t.Stat("a2");
    t.Ret("rename into dir", rename(t.C("b"), t.P("d1/b").c_str()));
    t.Ret("noreplace onto existing",
          renameat2(AT_FDCWD, t.C("c"), AT_FDCWD, t.P("d1/b").c_str(), RENAME_NOREPLACE));
    t.Content("c");
    t.Content("d1/b");
    t.Ret("noreplace to new",
          renameat2(AT_FDCWD, t.C("c"), AT_FDCWD, t.P("d2/c").c_str(), RENAME_NOREPLACE));
    t.Ret("exchange files",
          renameat2(AT_FDCWD, t.C("d1/b"), AT_FDCWD, t.P("d2/c").c_str(), RENAME_EXCHANGE));
    t.Content("d1/b");
    t.Content("d2/c");
    t.Ret("exchange file and dir",
          renameat2(AT_FDCWD, t.C("d2/c"), AT_FDCWD, t.P("empty").c_str(), RENAME_EXCHANGE));
    t.Stat("d2/c", kMode);
    t.Stat("empty", kMode);
    t.Ret("exchange back",
          renameat2(AT_FDCWD, t.C("d2/c"), AT_FDCWD, t.P("empty").c_str(), RENAME_EXCHANGE));
    t.Ret("exchange with missing",
          renameat2(AT_FDCWD, t.C("d2/c"), AT_FDCWD, t.P("d2/none").c_str(), RENAME_EXCHANGE));
    t.Ret("exchange and noreplace", renameat2(AT_FDCWD, t.C("d2/c"), AT_FDCWD, t.P("d1/b").c_str(),
                                              RENAME_EXCHANGE | RENAME_NOREPLACE));
    t.Ret("dir over non-empty dir", rename(t.C("d2"), t.P("full").c_str()));
    t.Ret("dir over empty dir", rename(t.C("d2"), t.P("empty").c_str()));
    t.Listing("empty");
    t.Ret("dir into itself", rename(t.C("d1"), t.P("d1/inner").c_str()));
    t.Ret("file over dir", rename(t.C("full/x"), t.P("d1").c_str()));
    t.Ret("dir over file", rename(t.C("d1"), t.P("full/x").c_str()));
    t.Ret("rename dir", rename(t.C("d1"), t.P("d1-renamed").c_str()));
    t.Content("d1-renamed/b");
    t.Stat("d1-renamed", kDirFields);
    t.Ret("rename to itself", rename(t.C("full/x"), t.P("full/x").c_str()));
    t.Ret("link then rename onto other link", link(t.C("full/x"), t.P("full/y").c_str()));
    t.Ret("rename hard link onto its twin", rename(t.C("full/x"), t.P("full/y").c_str()));
    t.Listing("full");
    t.Listing("");
  });
}

TEST_P(PassthroughTest, Truncate) {
  Parity([](Trace& t) {
    WriteFile(t.P("f"), Pattern(10000, 2));
    t.Ret("truncate to 5000", truncate(t.C("f"), 5000));
    t.Stat("f");
    t.Content("f");
    t.Ret("truncate to 1 MiB", truncate(t.C("f"), 1 << 20));
    t.Stat("f");
    t.Content("f");
    int fd = open(t.C("f"), O_RDWR);
    t.Ret("ftruncate to 3", ftruncate(fd, 3));
    t.Fstat("f", fd);
    t.Ret("read after shrink", static_cast<long>(ReadFd(fd, 100, 0).size()));
    t.Ret("ftruncate to 0", ftruncate(fd, 0));
    t.Ret("ftruncate negative", ftruncate(fd, -1));
    close(fd);
    t.Stat("f");
    fd = open(t.C("f"), O_RDONLY);
    t.Ret("ftruncate read-only fd", ftruncate(fd, 10));
    close(fd);
    t.Ret("truncate a dir", truncate(t.P("").c_str(), 0));
    t.Ret("truncate missing", truncate(t.C("missing"), 0));
    t.Ret("O_TRUNC open", OpenClose(t.C("f"), O_WRONLY | O_TRUNC));
    t.Stat("f");
  });
}

TEST_P(PassthroughTest, Fallocate) {
  Parity([](Trace& t) {
    int fd = static_cast<int>(t.Ok("create", open(t.C("f"), O_CREAT | O_RDWR, 0644)));
    t.Ret("fallocate 1 MiB", fallocate(fd, 0, 0, 1 << 20));
    t.Fstat("f", fd);
    t.Ret("fallocate keep size", fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20));
    t.Fstat("f", fd);
    std::string data = Pattern(1 << 20, 3);
    t.Ret("fill", pwrite(fd, data.data(), data.size(), 0));
    t.Ret("punch hole", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 262144));
    t.Fstat("f", fd);
    std::string hole = ReadFd(fd, 262144, 65536);
    t.Note(std::string("hole reads zeros: ") + (hole == std::string(262144, '\0') ? "yes" : "no"));
    t.Note(std::string("data around the hole intact: ") +
           (ReadFd(fd, 65536, 0) == data.substr(0, 65536) &&
                    ReadFd(fd, 4096, 65536 + 262144) == data.substr(65536 + 262144, 4096)
                ? "yes"
                : "no"));
    t.Ret("punch hole without keep size", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096));
    t.Ret("punch unaligned", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000));
    t.Fstat("f", fd);
    t.Note("byte 99 intact: " +
           std::string(ReadFd(fd, 1, 99) == data.substr(99, 1) ? "yes" : "no"));
    t.Ret("fallocate zero length", fallocate(fd, 0, 0, 0));
    t.Ret("fallocate negative", fallocate(fd, 0, -1, 10));
    t.Ret("fallocate extends size", fallocate(fd, 0, 4 << 20, 4096));
    t.Fstat("f", fd);
    close(fd);
    fd = open(t.C("f"), O_RDONLY);
    t.Ret("fallocate read-only fd", fallocate(fd, 0, 0, 4096));
    close(fd);
    t.Stat("f");
  });
}

TEST_P(PassthroughTest, SparseFiles) {
  Parity([](Trace& t) {
    int fd = static_cast<int>(t.Ok("create", open(t.C("s"), O_CREAT | O_RDWR, 0644)));
    std::string block = Pattern(4096, 4);
    t.Ret("write at 0", pwrite(fd, block.data(), block.size(), 0));
    t.Ret("write at 1 MiB", pwrite(fd, block.data(), block.size(), 1 << 20));
    t.Ret("write at 8 MiB", pwrite(fd, block.data(), block.size(), 8 << 20));
    t.Fstat("s", fd);
    t.Ret("SEEK_DATA 0", lseek(fd, 0, SEEK_DATA));
    t.Ret("SEEK_HOLE 0", lseek(fd, 0, SEEK_HOLE));
    t.Ret("SEEK_DATA 8192", lseek(fd, 8192, SEEK_DATA));
    t.Ret("SEEK_HOLE 1 MiB", lseek(fd, 1 << 20, SEEK_HOLE));
    t.Ret("SEEK_DATA 1 MiB + 4096", lseek(fd, (1 << 20) + 4096, SEEK_DATA));
    t.Ret("SEEK_HOLE 8 MiB", lseek(fd, 8 << 20, SEEK_HOLE));
    t.Ret("SEEK_DATA past EOF", lseek(fd, (8 << 20) + 8192, SEEK_DATA));
    t.Ret("SEEK_END", lseek(fd, 0, SEEK_END));
    t.Note(std::string("hole reads zeros: ") +
           (ReadFd(fd, 4096, 4096 * 4) == std::string(4096, '\0') ? "yes" : "no"));
    t.Ret("ftruncate to 64 MiB", ftruncate(fd, 64 << 20));
    t.Fstat("s", fd);
    t.Ret("SEEK_HOLE 8 MiB after extend", lseek(fd, 8 << 20, SEEK_HOLE));
    t.Ret("fsync", fsync(fd));
    t.Ret("SEEK_DATA 4096 after fsync", lseek(fd, 4096, SEEK_DATA));
    t.Ret("SEEK_HOLE 0 after fsync", lseek(fd, 0, SEEK_HOLE));
    close(fd);
    t.Stat("s");
  });
}

TEST_P(PassthroughTest, MmapReadAndSharedWrite) {
  Parity([](Trace& t) {
    std::string data = Pattern(3 * 4096 + 100, 5);
    WriteFile(t.P("m"), data);
    int fd = open(t.C("m"), O_RDWR);
    void* p = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0);
    t.Ret("mmap read", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
      t.Note(std::string("mapped bytes match: ") +
             (memcmp(p, data.data(), data.size()) == 0 ? "yes" : "no"));
      munmap(p, data.size());
    }
    p = mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    t.Ret("mmap shared write", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
      memcpy(static_cast<char*>(p) + 5000, "MAPPED-WRITE", 12);
      t.Ret("msync", msync(p, 4 * 4096, MS_SYNC));
      t.Note("read() sees it: " + ReadFd(fd, 12, 5000));
      munmap(p, 4 * 4096);
    }
    t.Ret("ftruncate to grow", ftruncate(fd, 8 * 4096));
    p = mmap(nullptr, 8 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      memcpy(static_cast<char*>(p) + 7 * 4096, "IN-NEW-PAGE", 11);
      munmap(p, 8 * 4096);  // no msync: close and re-open must still see it
    }
    p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      memcpy(p, "PRIVATE", 7);
      munmap(p, 4096);
    }
    close(fd);
    fd = open(t.C("m"), O_RDONLY);
    t.Note("after reopen at 5000: " + ReadFd(fd, 12, 5000));
    t.Note("after reopen at 7*4096: " + ReadFd(fd, 11, 7 * 4096));
    t.Note(std::string("private write not in file: ") +
           (ReadFd(fd, 7, 0) == data.substr(0, 7) ? "yes" : "no"));
    close(fd);
    t.Stat("m");
    t.Content("m");
  });
}

TEST_P(PassthroughTest, AppendMode) {
  Parity([](Trace& t) {
    WriteFile(t.P("log"), "start\n");
    int a = open(t.C("log"), O_WRONLY | O_APPEND);
    int b = open(t.C("log"), O_WRONLY | O_APPEND);
    t.Ret("a writes", write(a, "one\n", 4));
    t.Ret("b writes", write(b, "two\n", 4));
    t.Ret("a writes again", write(a, "three\n", 6));
    t.Ret("pwrite on O_APPEND appends", pwrite(a, "four\n", 5, 0));
    t.Ret("offset after append", lseek(a, 0, SEEK_CUR));
    int c = open(t.C("log"), O_WRONLY);
    t.Ret("plain writer at 0", write(c, "S", 1));
    t.Ret("b appends after", write(b, "five\n", 5));
    close(a);
    close(b);
    close(c);
    t.Content("log");
    t.Stat("log");
    t.Ret("O_APPEND|O_CREAT new", OpenClose(t.C("new"), O_WRONLY | O_APPEND | O_CREAT));
    int d = open(t.C("new"), O_RDWR | O_APPEND);
    t.Ret("append to new", write(d, "x", 1));
    t.Note("read back: " + ReadFd(d, 10, 0));
    close(d);
  });
}

TEST_P(PassthroughTest, DirectIo) {
  int probe = open((native() + "/probe").c_str(), O_CREAT | O_RDWR | O_DIRECT, 0644);
  if (probe < 0 && errno == EINVAL) GTEST_SKIP() << "the backing filesystem refuses O_DIRECT";
  if (probe >= 0) close(probe);
  unlink((native() + "/probe").c_str());
  Parity([](Trace& t) {
    void* raw = nullptr;
    void* raw2 = nullptr;
    if (posix_memalign(&raw, 4096, 65536) != 0 || posix_memalign(&raw2, 4096, 65536) != 0) abort();
    std::string data = Pattern(65536, 6);
    memcpy(raw, data.data(), data.size());
    int fd =
        static_cast<int>(t.Ok("open O_DIRECT", open(t.C("d"), O_CREAT | O_RDWR | O_DIRECT, 0644)));
    t.Ret("direct write 64 KiB", pwrite(fd, raw, 65536, 0));
    t.Ret("direct write at 1 MiB", pwrite(fd, raw, 4096, 1 << 20));
    memset(raw2, 0, 65536);
    t.Ret("direct read", pread(fd, raw2, 65536, 0));
    t.Note(std::string("read back matches: ") +
           (memcmp(raw2, data.data(), 65536) == 0 ? "yes" : "no"));
    t.Ret("direct read at EOF", pread(fd, raw2, 4096, (1 << 20) + 4096));
    t.Fstat("d", fd);
    close(fd);
    // Buffered readers see what O_DIRECT wrote.
    t.Content("d");
    free(raw);
    free(raw2);
  });
}

TEST_P(PassthroughTest, FsyncAndFdatasync) {
  Parity([](Trace& t) {
    int fd = open(t.C("f"), O_CREAT | O_RDWR, 0644);
    t.Ret("write", write(fd, "durable", 7));
    t.Ret("fsync", fsync(fd));
    t.Ret("fdatasync", fdatasync(fd));
    t.Ret("sync_file_range",
          sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER));
    t.Ret("syncfs", syncfs(fd));
    close(fd);
    fd = open(t.C("f"), O_RDONLY);
    t.Ret("fsync read-only fd", fsync(fd));
    close(fd);
    int dfd = open(t.P("").c_str(), O_RDONLY | O_DIRECTORY);
    t.Ret("fsync dir", fsync(dfd));
    t.Ret("fdatasync dir", fdatasync(dfd));
    close(dfd);
    t.Content("f");
  });
}

TEST_P(PassthroughTest, Xattrs) {
  Parity([](Trace& t) {
    WriteFile(t.P("f"), "x");
    mkdir(t.C("d"), 0755);
    symlink("f", t.C("l"));
    t.Ret("set user.a", setxattr(t.C("f"), "user.a", "alpha", 5, 0));
    t.Ret("set user.b empty", setxattr(t.C("f"), "user.b", "", 0, 0));
    t.Ret("set user.big", setxattr(t.C("f"), "user.big", Pattern(3000, 7).data(), 3000, 0));
    t.Ret("create existing", setxattr(t.C("f"), "user.a", "again", 5, XATTR_CREATE));
    t.Ret("replace missing", setxattr(t.C("f"), "user.zz", "v", 1, XATTR_REPLACE));
    t.Ret("replace existing", setxattr(t.C("f"), "user.a", "ALPHA!", 6, XATTR_REPLACE));
    char buf[8192];
    t.Ret("size query", getxattr(t.C("f"), "user.a", nullptr, 0));
    ssize_t n = getxattr(t.C("f"), "user.a", buf, sizeof(buf));
    t.Ret("get user.a", n);
    if (n >= 0) t.Note("user.a = " + std::string(buf, static_cast<size_t>(n)));
    t.Ret("get too small", getxattr(t.C("f"), "user.a", buf, 2));
    t.Ret("get big", getxattr(t.C("f"), "user.big", buf, sizeof(buf)));
    t.Ret("get missing", getxattr(t.C("f"), "user.none", buf, sizeof(buf)));
    t.Ret("get empty", getxattr(t.C("f"), "user.b", buf, sizeof(buf)));
    n = listxattr(t.C("f"), buf, sizeof(buf));
    t.Ret("list", n);
    if (n > 0) {
      std::vector<std::string> names;
      for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(buf + i)) + 1)
        names.push_back(buf + i);
      std::sort(names.begin(), names.end());
      std::string joined;
      for (const std::string& s : names) joined += s + ",";
      t.Note("names: " + joined);
    }
    t.Ret("list size query", listxattr(t.C("f"), nullptr, 0));
    t.Ret("list too small", listxattr(t.C("f"), buf, 3));
    t.Ret("remove user.a", removexattr(t.C("f"), "user.a"));
    t.Ret("remove again", removexattr(t.C("f"), "user.a"));
    t.Ret("get removed", getxattr(t.C("f"), "user.a", buf, sizeof(buf)));
    t.Ret("dir set", setxattr(t.C("d"), "user.dir", "1", 1, 0));
    t.Ret("dir get", getxattr(t.C("d"), "user.dir", buf, sizeof(buf)));
    t.Ret("user.* on a symlink", lsetxattr(t.C("l"), "user.x", "1", 1, 0));
    t.Ret("trusted.* on a symlink", lsetxattr(t.C("l"), "trusted.x", "1", 1, 0));
    t.Ret("lget trusted.x", lgetxattr(t.C("l"), "trusted.x", buf, sizeof(buf)));
    t.Ret("get through symlink", getxattr(t.C("l"), "user.big", buf, sizeof(buf)));
    t.Ret("bad namespace", setxattr(t.C("f"), "bogus.x", "1", 1, 0));
    t.Ret("name too long",
          setxattr(t.C("f"), ("user." + std::string(300, 'n')).c_str(), "1", 1, 0));
    t.Ret("value too large", setxattr(t.C("f"), "user.huge", Pattern(70000, 8).data(), 70000, 0));
    int fd = open(t.C("f"), O_RDONLY);
    t.Ret("fsetxattr", fsetxattr(fd, "user.fd", "v", 1, 0));
    t.Ret("fgetxattr", fgetxattr(fd, "user.fd", buf, sizeof(buf)));
    t.Ret("fremovexattr", fremovexattr(fd, "user.fd"));
    close(fd);
    t.Stat("f");
  });
}

// Lock conflicts are only visible to a second process: the child reports what it sees.
std::string InChild(const std::function<std::string()>& fn) {
  ChildResult r = RunInChild(fn, std::nullopt, 20s);
  return r.ok ? r.output : "<child: " + r.problem + ">";
}

TEST_P(PassthroughTest, FlockAndFcntlLocks) {
  Parity([](Trace& t) {
    WriteFile(t.P("lock"), std::string(1000, 'l'));
    std::string path = t.P("lock");
    int fd = open(path.c_str(), O_RDWR);
    t.Ret("flock LOCK_EX", flock(fd, LOCK_EX));
    auto try_flock = [&path](int op) {
      return InChild([&path, op] {
        int cfd = open(path.c_str(), O_RDWR);
        int rv = flock(cfd, op | LOCK_NB);
        return rv == 0 ? std::string("0") : ErrnoName(errno);
      });
    };
    t.Note("child LOCK_SH|LOCK_NB while held: " + try_flock(LOCK_SH));
    t.Ret("flock LOCK_SH (downgrade)", flock(fd, LOCK_SH));
    t.Note("child LOCK_SH|LOCK_NB on shared: " + try_flock(LOCK_SH));
    t.Note("child LOCK_EX|LOCK_NB on shared: " + try_flock(LOCK_EX));
    t.Ret("flock LOCK_UN", flock(fd, LOCK_UN));
    t.Note("child LOCK_EX|LOCK_NB after unlock: " + try_flock(LOCK_EX));

    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 100;
    t.Ret("F_SETLK write [0,100)", fcntl(fd, F_SETLK, &fl));
    pid_t me = getpid();
    auto child_lock = [&path, me](int cmd, short type, off_t start, off_t len) {
      return InChild([&path, me, cmd, type, start, len] {
        int cfd = open(path.c_str(), O_RDWR);
        struct flock c {};
        c.l_type = type;
        c.l_whence = SEEK_SET;
        c.l_start = start;
        c.l_len = len;
        int rv = fcntl(cfd, cmd, &c);
        if (rv != 0) return ErrnoName(errno);
        if (cmd == F_GETLK || cmd == F_OFD_GETLK) {
          std::string who = c.l_pid == me ? "parent" : std::to_string(c.l_pid);
          return "type=" + std::to_string(c.l_type) + " start=" + std::to_string(c.l_start) +
                 " len=" + std::to_string(c.l_len) + " pid=" + who;
        }
        return std::string("0");
      });
    };
    t.Note("child F_GETLK [50,60): " + child_lock(F_GETLK, F_WRLCK, 50, 10));
    t.Note("child F_SETLK [50,60): " + child_lock(F_SETLK, F_WRLCK, 50, 10));
    t.Note("child F_SETLK read [50,60): " + child_lock(F_SETLK, F_RDLCK, 50, 10));
    t.Note("child F_SETLK [200,210): " + child_lock(F_SETLK, F_WRLCK, 200, 10));
    t.Note("child F_GETLK [200,210): " + child_lock(F_GETLK, F_WRLCK, 200, 10));
    fl.l_type = F_UNLCK;
    t.Ret("F_SETLK unlock", fcntl(fd, F_SETLK, &fl));
    t.Note("child F_SETLK [50,60) after unlock: " + child_lock(F_SETLK, F_WRLCK, 50, 10));
    struct flock ofd {};
    ofd.l_type = F_WRLCK;
    ofd.l_whence = SEEK_SET;
    ofd.l_start = 10;
    ofd.l_len = 20;
    t.Ret("F_OFD_SETLK [10,30)", fcntl(fd, F_OFD_SETLK, &ofd));
    t.Note("child F_OFD_GETLK [0,100): " + child_lock(F_OFD_GETLK, F_WRLCK, 0, 100));
    t.Note("child F_OFD_SETLK [15,16): " + child_lock(F_OFD_SETLK, F_WRLCK, 15, 1));
    close(fd);
    t.Note("child F_OFD_SETLK after close: " + child_lock(F_OFD_SETLK, F_WRLCK, 15, 1));
  });
}

TEST_P(PassthroughTest, Utimensat) {
  Parity([](Trace& t) {
    WriteFile(t.P("f"), "t");
    symlink("f", t.C("l"));
    mkdir(t.C("d"), 0755);
    struct timespec ts[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
    t.Ret("set both", utimensat(AT_FDCWD, t.C("f"), ts, 0));
    t.Stat("f", kMtime | kAtime);
    struct timespec omit_atime[2] = {{0, UTIME_OMIT}, {1300000000, 5}};
    t.Ret("omit atime", utimensat(AT_FDCWD, t.C("f"), omit_atime, 0));
    t.Stat("f", kMtime | kAtime);
    struct timespec now_mtime[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    struct timespec before = Now(CLOCK_REALTIME_COARSE);
    t.Ret("mtime now, atime omitted", utimensat(AT_FDCWD, t.C("f"), now_mtime, 0));
    struct timespec after = Now(CLOCK_REALTIME);
    struct stat st {};
    lstat(t.C("f"), &st);
    t.Note(std::string("mtime is now: ") + (Within(st.st_mtim, before, after) ? "yes" : "no"));
    t.Stat("f", kAtime);
    before = Now(CLOCK_REALTIME_COARSE);
    t.Ret("both now (NULL)", utimensat(AT_FDCWD, t.C("f"), nullptr, 0));
    after = Now(CLOCK_REALTIME);
    lstat(t.C("f"), &st);
    t.Note(std::string("atime and mtime are now: ") +
           (Within(st.st_mtim, before, after) && Within(st.st_atim, before, after) ? "yes" : "no"));
    t.Ret("symlink itself", utimensat(AT_FDCWD, t.C("l"), ts, AT_SYMLINK_NOFOLLOW));
    t.Stat("l", kMtime | kAtime);
    t.Stat("f", kMode);
    t.Ret("dir", utimensat(AT_FDCWD, t.C("d"), ts, 0));
    t.Stat("d", kMtime | kAtime);
    int fd = open(t.C("f"), O_RDONLY);
    struct timespec fts[2] = {{1100000000, 1}, {1100000000, 2}};
    t.Ret("futimens", futimens(fd, fts));
    t.Fstat("f", fd, kMtime | kAtime);
    close(fd);
    struct timespec bad[2] = {{0, 2000000000}, {0, 0}};
    t.Ret("invalid nsec", utimensat(AT_FDCWD, t.C("f"), bad, 0));
    t.Ret("missing", utimensat(AT_FDCWD, t.C("none"), ts, 0));
    t.Ret("utimes", utimes(t.C("f"), nullptr));
    // A write moves mtime forward from a time set in the past.
    t.Ret("set past", utimensat(AT_FDCWD, t.C("f"), ts, 0));
    fd = open(t.C("f"), O_WRONLY);
    t.Ret("write", write(fd, "x", 1));
    close(fd);
    lstat(t.C("f"), &st);
    t.Note(std::string("write updated mtime: ") + (st.st_mtim.tv_sec > 1200000000 ? "yes" : "no"));
  });
}

TEST_P(PassthroughTest, ChmodChown) {
  Parity([](Trace& t) {
    WriteFile(t.P("f"), "c");
    mkdir(t.C("d"), 0755);
    symlink("f", t.C("l"));
    t.Ret("chmod 0600", chmod(t.C("f"), 0600));
    t.Stat("f");
    t.Ret("chmod 04755", chmod(t.C("f"), 04755));
    t.Stat("f");
    t.Ret("chown 1000:1000 (clears setuid)", chown(t.C("f"), 1000, 1000));
    t.Stat("f");
    t.Ret("chmod 02755", chmod(t.C("f"), 02755));
    t.Ret("chown -1:2000", chown(t.C("f"), static_cast<uid_t>(-1), 2000));
    t.Stat("f");
    t.Ret("lchown symlink", lchown(t.C("l"), 1234, 5678));
    t.Stat("l", kMode | kOwner);
    t.Stat("f", kOwner);
    t.Ret("chown through symlink", chown(t.C("l"), 4321, 4321));
    t.Stat("f", kOwner);
    t.Stat("l", kOwner);
    t.Ret("fchmodat nofollow symlink", fchmodat(AT_FDCWD, t.C("l"), 0700, AT_SYMLINK_NOFOLLOW));
    t.Stat("f", kMode);
    t.Ret("chmod dir 01777", chmod(t.C("d"), 01777));
    t.Stat("d", kDirFields);
    t.Ret("chmod dir 02750", chmod(t.C("d"), 02750));
    t.Stat("d", kDirFields);
    int fd = open(t.C("f"), O_RDONLY);
    t.Ret("fchmod 0640", fchmod(fd, 0640));
    t.Ret("fchown 0:0", fchown(fd, 0, 0));
    t.Fstat("f", fd);
    close(fd);
    t.Ret("chmod missing", chmod(t.C("none"), 0644));
    t.Ret("chmod 07777", chmod(t.C("f"), 07777));
    t.Stat("f");
  });
}

TEST_P(PassthroughTest, MknodAndMkfifo) {
  Parity([](Trace& t) {
    t.Ret("mkfifo", mkfifo(t.C("fifo"), 0640));
    t.Stat("fifo");
    t.Ret("mknod fifo", mknod(t.C("fifo2"), S_IFIFO | 0600, 0));
    t.Stat("fifo2");
    t.Ret("mknod char device 1:3", mknod(t.C("null"), S_IFCHR | 0666, makedev(1, 3)));
    t.Stat("null");
    t.Ret("mknod block device 7:0", mknod(t.C("loop"), S_IFBLK | 0600, makedev(7, 0)));
    t.Stat("loop");
    t.Ret("mknod socket", mknod(t.C("sock"), S_IFSOCK | 0644, 0));
    t.Stat("sock");
    t.Ret("mknod regular", mknod(t.C("reg"), S_IFREG | 0644, 0));
    t.Stat("reg");
    t.Ret("mknod existing", mknod(t.C("reg"), S_IFREG | 0644, 0));
    t.Ret("mkfifo existing", mkfifo(t.C("fifo"), 0644));
    int fd =
        static_cast<int>(t.Ok("open fifo rdwr nonblock", open(t.C("fifo"), O_RDWR | O_NONBLOCK)));
    if (fd >= 0) {
      t.Ret("write to fifo", write(fd, "through", 7));
      char buf[16];
      ssize_t n = read(fd, buf, sizeof(buf));
      t.Ret("read from fifo", n);
      if (n > 0) t.Note("fifo data: " + std::string(buf, static_cast<size_t>(n)));
      close(fd);
    }
    t.Listing("");
    t.Ret("unlink fifo", unlink(t.C("fifo")));
    t.Ret("unlink device", unlink(t.C("null")));
  });
}

TEST_P(PassthroughTest, UnlinkOfOpenFile) {
  Parity([](Trace& t) {
    WriteFile(t.P("u"), "before");
    int fd = static_cast<int>(t.Ok("open", open(t.C("u"), O_RDWR)));
    int fd2 = open(t.C("u"), O_RDONLY);
    t.Ret("unlink", unlink(t.C("u")));
    t.Stat("u");
    t.Fstat("u (unlinked)", fd, kMode | kNlink | kSize);
    t.Ret("write after unlink", pwrite(fd, "+after", 6, 6));
    t.Note("read back: " + ReadFd(fd, 100, 0));
    t.Note("second fd reads: " + ReadFd(fd2, 100, 0));
    t.Ret("ftruncate unlinked", ftruncate(fd, 3));
    t.Ret("fchmod unlinked", fchmod(fd, 0600));
    t.Ret("fsetxattr unlinked", fsetxattr(fd, "user.k", "v", 1, 0));
    t.Fstat("u (truncated)", fd, kMode | kNlink | kSize);
    t.Ret("fsync unlinked", fsync(fd));
    WriteFile(t.P("u"), "a new file");
    t.Note("old fd still reads: " + ReadFd(fd, 100, 0));
    t.Content("u");
    t.Listing("");
    close(fd);
    t.Note("second fd after first close: " + ReadFd(fd2, 100, 0));
    close(fd2);
    t.Listing("");
    // Rename over an open file.
    WriteFile(t.P("v"), "victim");
    WriteFile(t.P("w"), "winner");
    int fv = open(t.C("v"), O_RDONLY);
    t.Ret("rename over open file", rename(t.C("w"), t.P("v").c_str()));
    t.Note("open victim reads: " + ReadFd(fv, 100, 0));
    close(fv);
    t.Content("v");
    t.Listing("");
  });
}

TEST_P(PassthroughTest, Statx) {
  Parity([](Trace& t) {
    WriteFile(t.P("f"), Pattern(5000, 9));
    symlink("f", t.C("l"));
    mkdir(t.C("d"), 0750);
    auto record = [&t](const std::string& label, int dirfd, const std::string& path, int flags) {
      struct statx stx {};
      int rv = statx(dirfd, path.c_str(), flags, STATX_BASIC_STATS | STATX_BTIME, &stx);
      if (rv != 0) {
        t.Ret("statx " + label, rv);
        return;
      }
      char buf[256];
      snprintf(buf, sizeof(buf), "basic=%s mode=0%o nlink=%u uid=%u gid=%u size=%llu blocks=%llu",
               (stx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS ? "all" : "partial",
               stx.stx_mode, stx.stx_nlink, stx.stx_uid, stx.stx_gid,
               static_cast<unsigned long long>(stx.stx_size),
               static_cast<unsigned long long>(stx.stx_blocks));
      t.Note("statx " + label + " -> " + buf);
    };
    record("file", AT_FDCWD, t.P("f"), 0);
    record("symlink nofollow", AT_FDCWD, t.P("l"), AT_SYMLINK_NOFOLLOW);
    record("symlink follow", AT_FDCWD, t.P("l"), 0);
    record("dir", AT_FDCWD, t.P("d"), 0);
    record("force sync", AT_FDCWD, t.P("f"), AT_STATX_FORCE_SYNC);
    record("dont sync", AT_FDCWD, t.P("f"), AT_STATX_DONT_SYNC);
    record("missing", AT_FDCWD, t.P("none"), 0);
    int fd = open(t.C("f"), O_RDONLY);
    record("empty path on fd", fd, "", AT_EMPTY_PATH);
    close(fd);
    int dfd = open(t.P("").c_str(), O_RDONLY | O_DIRECTORY);
    record("relative to dirfd", dfd, "f", 0);
    close(dfd);
  });
}

// Not a parity run: 100,000 names through the mount's readdir, each seen exactly once. Run
// once, on a volume with a quota (the product's mode), to keep the suite short.
class LargeDirectoryTest : public VolumeTest {
 protected:
  void SetUp() override {
    VolumeTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=4Gi"));
  }
  std::string ServerFds() {
    if (server() == nullptr) return "";
    DIR* d = opendir(("/proc/" + std::to_string(server()->pid()) + "/fd").c_str());
    if (d == nullptr) return "";
    int n = 0;
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
    return " (claimfs holds " + std::to_string(n) + " open fds)";
  }
};

TEST_F(LargeDirectoryTest, ReaddirOfHundredThousandEntries) {
  constexpr int kEntries = 100000;
  ASSERT_EQ(mkdir(P("big").c_str(), 0755), 0) << strerror(errno);
  char name[32];
  for (int i = 0; i < kEntries; ++i) {
    snprintf(name, sizeof(name), "/big/entry-%06d", i);
    int rv = mknod((root() + name).c_str(), S_IFREG | 0644, 0);
    ASSERT_EQ(rv, 0) << name << ": " << strerror(errno) << ServerFds();
  }
  for (int pass = 0; pass < 2; ++pass) {
    DIR* d = opendir(P("big").c_str());
    ASSERT_NE(d, nullptr) << strerror(errno);
    std::vector<uint8_t> seen(kEntries, 0);
    int dots = 0, others = 0, duplicates = 0, wrong_type = 0;
    errno = 0;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") {
        ++dots;
        continue;
      }
      int idx = -1;
      if (sscanf(e->d_name, "entry-%06d", &idx) != 1 || idx < 0 || idx >= kEntries) {
        ++others;
        continue;
      }
      if (seen[idx]++) ++duplicates;
      if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) ++wrong_type;
    }
    int err = errno;
    closedir(d);
    EXPECT_EQ(err, 0) << "readdir failed: " << strerror(err);
    EXPECT_EQ(dots, 2) << "pass " << pass;
    EXPECT_EQ(others, 0) << "pass " << pass << ": unexpected names";
    EXPECT_EQ(duplicates, 0) << "pass " << pass << ": names seen more than once";
    EXPECT_EQ(wrong_type, 0) << "pass " << pass << ": d_type not DT_REG";
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 0), 0) << "pass " << pass << ": names missing";
  }
  // Removing while reading: every name not yet removed is still seen exactly once.
  DIR* d = opendir(P("big").c_str());
  ASSERT_NE(d, nullptr);
  int removed = 0;
  std::unordered_set<std::string> names;
  int duplicates = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (!names.insert(n).second) ++duplicates;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0) ++removed;
  }
  closedir(d);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(removed, kEntries);
  EXPECT_EQ(rmdir(P("big").c_str()), 0) << strerror(errno);
}

INSTANTIATE_TEST_SUITE_P(Volume, PassthroughTest,
                         ::testing::Values("", "capacity=4Gi,inodes=1000000"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param).empty() ? "NoQuota" : "WithQuota";
                         });

}  // namespace
}  // namespace claimfs::it
