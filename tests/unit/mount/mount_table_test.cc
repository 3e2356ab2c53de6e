#include "claimfs/mount/mount_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace claimfs::mount {
namespace {

TEST(ParseMountInfoTest, ParsesTheKernelFormat) {
  const char* text =
      "22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw\n"
      "27 1 254:1 / / rw,relatime shared:1 master:3 - ext4 /dev/vda rw,errors=remount-ro\n"
      "63 27 0:53 /sub/dir /run/claimfs/claims/default/my\\040data\\011tab\\012nl\\134bs "
      "rw,nosuid,nodev,relatime - fuse.claimfs /pool/pvc\\0401 "
      "rw,user_id=0,group_id=0,default_permissions,allow_other\n"
      "\n"
      "70 63 0:60 / /empty/source rw - tmpfs  rw\n";
  auto parsed = ParseMountInfo(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 4u);
  const MountInfo& proc = (*parsed)[0];
  EXPECT_EQ(proc.mount_id, 22);
  EXPECT_EQ(proc.parent_id, 27);
  EXPECT_EQ(proc.device, makedev(0, 21));
  EXPECT_EQ(proc.root, "/");
  EXPECT_EQ(proc.mount_point, "/proc");
  EXPECT_EQ(proc.mount_options, "rw,relatime");
  EXPECT_EQ(proc.optional_fields, "shared:5");
  EXPECT_EQ(proc.fs_type, "proc");
  EXPECT_EQ(proc.source, "proc");
  EXPECT_EQ(proc.super_options, "rw");

  const MountInfo& root = (*parsed)[1];
  EXPECT_EQ(root.device, makedev(254, 1));
  EXPECT_EQ(root.optional_fields, "shared:1 master:3");
  EXPECT_EQ(root.PeerGroup("shared"), 1);
  EXPECT_EQ(root.PeerGroup("master"), 3);
  EXPECT_EQ(root.PeerGroup("propagate_from"), 0);
  EXPECT_EQ(proc.PeerGroup("master"), 0);

  const MountInfo& volume = (*parsed)[2];
  EXPECT_EQ(volume.root, "/sub/dir");
  EXPECT_EQ(volume.mount_point, "/run/claimfs/claims/default/my data\ttab\nnl\\bs");
  EXPECT_EQ(volume.optional_fields, "");
  EXPECT_EQ(volume.fs_type, "fuse.claimfs");
  EXPECT_EQ(volume.source, "/pool/pvc 1");
  EXPECT_TRUE(IsClaimfsMount(volume));
  EXPECT_FALSE(IsClaimfsMount(root));

  const MountInfo& empty = (*parsed)[3];
  EXPECT_EQ(empty.source, "");
  EXPECT_EQ(empty.fs_type, "tmpfs");
  EXPECT_EQ(empty.super_options, "rw");
}

TEST(ParseMountInfoTest, RecognisesClaimfsMounts) {
  MountInfo m;
  m.fs_type = "fuse.claimfs";
  EXPECT_TRUE(IsClaimfsMount(m));
  m.fs_type = "fuse";
  m.source = "claimfs";
  EXPECT_TRUE(IsClaimfsMount(m));
  m.source = "sshfs";
  EXPECT_FALSE(IsClaimfsMount(m));
  m.fs_type = "fuse.sshfs";
  m.source = "claimfs";
  EXPECT_FALSE(IsClaimfsMount(m));
}

TEST(ParseMountInfoTest, EmptyTextIsAnEmptyTable) {
  auto parsed = ParseMountInfo("");
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
  parsed = ParseMountInfo("\n\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
}

TEST(ParseMountInfoTest, GarbageNamesTheLine) {
  const std::string good = "22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw\n";
  const char* bad[] = {
      "garbage",
      "1 2 3",
      "22 27 0:21 / /proc rw,relatime shared:5 proc proc rw",  // no separator
      "x 27 0:21 / /proc rw - proc proc rw",                   // mount id
      "22 y 0:21 / /proc rw - proc proc rw",                   // parent id
      "22 27 0-21 / /proc rw - proc proc rw",                  // major:minor
      "22 27 0:z / /proc rw - proc proc rw",                   // minor
      "22 27 0:21 / /proc rw - proc proc rw extra",            // four after separator
      "22 27 0:21 / /proc rw - proc proc",                     // two after separator
      "22 27 0:21  /proc rw - proc proc rw",                   // empty root
      "22 27 0:21 / /proc rw -  proc rw",                      // empty type
      "-1x 27 0:21 / /proc rw - proc proc rw",
  };
  for (const char* line : bad) {
    auto parsed = ParseMountInfo(good + line + "\n" + good);
    ASSERT_FALSE(parsed.ok()) << line;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalid) << line;
    EXPECT_NE(parsed.status().message().find("line 2"), std::string::npos)
        << parsed.status().message();
    EXPECT_NE(parsed.status().message().find(line), std::string::npos) << parsed.status().message();
  }
}

TEST(ReadMountInfoTest, ReadsTheLiveTable) {
  auto table = ReadMountInfo();
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  struct stat st;
  ASSERT_EQ(::stat("/proc", &st), 0);
  auto proc = std::find_if(table->begin(), table->end(),
                           [](const MountInfo& m) { return m.mount_point == "/proc"; });
  ASSERT_NE(proc, table->end());
  EXPECT_EQ(proc->device, st.st_dev);
  EXPECT_EQ(proc->fs_type, "proc");

  auto missing = ReadMountInfo("/proc/no-such-process/mountinfo");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/proc/no-such-process/mountinfo"), std::string::npos);
  auto garbage = ReadMountInfo("/proc/self/status");
  EXPECT_EQ(garbage.status().code(), StatusCode::kInvalid);
}

// --- DetachStaleMounts, with the real claimfs binary -------------------------------------------

std::string ClaimfsBinary() {
  if (const char* env = std::getenv("CLAIMFS_BINARY")) return env;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "claimfs";
  self[n] = '\0';
  std::string dir(self);
  return dir.substr(0, dir.rfind('/')) + "/claimfs";
}

long CountMounts(const std::string& mount_point, const char* fs_type = nullptr) {
  auto table = ReadMountInfo();
  if (!table.ok()) return -1;
  return std::count_if(table->begin(), table->end(), [&](const MountInfo& m) {
    return m.mount_point == mount_point && (fs_type == nullptr || m.fs_type == fs_type);
  });
}

bool Mounted(const std::string& mount_point, const char* fs_type = nullptr) {
  return CountMounts(mount_point, fs_type) > 0;
}

class DetachStaleMountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A private mount namespace: every mount made here vanishes with the test process.
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
    char tmpl[] = "/tmp/claimfs-mount-table-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    binary_ = ClaimfsBinary();
    ASSERT_EQ(::access(binary_.c_str(), X_OK), 0)
        << "the claimfs binary is missing at " << binary_
        << " (build the claimfs target, or set CLAIMFS_BINARY)";
    ASSERT_EQ(::access("/dev/fuse", R_OK | W_OK), 0) << "/dev/fuse is needed";
  }
  void TearDown() override {
    for (pid_t pid : daemons_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it) {
      ::umount2(it->c_str(), MNT_DETACH);
    }
    std::string cmd = "rm -rf " + base_;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  // Serves base_/src-<n> on `mount_point` with the claimfs binary in the foreground; returns
  // its pid once the mount is in the table.
  pid_t MountClaimfs(const std::string& mount_point) {
    std::string source = base_ + "/src-" + std::to_string(daemons_.size());
    EXPECT_EQ(::mkdir(source.c_str(), 0755), 0);
    std::string cmd = "mkdir -p '" + mount_point + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    std::string log = base_ + "/claimfs-" + std::to_string(daemons_.size()) + ".log";
    long before = CountMounts(mount_point, "fuse.claimfs");
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(binary_.c_str(), "claimfs", source.c_str(), mount_point.c_str(), "-o",
              "capacity=64Mi", "-f", nullptr);
      ::_exit(127);
    }
    daemons_.push_back(pid);
    mounted_.push_back(mount_point);
    for (int i = 0; i < 1000 && CountMounts(mount_point, "fuse.claimfs") == before; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (::waitpid(pid, nullptr, WNOHANG) == pid) break;
    }
    EXPECT_GT(CountMounts(mount_point, "fuse.claimfs"), before)
        << "claimfs did not mount " << mount_point << "; see " << log;
    return pid;
  }

  // Kills a daemon: its mount stays, and answers ENOTCONN.
  void Crash(pid_t pid) {
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
    daemons_.erase(std::find(daemons_.begin(), daemons_.end(), pid));
  }

  std::string base_, binary_;
  std::vector<pid_t> daemons_;
  std::vector<std::string> mounted_;
};

TEST_F(DetachStaleMountsTest, DetachesDeadMountsBelowTheRootDeepestFirst) {
  std::string root = base_ + "/run";
  std::string a = root + "/volumes/a";
  std::string nested = root + "/claims/default/b c";  // a space: escaped in the table
  std::string outside = base_ + "/elsewhere";
  pid_t pa = MountClaimfs(a);
  pid_t pn = MountClaimfs(nested);
  pid_t po = MountClaimfs(outside);
  // Another filesystem below the root is not ours to touch.
  std::string other = root + "/tmp";
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", other.c_str(), "tmpfs", 0, "size=1m"), 0);
  mounted_.push_back(other);

  Crash(pa);
  Crash(pn);
  Crash(po);
  struct stat st;
  ASSERT_EQ(::stat(a.c_str(), &st), -1);
  EXPECT_EQ(errno, ENOTCONN);

  auto detached = DetachStaleMounts(root + "/");
  ASSERT_TRUE(detached.ok()) << detached.status().ToString();
  EXPECT_EQ(*detached, (std::vector<std::string>{nested, a}));
  EXPECT_FALSE(Mounted(a));
  EXPECT_FALSE(Mounted(nested));
  EXPECT_TRUE(Mounted(outside, "fuse.claimfs"));
  EXPECT_TRUE(Mounted(other, "tmpfs"));
  EXPECT_EQ(::stat(a.c_str(), &st), 0) << "the mount point is a plain directory again";

  // Nothing left: a second call detaches nothing.
  detached = DetachStaleMounts(root);
  ASSERT_TRUE(detached.ok());
  EXPECT_TRUE(detached->empty());
}

TEST_F(DetachStaleMountsTest, TheRootItselfAndLiveMountsAlike) {
  std::string root = base_ + "/vol";
  pid_t live = MountClaimfs(root);
  auto detached = DetachStaleMounts(root);
  ASSERT_TRUE(detached.ok()) << detached.status().ToString();
  EXPECT_EQ(*detached, std::vector<std::string>{root});
  EXPECT_FALSE(Mounted(root));
  // The daemon sees its mount go and exits.
  int status = 0;
  for (int i = 0; i < 500 && ::waitpid(live, &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TEST_F(DetachStaleMountsTest, LeavesAClaimfsMountCoveredByAnotherFilesystem) {
  std::string root = base_ + "/run";
  std::string vol = root + "/vol";
  MountClaimfs(vol);
  // Something else stacked on the same mount point: a umount2 by path would take it instead.
  ASSERT_EQ(::mount("tmpfs", vol.c_str(), "tmpfs", 0, "size=1m"), 0);
  mounted_.push_back(vol);
  auto detached = DetachStaleMounts(root);
  ASSERT_TRUE(detached.ok()) << detached.status().ToString();
  EXPECT_TRUE(detached->empty());
  EXPECT_TRUE(Mounted(vol, "tmpfs"));
  EXPECT_TRUE(Mounted(vol, "fuse.claimfs"));
}

TEST_F(DetachStaleMountsTest, StackedClaimfsMountsGoTopFirst) {
  std::string root = base_ + "/run";
  std::string vol = root + "/vol";
  pid_t lower = MountClaimfs(vol);
  pid_t upper = MountClaimfs(vol);
  Crash(upper);
  Crash(lower);
  auto detached = DetachStaleMounts(root);
  ASSERT_TRUE(detached.ok()) << detached.status().ToString();
  EXPECT_EQ(*detached, (std::vector<std::string>{vol, vol}));
  EXPECT_FALSE(Mounted(vol));
}

TEST_F(DetachStaleMountsTest, RefusesARelativeRoot) {
  EXPECT_EQ(DetachStaleMounts("run/claimfs").status().code(), StatusCode::kInvalid);
  EXPECT_EQ(DetachStaleMounts("").status().code(), StatusCode::kInvalid);
}

}  // namespace
}  // namespace claimfs::mount
