#include "claimfs/mount/mount_root.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/mount/mount_table.h"

namespace claimfs::mount {
namespace {

std::string ClaimfsProgram() {
  if (const char* env = std::getenv("CLAIMFS_BINARY")) return env;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "claimfs";
  self[n] = '\0';
  std::string dir(self);
  return dir.substr(0, dir.rfind('/')) + "/claimfs";
}

// The mounts stacked at `path`, bottom first.
std::vector<MountInfo> MountsAt(const std::string& path) {
  std::vector<MountInfo> out;
  auto table = ReadMountInfo();
  if (!table.ok()) return out;
  for (const MountInfo& m : *table) {
    if (m.mount_point == path) out.push_back(m);
  }
  return out;
}

int CreateError(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  ::close(fd);
  ::unlink(path.c_str());
  return 0;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

class MountRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A private mount namespace: every mount made here vanishes with the test process.
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
    char tmpl[] = "/tmp/claimfs-mount-root-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ + "/claims";
    fallback_ = base_ + "/rw-root";
    ASSERT_EQ(::access("/dev/fuse", R_OK | W_OK), 0) << "/dev/fuse is needed";
  }
  void TearDown() override {
    for (pid_t pid : daemons_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (int round = 0; round < 10; ++round) {
      auto table = ReadMountInfo();
      if (!table.ok()) break;
      std::vector<std::string> below;
      for (const MountInfo& m : *table) {
        if (m.mount_point.rfind(base_ + "/", 0) == 0) below.push_back(m.mount_point);
      }
      if (below.empty()) break;
      std::sort(below.begin(), below.end(),
                [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
      for (const std::string& m : below) ::umount2(m.c_str(), MNT_DETACH);
    }
    std::string cmd = "rm -rf " + base_;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  // Serves a new source directory on `mount_point` with the claimfs program; returns its pid
  // once the mount is in the table.
  pid_t MountClaimfs(const std::string& mount_point) {
    std::string source = base_ + "/src-" + std::to_string(sources_++);
    EXPECT_EQ(::mkdir(source.c_str(), 0755), 0);
    size_t before = MountsAt(mount_point).size();
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open("/dev/null", O_WRONLY);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::string program = ClaimfsProgram();
      ::execl(program.c_str(), "claimfs", source.c_str(), mount_point.c_str(), "-o",
              "capacity=64Mi", "-f", nullptr);
      ::_exit(127);
    }
    daemons_.push_back(pid);
    for (int i = 0; i < 1000 && MountsAt(mount_point).size() == before; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GT(MountsAt(mount_point).size(), before) << "claimfs did not mount " << mount_point;
    return pid;
  }

  void Crash(pid_t pid) {
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
    daemons_.erase(std::find(daemons_.begin(), daemons_.end(), pid));
  }

  std::string base_, root_, fallback_;
  std::vector<pid_t> daemons_;
  int sources_ = 0;
};

// The upgrade from a claimfsd that used a plain directory: its dead mounts go only once the tmpfs
// covers their paths, their empty directories go, a directory with data in it stays (hidden).
TEST_F(MountRootTest, PlainDirectoryBecomesAReadOnlyTmpfsAndOldDeadMountsGo) {
  std::string old_mount = root_ + "/default/a";
  ASSERT_EQ(std::system(("mkdir -p " + old_mount + " " + root_ + "/default/b").c_str()), 0);
  std::ofstream(root_ + "/default/b/written-while-bare") << "data";
  Crash(MountClaimfs(old_mount));

  auto root = MountRoot::Open(root_, fallback_);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  std::vector<MountInfo> at_root = MountsAt(root_);
  ASSERT_EQ(at_root.size(), 1u);
  EXPECT_EQ(at_root[0].fs_type, "tmpfs");
  EXPECT_EQ(at_root[0].source, kMountRootSource);
  EXPECT_EQ(at_root[0].mount_options.rfind("ro,", 0), 0u) << at_root[0].mount_options;
  EXPECT_NE(at_root[0].optional_fields.find("shared:"), std::string::npos);
  EXPECT_EQ((*root)->mount_id(), at_root[0].mount_id);
  EXPECT_TRUE(MountsAt(old_mount).empty()) << "the dead mount is still there";
  EXPECT_EQ(ModeOf(root_), 0711u);
  EXPECT_EQ(CreateError(root_ + "/x"), EROFS);
  EXPECT_EQ(::mkdir((root_ + "/default").c_str(), 0755) == 0 ? 0 : errno, EROFS);

  // Below the tmpfs: the empty old mountpoint is gone, the one with data stays.
  int below = ::open_tree(AT_FDCWD, base_.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  ASSERT_GE(below, 0) << std::strerror(errno);
  struct stat st;
  EXPECT_NE(::fstatat(below, "claims/default/a", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(::fstatat(below, "claims/default/b/written-while-bare", &st, 0), 0);
  EXPECT_NE(::fstatat(below, "claims/.claimfsd.lock", &st, 0), 0);
  ::close(below);
}

TEST_F(MountRootTest, DirectoriesAreMadeThroughTheViewAndStayReadOnly) {
  auto opened = MountRoot::Open(root_, fallback_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  MountRoot& root = **opened;
  ASSERT_TRUE(root.MakeDirectory("default", 0711, /*existing_too=*/true).ok());
  ASSERT_TRUE(root.MakeDirectory("default/data", 0700, /*existing_too=*/false).ok());
  ASSERT_TRUE(root.MakeDirectory("docker", 0700, /*existing_too=*/true).ok());
  EXPECT_EQ(ModeOf(root_ + "/default"), 0711u);
  EXPECT_EQ(ModeOf(root_ + "/default/data"), 0700u);
  EXPECT_EQ(ModeOf(root_ + "/docker"), 0700u);
  // An existing directory gets the mode only when asked.
  ASSERT_TRUE(root.MakeDirectory("default", 0700, /*existing_too=*/true).ok());
  EXPECT_EQ(ModeOf(root_ + "/default"), 0700u);
  ASSERT_TRUE(root.MakeDirectory("default/data", 0755, /*existing_too=*/false).ok());
  EXPECT_EQ(ModeOf(root_ + "/default/data"), 0700u);
  EXPECT_EQ(CreateError(root_ + "/default/data/f"), EROFS);

  auto dirs = root.Directories();
  ASSERT_TRUE(dirs.ok());
  EXPECT_EQ(*dirs, (std::vector<std::string>{"default", "default/data", "docker"}));

  for (const char* bad : {"", "..", "default/..", "a/b/c", "/etc", "default//x", "."}) {
    EXPECT_EQ(root.MakeDirectory(bad, 0700, true).code(), StatusCode::kInvalid) << bad;
    EXPECT_EQ(root.RemoveDirectory(bad).code(), StatusCode::kInvalid) << bad;
  }
  // A mountpoint in use cannot be removed; a missing one is fine.
  MountClaimfs(root_ + "/default/data");
  EXPECT_FALSE(root.RemoveDirectory("default/data").ok());
  EXPECT_EQ(CreateError(root_ + "/default/data/f"), 0) << "the volume itself is writable";
  EXPECT_TRUE(root.RemoveDirectory("docker").ok());
  EXPECT_TRUE(root.RemoveDirectory("docker").ok());
  EXPECT_TRUE(root.RemoveDirectory("nope/nope").ok());
  // A clean stop keeps the tmpfs while a volume is mounted below it.
  EXPECT_EQ(root.Release().code(), StatusCode::kUnavailable);
  EXPECT_EQ(MountsAt(root_).size(), 1u);
}

TEST_F(MountRootTest, ASecondOpenIsRefusedWhileTheFirstLivesAndReusesTheTmpfsAfter) {
  auto first = MountRoot::Open(root_, fallback_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  int id = (*first)->mount_id();
  auto second = MountRoot::Open(root_, fallback_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("in use by another claimfsd (pid " +
                                           std::to_string(::getpid()) + ")"),
            std::string::npos)
      << second.status().message();
  ASSERT_TRUE((*first)->MakeDirectory("default", 0711, true).ok());
  first->reset();  // as a kill -9 leaves it: tmpfs and directories stay

  auto again = MountRoot::Open(root_, fallback_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->mount_id(), id) << "a second tmpfs was mounted";
  EXPECT_EQ(MountsAt(root_).size(), 1u);
  struct stat st;
  EXPECT_EQ(::stat((root_ + "/default").c_str(), &st), 0);
  ASSERT_TRUE((*again)->Release().ok());
  EXPECT_TRUE(MountsAt(root_).empty());
  EXPECT_NE(::stat((root_ + "/default").c_str(), &st), 0) << "the plain directory has it";
}

TEST_F(MountRootTest, ReconcileDetachesDeadMountsAndRemovesDirectoriesNotKept) {
  auto opened = MountRoot::Open(root_, fallback_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  MountRoot& root = **opened;
  for (const char* dir : {"default", "default/keep", "default/gone", "other", "other/x"}) {
    ASSERT_TRUE(root.MakeDirectory(dir, 0711, true).ok()) << dir;
  }
  Crash(MountClaimfs(root_ + "/default/keep"));
  Crash(MountClaimfs(root_ + "/other/x"));
  std::string outside = base_ + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  MountClaimfs(outside);

  auto detached = ReconcileMounts(root, {"default/keep"});
  ASSERT_TRUE(detached.ok()) << detached.status().ToString();
  std::vector<std::string> got = *detached;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{root_ + "/default/keep", root_ + "/other/x"}));
  auto dirs = root.Directories();
  ASSERT_TRUE(dirs.ok());
  EXPECT_EQ(*dirs, (std::vector<std::string>{"default", "default/keep"}));
  EXPECT_EQ(CreateError(root_ + "/default/keep/f"), EROFS) << "below the dead mount";
  EXPECT_EQ(MountsAt(outside).size(), 1u) << "a live mount outside the root was touched";
}

}  // namespace
}  // namespace claimfs::mount
