// Never a bare mountpoint (issue 10, phase 1): whatever dies when, a path under the mount root is
// the live volume or refuses every write; it is never the host disk. Real daemon, real kill -9.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "daemon/as_user.h"
#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

const Identity kStranger{1003, 1003, {}};

std::string ErrnoName(int err) {
  switch (err) {
    case 0: return "ok";
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOTCONN: return "ENOTCONN";
    case ECONNABORTED: return "ECONNABORTED";
    case EEXIST: return "EEXIST";
    default: return std::strerror(err);
  }
}

// Regular files (and anything else but directories) below the directory `dir_fd`, with their
// sizes, as "path (N bytes)"; no symlink is followed. `skip_top` names entries of the top level
// that are expected there.
void Walk(int dir_fd, const std::string& prefix, const std::vector<std::string>& skip_top,
          bool top, uint64_t* bytes, std::vector<std::string>* found) {
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
  if (d == nullptr) {
    found->push_back(prefix + ": cannot list: " + std::strerror(errno));
    return;
  }
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (top && std::find(skip_top.begin(), skip_top.end(), name) != skip_top.end()) continue;
    struct stat st;
    if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    std::string path = prefix + "/" + name;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        found->push_back(path + ": cannot open: " + std::strerror(errno));
        continue;
      }
      Walk(sub, path, skip_top, false, bytes, found);
      close(sub);
      continue;
    }
    *bytes += static_cast<uint64_t>(st.st_size);
    found->push_back(path + " (" + std::to_string(st.st_size) + " bytes)");
  }
  closedir(d);
}

// What is in the directory `path` itself, below every mount stacked inside it: a non-recursive
// clone of it (open_tree) carries none of the mounts below it, so a volume's mountpoint shows
// the directory underneath. For a mount root that is a tmpfs, that is the tmpfs.
struct Contents {
  uint64_t bytes = 0;
  std::vector<std::string> entries;
  std::string Describe() const {
    std::string out;
    for (const std::string& e : entries) out += "  " + e + "\n";
    return out.empty() ? "  (nothing)\n" : out;
  }
};
Contents Underneath(const std::string& path, const std::vector<std::string>& skip_top) {
  Contents c;
  int clone = open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (clone < 0) {
    c.entries.push_back(path + ": open_tree: " + std::strerror(errno));
    return c;
  }
  Walk(clone, path, skip_top, true, &c.bytes, &c.entries);
  close(clone);
  return c;
}

// errno of creating a file at `path` (0: it was created, and is removed again).
int CreateError(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  close(fd);
  unlink(path.c_str());
  return 0;
}

class BareMountpoint : public DaemonTest {
 protected:
  void TearDown() override {
    unsetenv("CLAIMFS_CRASH_AT");
    DaemonTest::TearDown();
  }

  // Starts the daemon with CLAIMFS_CRASH_AT=point in its environment only.
  ::testing::AssertionResult StartWithCrashPoint(const std::string& point) {
    setenv("CLAIMFS_CRASH_AT", point.c_str(), 1);
    auto started = StartDaemon();
    unsetenv("CLAIMFS_CRASH_AT");
    return started;
  }

  ::testing::AssertionResult WaitDaemonExit(std::chrono::milliseconds timeout = 15s) {
    if (WaitFor([&] { return !DaemonRunning(); }, timeout, 20ms)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "the daemon did not reach its crash point; log:\n"
                                         << DaemonLog();
  }

  std::string ClaimYaml(const std::string& name) {
    return "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: " + name +
           "\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      "
           "storage: 16Mi\n";
  }
};

// Issue 10: after a kill -9 the daemon detached the dead mounts and mounted the new ones only
// afterwards; a program that reopened its file by path in between wrote to the host disk (fsync
// succeeded, no quota), and the new mount hid the file.
TEST_F(BareMountpoint, WritesByPathDuringKill9AndRestartNeverLandOutsideTheVolume) {
  ASSERT_TRUE(StartDaemon());
  const std::vector<std::string> claims = {"w0", "w1", "w2", "w3"};
  for (const std::string& c : claims) ASSERT_TRUE(CreateDynamicClaim(c, "64Mi"));

  // Successful records per writer, in memory shared with the children.
  auto* written = static_cast<std::atomic<uint64_t>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(written, MAP_FAILED);
  std::vector<pid_t> writers;
  for (size_t i = 0; i < claims.size(); ++i) {
    std::string file = MountPath(claims[i]) + "/log";
    writers.push_back(SpawnFunction([file, i, written] {
      std::string record(512, static_cast<char>('a' + i));
      record.back() = '\n';
      while (true) {
        // Reopened by path every time, as a program that retries after an error would.
        int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
          usleep(100);
          continue;
        }
        if (write(fd, record.data(), record.size()) == static_cast<ssize_t>(record.size()) &&
            fsync(fd) == 0) {
          written[i]++;
        }
        close(fd);
      }
      return 0;
    }));
  }
  for (int round = 0; round < 10; ++round) {
    std::this_thread::sleep_for(300ms);
    Kill9();
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(StartDaemon()) << "restart " << round;
    for (const std::string& c : claims) ASSERT_TRUE(WaitBoundAndMounted(c)) << "restart " << round;
  }
  std::this_thread::sleep_for(300ms);
  for (pid_t w : writers) KillSpawned(w);
  for (size_t i = 0; i < claims.size(); ++i) {
    EXPECT_GT(written[i].load(), 0u) << "writer " << i << " never wrote to its volume";
  }
  munmap(written, 4096);

  // The mount root as it is below the volumes (the tmpfs, or the plain directory of old), the
  // data directory below any mount root, and the pool outside the volume directories.
  Contents root = Underneath(data_dir() + "/claims", {".claimfsd.lock"});
  EXPECT_EQ(root.bytes, 0u) << "written below the volumes' mountpoints:\n" << root.Describe();
  Contents host = Underneath(data_dir(), {"state", "pools", "claimfsd.sock", "docker-plugin.sock"});
  EXPECT_EQ(host.bytes, 0u) << "written on the host disk below the mount root:\n"
                            << host.Describe();
  std::vector<std::string> volume_dirs;
  for (const std::string& c : claims) volume_dirs.push_back(VolumeOf(c));
  Contents pool = Underneath(pool_dir(), volume_dirs);
  EXPECT_EQ(pool.bytes, 0u) << "written in the pool outside the volumes:\n" << pool.Describe();
  EXPECT_TRUE(pool.entries.empty()) << pool.Describe();
}

// Each crash point of a mount, then a restart: at the crash the path refuses writes; after the
// restart the claim is served.
class MountCrashPoints : public BareMountpoint,
                         public ::testing::WithParamInterface<const char*> {};

TEST_P(MountCrashPoints, PathRefusesWritesAtTheCrashAndTheClaimIsServedAfterRestart) {
  ASSERT_TRUE(StartWithCrashPoint(GetParam()));
  CommandResult r = Apply(ClaimYaml("c"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitDaemonExit());

  std::string mount = MountPath("c");
  struct stat st;
  // The mountpoint is there (after mount(2), its dead connection answers ENOTCONN).
  ASSERT_TRUE(lstat(mount.c_str(), &st) == 0 || errno == ENOTCONN)
      << "the crash came before the mountpoint was made: " << strerror(errno);
  // After mount(2) the volume's serving process outlives main's crash: the path is the volume.
  int err = CreateError(mount + "/by-path");
  bool served = err == 0 && std::string(GetParam()) == "mount.after_mount";
  EXPECT_TRUE(served || err == EROFS || err == ENOTCONN || err == ECONNABORTED)
      << "creating a file at the crashed mount's path: " << ErrnoName(err);
  EXPECT_EQ(CreateError(data_dir() + "/claims/default/stray"), EROFS);

  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(WaitBoundAndMounted("c"));
  ASSERT_TRUE(WriteFile(mount + "/after", "served"));
  EXPECT_EQ(ReadFile(pool_dir() + "/" + VolumeOf("c") + "/after"), "served");
  Contents root = Underneath(data_dir() + "/claims", {".claimfsd.lock"});
  EXPECT_TRUE(root.entries.empty()) << root.Describe();
}

INSTANTIATE_TEST_SUITE_P(Points, MountCrashPoints,
                         ::testing::Values("mount.after_mkdir", "mount.after_mount"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           return name.substr(name.find('.') + 1);
                         });

// A daemon that died after unmounting a deleted claim's volume but before removing its
// mountpoint directory left the directory for ever.
TEST_F(BareMountpoint, DeletedClaimLeavesNoDirectoryAfterCrashBeforeRmdir) {
  ASSERT_TRUE(StartWithCrashPoint("unmount.after_unmount"));
  ASSERT_TRUE(CreateDynamicClaim("gone", "16Mi"));
  HttpResult h = Http("DELETE", "/api/v1/namespaces/default/persistentvolumeclaims/gone");
  ASSERT_TRUE(h.status == 200 || h.status == 202) << h.Describe();
  ASSERT_TRUE(WaitDaemonExit());
  std::string mount = MountPath("gone");
  struct stat st;
  ASSERT_EQ(lstat(mount.c_str(), &st), 0) << "the crash came after the directory was removed";
  EXPECT_FALSE(MountAt(mount).has_value());
  EXPECT_EQ(CreateError(mount + "/by-path"), EROFS);

  ASSERT_TRUE(StartDaemon());
  EXPECT_TRUE(WaitFor([&] { return !GetClaim("gone").has_value(); }, 15s))
      << "claim still there: " << ClaimPhase("gone");
  EXPECT_TRUE(WaitFor([&] { return lstat(mount.c_str(), &st) != 0 && errno == ENOENT; }, 5s))
      << mount << " is still there";
  EXPECT_NE(lstat((data_dir() + "/claims/default").c_str(), &st), 0)
      << "the empty namespace directory is still there";
}

// Nobody, root included, can put anything in the mount root or on a mountpoint that has no
// volume; a user gets EROFS or EACCES, never a file.
TEST_F(BareMountpoint, NoUserCanCreateAnythingInTheMountRoot) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("data", "16Mi"));
  const std::string root = data_dir() + "/claims";
  const std::vector<std::string> targets = {root + "/x", root + "/default/x", root + "/other"};
  auto attempts = [&] {
    std::string out;
    for (const std::string& t : targets) {
      out += ErrnoName(mkdir(t.c_str(), 0777) == 0 ? 0 : errno) + " ";
      out += ErrnoName(CreateError(t)) + " ";
      out += ErrnoName(symlink("/etc", t.c_str()) == 0 ? 0 : errno) + " ";
    }
    return out;
  };
  std::string as_root = attempts();
  EXPECT_EQ(as_root, "EROFS EROFS EROFS EROFS EROFS EROFS EROFS EROFS EROFS ") << "root";
  std::string as_user = RunAs(kStranger, attempts);
  EXPECT_EQ(as_user.find("ok"), std::string::npos) << as_user;
  for (const std::string& t : targets) {
    struct stat st;
    EXPECT_NE(lstat(t.c_str(), &st), 0) << t << " exists";
  }
  // Not even root's chmod or a rename changes the root.
  EXPECT_EQ(chmod(root.c_str(), 0777) == 0 ? 0 : errno, EROFS);
  // Once the volume is unmounted, its path refuses writes as well.
  ASSERT_EQ(umount2(MountPath("data").c_str(), MNT_DETACH), 0) << strerror(errno);
  EXPECT_EQ(CreateError(MountPath("data") + "/f"), EROFS);
}

// A symlink planted in the plain directory where a namespace directory would go (before
// claimfsd ever ran there) is not followed: the claim is mounted in the tmpfs, nothing is made
// or mounted at the symlink's target.
TEST_F(BareMountpoint, SymlinkPlantedWhereANamespaceDirWouldGoIsNotFollowed) {
  const std::string target = base() + "/target";
  ASSERT_EQ(mkdir(target.c_str(), 0755), 0);
  ASSERT_TRUE(std::filesystem::create_directories(data_dir() + "/claims"));
  ASSERT_EQ(symlink(target.c_str(), (data_dir() + "/claims/default").c_str()), 0);
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("data", "16Mi"));
  struct stat st;
  ASSERT_EQ(lstat((data_dir() + "/claims/default").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode)) << "the namespace directory is the planted symlink";
  ASSERT_TRUE(WriteFile(MountPath("data") + "/f", "in the volume"));
  EXPECT_TRUE(MountsUnder(target).empty());
  EXPECT_TRUE(std::filesystem::is_empty(target)) << "something was made in the target";
  // After a clean stop the plain directory is as it was, symlink included.
  ASSERT_TRUE(StopDaemon());
  ASSERT_EQ(lstat((data_dir() + "/claims/default").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_TRUE(std::filesystem::is_empty(target));
}

// A mount that fails is reported as what it failed with, in one event on the claim, and the
// claim is never shown Bound without its mount.
TEST_F(BareMountpoint, MountFailureIsOneEventAndNotBound) {
  ASSERT_TRUE(StartDaemon());
  std::string source = base() + "/static";
  ASSERT_EQ(mkdir(source.c_str(), 0755), 0);
  CommandResult r = Apply(StaticPairYaml("bad", source, "ReadWriteOnce", "Retain", "no-such-option"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto failed_mounts = [&] {
    std::vector<nlohmann::json> out;
    for (const nlohmann::json& e : EventsFor("PersistentVolumeClaim", "bad")) {
      if (JsonString(e, "/reason") == "FailedMount") out.push_back(e);
    }
    return out;
  };
  EXPECT_TRUE(WaitFor([&] { return !failed_mounts().empty(); }, 10s))
      << DescribeEvents("PersistentVolumeClaim", "bad");
  std::set<std::string> phases;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    phases.insert(ClaimPhase("bad"));
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(phases.count("Bound"), 0u) << "the claim was shown Bound without its mount";
  std::vector<nlohmann::json> events = failed_mounts();
  ASSERT_EQ(events.size(), 1u) << DescribeEvents("PersistentVolumeClaim", "bad");
  EXPECT_NE(JsonString(events[0], "/message").find("no-such-option"), std::string::npos);
  EXPECT_FALSE(MountAt(MountPath("bad")).has_value());
  struct stat st;
  EXPECT_NE(lstat(MountPath("bad").c_str(), &st), 0) << "the failed mount left its directory";
}

}  // namespace
}  // namespace claimfs::it
