// Confinement attacks (issue 2, Semantics: "Nothing done inside a volume — symlinks, renames
// racing with lookups, hard links — makes the daemon read, write, chmod or delete anything
// outside SOURCE").
//
// The trick that makes these tests sharp: MOUNTPOINT (base/m/mnt) sits one level deeper than
// SOURCE (base/src), so a relative symlink "../outside/..." means base/outside/... to a daemon
// that follows it in the backing directory, but base/m/outside/... (which does not exist) to
// the kernel resolving it on the mount. Anything that changes under base/outside was therefore
// done by the daemon, never legitimately by the client.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

// Everything observable about a tree: per path, type, mode, owner, size, nlink, mtime, xattr
// names and content. Compared before and after an attack.
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> snap;
  std::vector<std::string> todo = {""};
  while (!todo.empty()) {
    std::string rel = todo.back();
    todo.pop_back();
    std::string path = rel.empty() ? root : root + "/" + rel;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) {
      snap[rel] = "lstat: " + ErrnoName(errno);
      continue;
    }
    char buf[512];
    snprintf(buf, sizeof(buf), "mode=0%o uid=%u gid=%u size=%lld nlink=%lu mtime=%lld.%09ld",
             st.st_mode, st.st_uid, st.st_gid, static_cast<long long>(st.st_size),
             static_cast<unsigned long>(st.st_nlink), static_cast<long long>(st.st_mtim.tv_sec),
             st.st_mtim.tv_nsec);
    std::string entry = buf;
    char names[4096];
    ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
    if (n > 0) {
      std::vector<std::string> list;
      for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(names + i)) + 1) {
        list.push_back(names + i);
      }
      std::sort(list.begin(), list.end());
      entry += " xattrs=";
      for (const std::string& x : list) entry += x + ",";
    }
    if (S_ISREG(st.st_mode)) {
      entry += " content=" + ReadFile(path);
    } else if (S_ISDIR(st.st_mode)) {
      DIR* d = opendir(path.c_str());
      if (d != nullptr) {
        while (dirent* e = readdir(d)) {
          std::string name = e->d_name;
          if (name == "." || name == "..") continue;
          todo.push_back(rel.empty() ? name : rel + "/" + name);
        }
        closedir(d);
      }
    }
    snap[rel] = entry;
  }
  return snap;
}

std::string Diff(const std::map<std::string, std::string>& before,
                 const std::map<std::string, std::string>& after) {
  std::string out;
  for (const auto& [path, what] : before) {
    auto it = after.find(path);
    if (it == after.end()) {
      out += "  removed: " + path + "\n";
    } else if (it->second != what) {
      out += "  changed: " + path + "\n    before: " + what + "\n    after:  " + it->second + "\n";
    }
  }
  for (const auto& [path, what] : after) {
    if (!before.count(path)) out += "  created: " + path + " (" + what + ")\n";
  }
  return out;
}

class ConfinementTest : public VolumeTest {
 protected:
  void SetUp() override {
    VolumeTest::SetUp();
    if (HasFatalFailure()) return;
    // The things no volume operation may touch.
    ASSERT_TRUE(WriteFile(outside() + "/secret", "outside-secret\n"));
    ASSERT_EQ(chmod((outside() + "/secret").c_str(), 0640), 0);
    ASSERT_EQ(mkdir((outside() + "/dir").c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(outside() + "/dir/f", "outside-dir-file\n"));
    ASSERT_EQ(chmod((outside() + "/dir/f").c_str(), 0600), 0);
    struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
    for (const char* p : {"/secret", "/dir/f", "/dir", ""}) {
      ASSERT_EQ(utimensat(AT_FDCWD, (outside() + p).c_str(), old, AT_SYMLINK_NOFOLLOW), 0);
    }
    ASSERT_NO_FATAL_FAILURE(MountVolume("allow_other"));
    // The relative links must not resolve on the mount side; see the file comment.
    struct stat st;
    ASSERT_NE(stat((base() + "/m/outside").c_str(), &st), 0);
    before_ = Snapshot(outside());
  }

  void ExpectOutsideUntouched(const std::string& context) {
    std::string diff = Diff(before_, Snapshot(outside()));
    EXPECT_EQ(diff, "") << context << ": the daemon changed things outside SOURCE:\n" << diff;
  }

  std::map<std::string, std::string> before_;
};

// Builds "../../../..(x20)/<outside without the leading slash>/secret": the "../../etc" shape.
std::string DotDotFlood(const std::string& absolute) {
  std::string s;
  for (int i = 0; i < 20; ++i) s += "../";
  return s + absolute.substr(1);
}

TEST_F(ConfinementTest, OperationsOnSymlinksPointingOutside) {
  const std::vector<std::pair<std::string, std::string>> links = {
      {"rel", "../outside/secret"},
      {"dotdot", DotDotFlood(outside() + "/secret")},
      {"abs", outside() + "/secret"},
  };
  for (const auto& [name, target] : links) {
    SCOPED_TRACE(name + " -> " + target);
    std::string link = P(name);
    ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0) << strerror(errno);
    char buf[4096];
    ssize_t n = readlink(link.c_str(), buf, sizeof(buf));
    ASSERT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), target);

    // Opening the link itself is refused.
    for (int flags : {O_RDONLY | O_NOFOLLOW, O_RDWR | O_NOFOLLOW, O_WRONLY | O_TRUNC | O_NOFOLLOW,
                      O_WRONLY | O_CREAT | O_NOFOLLOW}) {
      int fd = open(link.c_str(), flags, 0666);
      EXPECT_LT(fd, 0) << "open flags " << flags;
      EXPECT_EQ(errno, ELOOP) << "open flags " << flags;
      if (fd >= 0) close(fd);
    }
    int pfd = open(link.c_str(), O_PATH | O_NOFOLLOW);
    EXPECT_GE(pfd, 0) << strerror(errno);
    if (pfd >= 0) {
      fchmodat(pfd, "", 0777, AT_EMPTY_PATH);  // on a symlink: refused or a no-op
      close(pfd);
    }
    // Metadata changes aimed at the link, never at its target.
    fchmodat(AT_FDCWD, link.c_str(), 0777, AT_SYMLINK_NOFOLLOW);
    EXPECT_EQ(lchown(link.c_str(), 1000, 1000), 0) << strerror(errno);
    struct stat st {};
    ASSERT_EQ(lstat(link.c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    EXPECT_EQ(st.st_uid, 1000u);
    struct timespec ts[2] = {{1500000000, 0}, {1500000000, 0}};
    EXPECT_EQ(utimensat(AT_FDCWD, link.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << strerror(errno);
    lsetxattr(link.c_str(), "user.x", "1", 1, 0);  // EPERM on symlinks
    EXPECT_EQ(lsetxattr(link.c_str(), "trusted.claimfs-test", "1", 1, 0), 0) << strerror(errno);
    lremovexattr(link.c_str(), "trusted.claimfs-test");
    lgetxattr(link.c_str(), "trusted.x", buf, sizeof(buf));
    // Creating over the name.
    EXPECT_NE(mkdir(link.c_str(), 0777), 0);
    EXPECT_NE(mknod(link.c_str(), S_IFREG | 0666, 0), 0);
    EXPECT_NE(symlink("x", link.c_str()), 0);
    // Hard links of the link: without AT_SYMLINK_FOLLOW a link to the symlink itself.
    std::string hl = P(name + "-hl");
    EXPECT_EQ(linkat(AT_FDCWD, link.c_str(), AT_FDCWD, hl.c_str(), 0), 0) << strerror(errno);
    ASSERT_EQ(lstat(hl.c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    if (mounted()) {  // natively nothing stops a hard link to a file of the same filesystem
      EXPECT_NE(
          linkat(AT_FDCWD, link.c_str(), AT_FDCWD, P(name + "-hl2").c_str(), AT_SYMLINK_FOLLOW), 0);
    }
    // Renames and exchanges of the link.
    std::string moved = P(name + "-moved");
    EXPECT_EQ(rename(link.c_str(), moved.c_str()), 0) << strerror(errno);
    ASSERT_TRUE(WriteFile(P(name + "-regular"), "inside"));
    EXPECT_EQ(
        renameat2(AT_FDCWD, moved.c_str(), AT_FDCWD, P(name + "-regular").c_str(), RENAME_EXCHANGE),
        0)
        << strerror(errno);
    EXPECT_EQ(ReadFile(moved), "inside");
    EXPECT_EQ(rename(P(name + "-regular").c_str(), link.c_str()), 0) << strerror(errno);
    // Removing the link and its hard link.
    EXPECT_EQ(unlink(hl.c_str()), 0) << strerror(errno);
    EXPECT_EQ(unlink(link.c_str()), 0) << strerror(errno);
    EXPECT_EQ(unlink(moved.c_str()), 0) << strerror(errno);
    ExpectOutsideUntouched(name);
  }
}

TEST_F(ConfinementTest, FollowingRelativeLinksStaysOnTheMountSide) {
  // These operations follow the link on the client side, where "../outside" does not exist.
  ASSERT_EQ(symlink("../outside/secret", P("rel").c_str()), 0);
  ASSERT_EQ(symlink("../outside/dir", P("reldir").c_str()), 0);
  ASSERT_EQ(symlink("..", P("up").c_str()), 0);
  EXPECT_LT(open(P("rel").c_str(), O_RDONLY), 0);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_LT(open(P("rel").c_str(), O_WRONLY | O_TRUNC), 0);
  EXPECT_LT(open(P("rel").c_str(), O_WRONLY | O_CREAT, 0666), 0);
  EXPECT_NE(truncate(P("rel").c_str(), 0), 0);
  EXPECT_NE(chmod(P("rel").c_str(), 0777), 0);
  EXPECT_NE(chown(P("rel").c_str(), 1000, 1000), 0);
  EXPECT_NE(setxattr(P("rel").c_str(), "user.x", "1", 1, 0), 0);
  EXPECT_NE(utimensat(AT_FDCWD, P("rel").c_str(), nullptr, 0), 0);
  EXPECT_LT(open(P("reldir/f").c_str(), O_RDWR), 0);
  EXPECT_LT(open(P("reldir/new").c_str(), O_WRONLY | O_CREAT, 0666), 0);
  EXPECT_NE(mkdir(P("reldir/sub").c_str(), 0777), 0);
  EXPECT_NE(unlink(P("reldir/f").c_str()), 0);
  EXPECT_NE(rename(P("reldir/f").c_str(), P("stolen").c_str()), 0);
  // ".." out of the mount root is the parent of the mount point, not of SOURCE.
  EXPECT_NE(access(P("up/outside/secret").c_str(), F_OK), 0);
  ExpectOutsideUntouched("following relative links");
}

TEST_F(ConfinementTest, HardLinkToOutsideFileFails) {
  CLAIMFS_REQUIRE_MOUNT();  // the boundary (EXDEV) exists only on a mount
  // Straight across the mount boundary.
  EXPECT_NE(link((outside() + "/secret").c_str(), P("stolen").c_str()), 0);
  EXPECT_EQ(errno, EXDEV);
  // Through a link the client follows to the outside file.
  ASSERT_EQ(symlink((outside() + "/secret").c_str(), P("abs").c_str()), 0);
  EXPECT_NE(linkat(AT_FDCWD, P("abs").c_str(), AT_FDCWD, P("stolen2").c_str(), AT_SYMLINK_FOLLOW),
            0);
  EXPECT_EQ(errno, EXDEV);
  // Through a relative link the daemon could follow in the backing directory.
  ASSERT_EQ(symlink("../outside/secret", P("rel").c_str()), 0);
  EXPECT_NE(linkat(AT_FDCWD, P("rel").c_str(), AT_FDCWD, P("stolen3").c_str(), AT_SYMLINK_FOLLOW),
            0);
  EXPECT_EQ(linkat(AT_FDCWD, P("rel").c_str(), AT_FDCWD, P("samelink").c_str(), 0), 0)
      << strerror(errno);
  struct stat st {};
  ASSERT_EQ(lstat((source() + "/samelink").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the backing name must be a link to the symlink, not to "
                                      "the file outside";
  ASSERT_EQ(stat((outside() + "/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "a hard link to the outside file was made";
  ExpectOutsideUntouched("hard links");
}

// A thread swaps a real directory with a symlink to an outside directory while others create,
// chmod, write, truncate and remove files through the path. Whatever the daemon resolves, it
// must never act on the outside directory.
TEST_F(ConfinementTest, RenameRaceWithSymlinkToOutside) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0777), 0);
  ASSERT_TRUE(WriteFile(P("d/f"), "inside"));
  ASSERT_EQ(symlink("../outside/dir", P("s").c_str()), 0);
  constexpr long kMaxSwaps = 100000;
  std::atomic<bool> stop{false};
  std::atomic<long> swaps{0}, ops{0};
  std::atomic<int> swap_errors{0};
  auto deadline = std::chrono::steady_clock::now() + 2s;

  std::thread swapper([&] {
    std::string d = P("d"), s = P("s"), tmp = P("tmp");
    while (!stop && swaps < kMaxSwaps) {
      if (renameat2(AT_FDCWD, d.c_str(), AT_FDCWD, s.c_str(), RENAME_EXCHANGE) != 0) {
        // Without RENAME_EXCHANGE, three renames make the same race.
        if (rename(d.c_str(), tmp.c_str()) == 0) {
          rename(s.c_str(), d.c_str());
          rename(tmp.c_str(), s.c_str());
        } else {
          ++swap_errors;
        }
      }
      ++swaps;
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) {
    workers.emplace_back([&, w] {
      std::string f = P("d/f"), g = P("d/g" + std::to_string(w)),
                  sub = P("d/sub" + std::to_string(w));
      std::string sf = P("s/f"), sg = P("s/g" + std::to_string(w));
      struct timespec ts[2] = {{1600000000, 0}, {1600000000, 0}};
      while (!stop) {
        for (const std::string& path : {f, g, sf, sg}) {
          int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0666);
          if (fd >= 0) {
            (void)!write(fd, "pwned", 5);
            fchmod(fd, 0666);
            close(fd);
          }
          chmod(path.c_str(), 0606);
          chown(path.c_str(), 1000, 1000);
          truncate(path.c_str(), 1);
          utimensat(AT_FDCWD, path.c_str(), ts, 0);
          setxattr(path.c_str(), "user.pwned", "1", 1, 0);
          ++ops;
        }
        mkdir(sub.c_str(), 0777);
        rmdir(sub.c_str());
        unlink(g.c_str());
        unlink(f.c_str());
        link(P("d/g" + std::to_string(w)).c_str(), P("d/h" + std::to_string(w)).c_str());
        unlink(P("d/h" + std::to_string(w)).c_str());
        ++ops;
      }
    });
  }
  while (std::chrono::steady_clock::now() < deadline && swaps < kMaxSwaps) {
    std::this_thread::sleep_for(10ms);
  }
  stop = true;
  swapper.join();
  for (std::thread& t : workers) t.join();
  printf("rename race: %ld swaps, %ld operations\n", swaps.load(), ops.load());
  RecordProperty("swaps", static_cast<int>(swaps));
  RecordProperty("ops", static_cast<int>(ops));
  EXPECT_GT(swaps, 100) << "the race barely ran";
  EXPECT_EQ(swap_errors, 0) << "renames failed";
  ExpectOutsideUntouched("after " + std::to_string(swaps) + " swaps, " + std::to_string(ops) +
                         " operations");
}

// The same attack made behind the daemon's back: the backing directory changes under a live
// mount (as another process on the host could do), and the volume is used afterwards.
TEST_F(ConfinementTest, BackingDirectoryReplacedBySymlink) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0777), 0);
  ASSERT_TRUE(WriteFile(P("d/f"), "inside"));
  int dfd = open(P("d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  struct stat st;
  ASSERT_EQ(stat(P("d/f").c_str(), &st), 0);  // the kernel and the daemon now know d and d/f
  ASSERT_EQ(rename((source() + "/d").c_str(), (source() + "/d-real").c_str()), 0);
  ASSERT_EQ(symlink("../outside/dir", (source() + "/d").c_str()), 0);
  // Use the cached names and the open directory fd.
  int fd = open(P("d/f").c_str(), O_WRONLY | O_TRUNC);
  if (fd >= 0) {
    (void)!write(fd, "pwned", 5);
    close(fd);
  }
  chmod(P("d/f").c_str(), 0666);
  truncate(P("d/f").c_str(), 0);
  setxattr(P("d/f").c_str(), "user.pwned", "1", 1, 0);
  fd = openat(dfd, "new", O_CREAT | O_WRONLY, 0666);
  if (fd >= 0) close(fd);
  fd = openat(dfd, "f", O_WRONLY | O_APPEND);
  if (fd >= 0) {
    (void)!write(fd, "pwned", 5);
    close(fd);
  }
  mkdirat(dfd, "sub", 0777);
  unlinkat(dfd, "f", 0);
  fchmod(dfd, 0777);
  close(dfd);
  ExpectOutsideUntouched("after the backing directory was swapped for a symlink");
}

}  // namespace
}  // namespace claimfs::it
