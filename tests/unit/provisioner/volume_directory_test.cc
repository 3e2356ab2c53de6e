#include "claimfs/provisioner/volume_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace claimfs::provisioner {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int OpenFdCount() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (::readdir(dir) != nullptr) ++count;
  ::closedir(dir);
  return count;
}

// Puts this test process into a private mount namespace, so the mounts a test makes vanish with
// it even if it crashes, and nobody else sees them.
void EnterPrivateMountNamespace() {
  ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
      << std::strerror(errno);
}

class VolumeDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/claimfs-provisioner-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
    pool_ = base_ + "/pool";
    outside_ = base_ + "/outside";
    ASSERT_EQ(::mkdir(pool_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
    WriteFile(outside_ + "/keep.txt", "precious");
  }
  void TearDown() override {
    for (const std::string& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
    std::string cmd = "chattr -R -ia " + base_ + " 2>/dev/null; rm -rf " + base_;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  // A volume directory with one of everything the deleter meets.
  std::string MakeVolume(const std::string& name) {
    std::string vol = pool_ + "/" + name;
    EXPECT_TRUE(CreateVolumeDirectory(pool_, name).ok());
    EXPECT_EQ(::mkdir((vol + "/a").c_str(), 0755), 0);
    EXPECT_EQ(::mkdir((vol + "/a/b").c_str(), 0755), 0);
    EXPECT_EQ(::mkdir((vol + "/a/b/c").c_str(), 0755), 0);
    WriteFile(vol + "/top.txt", "x");
    WriteFile(vol + "/a/b/c/deep.txt", "y");
    EXPECT_EQ(::mkfifo((vol + "/a/fifo").c_str(), 0644), 0);
    EXPECT_EQ(::symlink(outside_.c_str(), (vol + "/a/to-outside-dir").c_str()), 0);
    EXPECT_EQ(::symlink((outside_ + "/keep.txt").c_str(), (vol + "/to-outside-file").c_str()), 0);
    EXPECT_EQ(::symlink("/nonexistent/target", (vol + "/a/b/dangling").c_str()), 0);
    EXPECT_EQ(::link((vol + "/top.txt").c_str(), (vol + "/a/hardlink").c_str()), 0);
    int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::string sock_path = vol + "/a/b/sock";
    std::strncpy(addr.sun_path, sock_path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(sock);
    return vol;
  }

  void Mount(const std::string& source, const std::string& target, const char* type,
             unsigned long flags, const char* data = nullptr) {
    ASSERT_EQ(::mount(source.c_str(), target.c_str(), type, flags, data), 0)
        << target << ": " << std::strerror(errno);
    mounts_.insert(mounts_.begin(), target);
  }

  std::string base_, pool_, outside_;
  std::vector<std::string> mounts_;  // innermost first
};

TEST_F(VolumeDirectoryTest, EnsurePoolDirectoryCreatesParentsWithMode0700) {
  ::umask(022);
  std::string path = base_ + "/disks/one/pool";
  ASSERT_TRUE(EnsurePoolDirectory(path).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((base_ + "/disks").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // Existing directories are left as they are.
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  ASSERT_TRUE(EnsurePoolDirectory(path).ok());
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_TRUE(EnsurePoolDirectory(base_).ok());

  WriteFile(base_ + "/file", "");
  EXPECT_EQ(EnsurePoolDirectory(base_ + "/file").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(EnsurePoolDirectory(base_ + "/file/below").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(EnsurePoolDirectory("relative/pool").code(), StatusCode::kInvalid);
  EXPECT_EQ(EnsurePoolDirectory("").code(), StatusCode::kInvalid);
}

TEST_F(VolumeDirectoryTest, CreateMakesA0770DirectoryWhateverTheUmask) {
  ::umask(077);
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-1").ok());
  ::umask(022);
  struct stat st;
  ASSERT_EQ(::lstat((pool_ + "/pvc-1").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0770u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  // No temporary left behind.
  EXPECT_FALSE(Exists(pool_ + "/.pvc-1.claimfs-new"));
}

TEST_F(VolumeDirectoryTest, CreateSetsOwnerAndMode) {
  DirectoryOwner owner{1234, 5678, 02750};
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-2", owner).ok());
  struct stat st;
  ASSERT_EQ(::lstat((pool_ + "/pvc-2").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 02750u);

  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-3", DirectoryOwner{std::nullopt, 42, {}}).ok());
  ASSERT_EQ(::lstat((pool_ + "/pvc-3").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(st.st_gid, 42u);
  EXPECT_EQ(st.st_mode & 07777, 0770u);
}

TEST_F(VolumeDirectoryTest, CreateIsIdempotentAndKeepsAnExistingDirectory) {
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-1").ok());
  std::string vol = pool_ + "/pvc-1";
  WriteFile(vol + "/data", "kept");
  ASSERT_EQ(::chmod(vol.c_str(), 0700), 0);
  ASSERT_EQ(::chown(vol.c_str(), 99, 99), 0);
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-1", DirectoryOwner{1, 1, 0777}).ok());
  struct stat st;
  ASSERT_EQ(::lstat(vol.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 99u);
  EXPECT_EQ(ReadFile(vol + "/data"), "kept");
}

TEST_F(VolumeDirectoryTest, CreateReplacesATemporaryLeftByACrash) {
  std::string temporary = pool_ + "/.pvc-9.claimfs-new";
  ASSERT_EQ(::mkdir(temporary.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((temporary + "/junk").c_str(), 0700), 0);
  WriteFile(temporary + "/junk/file", "half-made");
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-9").ok());
  EXPECT_FALSE(Exists(temporary));
  struct stat st;
  ASSERT_EQ(::lstat((pool_ + "/pvc-9").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0770u);
  EXPECT_FALSE(Exists(pool_ + "/pvc-9/junk"));
}

TEST_F(VolumeDirectoryTest, CreateRefusesBadNames) {
  const std::string bad[] = {"",
                             ".",
                             "..",
                             "a/b",
                             "/abs",
                             "trailing/",
                             "x/..",
                             std::string("nul\0byte", 8),
                             std::string(241, 'n')};
  for (const std::string& name : bad) {
    Status s = CreateVolumeDirectory(pool_, name);
    EXPECT_EQ(s.code(), StatusCode::kInvalid) << "name \"" << name << "\": " << s.ToString();
  }
  DIR* dir = ::opendir(pool_.c_str());
  int entries = 0;
  while (::readdir(dir) != nullptr) ++entries;
  ::closedir(dir);
  EXPECT_EQ(entries, 2) << "a refused name created something";
  EXPECT_TRUE(CreateVolumeDirectory(pool_, std::string(240, 'n')).ok());
  EXPECT_TRUE(CreateVolumeDirectory(pool_, "...").ok());
}

TEST_F(VolumeDirectoryTest, CreateRefusesWhatIsNotADirectory) {
  ASSERT_EQ(::symlink(outside_.c_str(), (pool_ + "/link-to-dir").c_str()), 0);
  Status s = CreateVolumeDirectory(pool_, "link-to-dir");
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find(pool_ + "/link-to-dir"), std::string::npos) << s.message();
  ASSERT_EQ(::symlink("/nowhere", (pool_ + "/dangling").c_str()), 0);
  EXPECT_EQ(CreateVolumeDirectory(pool_, "dangling").code(), StatusCode::kAlreadyExists);
  WriteFile(pool_ + "/file", "");
  EXPECT_EQ(CreateVolumeDirectory(pool_, "file").code(), StatusCode::kAlreadyExists);

  Status missing = CreateVolumeDirectory(base_ + "/no-such-pool", "pvc-1");
  EXPECT_EQ(missing.code(), StatusCode::kInvalid);
  EXPECT_NE(missing.message().find("no-such-pool"), std::string::npos) << missing.message();
  EXPECT_FALSE(Exists(base_ + "/no-such-pool"));
  EXPECT_EQ(CreateVolumeDirectory(pool_ + "/file", "pvc-1").code(), StatusCode::kInvalid);
}

TEST_F(VolumeDirectoryTest, DeleteRemovesEverythingAndFollowsNoSymlink) {
  std::string vol = MakeVolume("pvc-1");
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-2").ok());
  Status s = DeleteVolumeDirectory(vol, {pool_});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Exists(vol));
  EXPECT_TRUE(Exists(pool_ + "/pvc-2"));
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");
}

TEST_F(VolumeDirectoryTest, DeleteOfAMissingPathSucceeds) {
  EXPECT_TRUE(DeleteVolumeDirectory(pool_ + "/never-was", {pool_}).ok());
  EXPECT_TRUE(DeleteVolumeDirectory(pool_ + "/never/was", {pool_}).ok());
  EXPECT_TRUE(DeleteVolumeDirectory(base_ + "/gone-pool/pvc-1", {base_ + "/gone-pool"}).ok());
  // Twice in a row: the second call finds nothing and is fine.
  std::string vol = MakeVolume("pvc-1");
  EXPECT_TRUE(DeleteVolumeDirectory(vol, {pool_}).ok());
  EXPECT_TRUE(DeleteVolumeDirectory(vol, {pool_}).ok());
  EXPECT_EQ(ScrubVolumeDirectory(vol, {pool_}).code(), StatusCode::kNotFound);
}

TEST_F(VolumeDirectoryTest, DeleteRefusesAPathOutsideTheRoots) {
  Status s = DeleteVolumeDirectory(outside_, {pool_, base_ + "/other"});
  EXPECT_EQ(s.code(), StatusCode::kForbidden);
  EXPECT_NE(s.message().find(outside_), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(pool_), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(base_ + "/other"), std::string::npos) << s.message();
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");

  // A root that is only a string prefix is no root.
  ASSERT_EQ(::mkdir((base_ + "/pool2").c_str(), 0755), 0);
  EXPECT_EQ(DeleteVolumeDirectory(base_ + "/pool2", {pool_}).code(), StatusCode::kForbidden);
  EXPECT_TRUE(Exists(base_ + "/pool2"));
  // ".." cannot climb out, relative paths are refused, no roots refuse everything.
  MakeVolume("pvc-1");
  EXPECT_EQ(DeleteVolumeDirectory(pool_ + "/../outside", {pool_}).code(), StatusCode::kForbidden);
  EXPECT_EQ(DeleteVolumeDirectory(pool_ + "/pvc-1/..", {pool_}).code(), StatusCode::kForbidden);
  EXPECT_EQ(DeleteVolumeDirectory("pool/pvc-1", {"pool"}).code(), StatusCode::kForbidden);
  EXPECT_EQ(DeleteVolumeDirectory(pool_ + "/pvc-1", {}).code(), StatusCode::kForbidden);
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");
  EXPECT_TRUE(Exists(pool_ + "/pvc-1/top.txt"));
}

TEST_F(VolumeDirectoryTest, DeleteRefusesTheRootItself) {
  MakeVolume("pvc-1");
  for (const std::string& path : {pool_, pool_ + "/", pool_ + "/.", pool_ + "//"}) {
    Status s = DeleteVolumeDirectory(path, {pool_});
    EXPECT_EQ(s.code(), StatusCode::kForbidden) << path;
    EXPECT_EQ(ScrubVolumeDirectory(path, {pool_}).code(), StatusCode::kForbidden) << path;
  }
  EXPECT_TRUE(Exists(pool_ + "/pvc-1/top.txt"));
}

TEST_F(VolumeDirectoryTest, DeleteNormalizesPathsAndRoots) {
  std::string vol = MakeVolume("pvc-1");
  Status s = DeleteVolumeDirectory(base_ + "//pool/./pvc-1/", {pool_ + "/"});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Exists(vol));
}

TEST_F(VolumeDirectoryTest, DeleteRefusesASymlinkInThePath) {
  // pool/link -> pool/real: pool/link/pvc-1 must not be deleted through the link.
  ASSERT_EQ(::mkdir((pool_ + "/real").c_str(), 0755), 0);
  ASSERT_TRUE(CreateVolumeDirectory(pool_ + "/real", "pvc-1").ok());
  WriteFile(pool_ + "/real/pvc-1/data", "d");
  ASSERT_EQ(::symlink("real", (pool_ + "/link").c_str()), 0);
  Status s = DeleteVolumeDirectory(pool_ + "/link/pvc-1", {pool_});
  EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
  EXPECT_NE(s.message().find("symlink"), std::string::npos) << s.message();
  EXPECT_TRUE(Exists(pool_ + "/real/pvc-1/data"));

  // The last component a symlink to something outside.
  ASSERT_EQ(::symlink(outside_.c_str(), (pool_ + "/pvc-evil").c_str()), 0);
  s = DeleteVolumeDirectory(pool_ + "/pvc-evil", {pool_});
  EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
  EXPECT_EQ(ScrubVolumeDirectory(pool_ + "/pvc-evil", {pool_}).code(), StatusCode::kForbidden);
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");
  EXPECT_TRUE(Exists(pool_ + "/pvc-evil"));

  // A root reached through a symlink is trusted (the admin wrote it).
  ASSERT_EQ(::symlink(pool_.c_str(), (base_ + "/pool-link").c_str()), 0);
  s = DeleteVolumeDirectory(base_ + "/pool-link/real/pvc-1", {base_ + "/pool-link"});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Exists(pool_ + "/real/pvc-1"));
}

TEST_F(VolumeDirectoryTest, DeleteRefusesAFile) {
  WriteFile(pool_ + "/not-a-dir", "x");
  EXPECT_EQ(DeleteVolumeDirectory(pool_ + "/not-a-dir", {pool_}).code(), StatusCode::kInvalid);
  EXPECT_TRUE(Exists(pool_ + "/not-a-dir"));
}

TEST_F(VolumeDirectoryTest, DeleteHandlesDirectoriesWithoutPermissions) {
  std::string vol = MakeVolume("pvc-1");
  ASSERT_EQ(::chmod((vol + "/a/b").c_str(), 0), 0);
  ASSERT_EQ(::chmod((vol + "/a").c_str(), 0500), 0);
  ASSERT_EQ(::chmod(vol.c_str(), 0), 0);
  Status s = DeleteVolumeDirectory(vol, {pool_});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Exists(vol));
}

// The same as a user without CAP_DAC_OVERRIDE: the deleter gives the owner back the
// permissions it needs.
TEST_F(VolumeDirectoryTest, DeleteAsTheOwnerWithoutRootRestoresPermissions) {
  constexpr uid_t kNobody = 65534;
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-1", DirectoryOwner{kNobody, kNobody, 0755}).ok());
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-2", DirectoryOwner{kNobody, kNobody, 0755}).ok());
  for (const std::string& vol : {pool_ + "/pvc-1", pool_ + "/pvc-2"}) {
    ASSERT_EQ(::mkdir((vol + "/locked").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((vol + "/locked/inner").c_str(), 0755), 0);
    WriteFile(vol + "/locked/inner/file", "x");
    WriteFile(vol + "/locked/file", "x");
    std::string cmd = "chown -R 65534:65534 " + vol;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ASSERT_EQ(::chmod((vol + "/locked/inner").c_str(), 0), 0);
    ASSERT_EQ(::chmod((vol + "/locked").c_str(), 0500), 0);
  }
  ASSERT_EQ(::chmod((pool_ + "/pvc-2").c_str(), 0), 0);
  ASSERT_EQ(::chmod((pool_ + "/pvc-1").c_str(), 0), 0);
  ASSERT_EQ(::chown(pool_.c_str(), kNobody, kNobody), 0);  // a pool of a daemon run as nobody
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0) {
      ::_exit(10);
    }
    if (!ScrubVolumeDirectory(pool_ + "/pvc-2", {pool_}).ok()) ::_exit(11);
    Status s = DeleteVolumeDirectory(pool_ + "/pvc-1", {pool_});
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
    ::_exit(s.ok() ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(Exists(pool_ + "/pvc-1"));
  struct stat st;
  ASSERT_EQ(::lstat((pool_ + "/pvc-2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0u) << "Recycle must keep the directory's mode";
  EXPECT_FALSE(Exists(pool_ + "/pvc-2/locked"));
}

TEST_F(VolumeDirectoryTest, DeleteOfADeepTreeNeitherRecursesNorLeaksDescriptors) {
  constexpr int kDepth = 10000;
  // On a tmpfs: ext4 takes half a millisecond per mkdir, most of it in the journal.
  EnterPrivateMountNamespace();
  Mount("tmpfs", pool_, "tmpfs", 0, "size=256m");
  std::string vol = MakeVolume("pvc-deep");
  int fd = ::open(vol.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_EQ(::mkdirat(fd, "d", 0755), 0) << "level " << i;
    int next = ::openat(fd, "d", O_RDONLY | O_DIRECTORY);
    ASSERT_GE(next, 0);
    if (i % 1000 == 0) {
      int file = ::openat(fd, "f", O_CREAT | O_WRONLY, 0644);
      ASSERT_GE(file, 0);
      ::close(file);
    }
    ::close(fd);
    fd = next;
  }
  ::close(fd);
  int before = OpenFdCount();
  Status s = ScrubVolumeDirectory(vol, {pool_});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Exists(vol));
  EXPECT_FALSE(Exists(vol + "/d"));
  EXPECT_EQ(OpenFdCount(), before);

  // Once more with Delete.
  fd = ::open(vol.c_str(), O_RDONLY | O_DIRECTORY);
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_EQ(::mkdirat(fd, "d", 0755), 0);
    int next = ::openat(fd, "d", O_RDONLY | O_DIRECTORY);
    ::close(fd);
    fd = next;
  }
  ::close(fd);
  s = DeleteVolumeDirectory(vol, {pool_});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Exists(vol));
  EXPECT_EQ(OpenFdCount(), before);
}

TEST_F(VolumeDirectoryTest, DeleteReportsAnImmutableFileAndRemovesTheRest) {
  std::string vol = MakeVolume("pvc-1");
  std::string stuck = vol + "/a/b/stuck.txt";
  WriteFile(stuck, "cannot go");
  int fd = ::open(stuck.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    ::close(fd);
    GTEST_SKIP() << "/tmp's filesystem has no inode flags (chattr): " << std::strerror(errno);
  }
  flags |= FS_IMMUTABLE_FL;
  ASSERT_EQ(::ioctl(fd, FS_IOC_SETFLAGS, &flags), 0) << std::strerror(errno);
  ::close(fd);

  Status s = DeleteVolumeDirectory(vol, {pool_});
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find(stuck), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("immutable"), std::string::npos) << s.message();
  // Everything else went; the file and its ancestors stay.
  EXPECT_TRUE(Exists(stuck));
  EXPECT_FALSE(Exists(vol + "/top.txt"));
  EXPECT_FALSE(Exists(vol + "/a/b/c"));
  EXPECT_FALSE(Exists(vol + "/a/fifo"));
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");

  fd = ::open(stuck.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  flags &= ~FS_IMMUTABLE_FL;
  ASSERT_EQ(::ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
  ::close(fd);
  s = DeleteVolumeDirectory(vol, {pool_});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Exists(vol));
}

TEST_F(VolumeDirectoryTest, DeleteRefusesAMountInsideAndTouchesNothing) {
  EnterPrivateMountNamespace();
  std::string vol = MakeVolume("pvc-1");
  std::string mnt = vol + "/a/mnt";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  Mount("tmpfs", mnt, "tmpfs", 0, "size=1m");
  WriteFile(mnt + "/on-the-mount", "m");

  Status s = DeleteVolumeDirectory(vol, {pool_});
  EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
  EXPECT_NE(s.message().find(mnt), std::string::npos) << s.message();
  EXPECT_EQ(ScrubVolumeDirectory(vol, {pool_}).code(), StatusCode::kForbidden);
  EXPECT_EQ(ReadFile(mnt + "/on-the-mount"), "m");
  EXPECT_TRUE(Exists(vol + "/top.txt"));
  EXPECT_TRUE(Exists(vol + "/a/b/c/deep.txt"));
}

TEST_F(VolumeDirectoryTest, DeleteRefusesABindMountOfTheSameFilesystem) {
  // Same st_dev on both sides: only the mount table (or RESOLVE_NO_XDEV) can tell.
  EnterPrivateMountNamespace();
  std::string vol = MakeVolume("pvc-1");
  ASSERT_EQ(::mkdir((vol + "/bound").c_str(), 0755), 0);
  Mount(outside_, vol + "/bound", nullptr, MS_BIND);
  Status s = DeleteVolumeDirectory(vol, {pool_});
  EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");
  EXPECT_TRUE(Exists(vol + "/top.txt"));

  // The volume directory itself a mount point.
  ASSERT_TRUE(CreateVolumeDirectory(pool_, "pvc-2").ok());
  Mount(outside_, pool_ + "/pvc-2", nullptr, MS_BIND);
  s = DeleteVolumeDirectory(pool_ + "/pvc-2", {pool_});
  EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");
}

TEST_F(VolumeDirectoryTest, ScrubEmptiesButKeepsTheDirectoryOwnerAndMode) {
  std::string vol = MakeVolume("pvc-1");
  ASSERT_EQ(::chown(vol.c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod(vol.c_str(), 02775), 0);
  struct stat before;
  ASSERT_EQ(::lstat(vol.c_str(), &before), 0);
  Status s = ScrubVolumeDirectory(vol, {pool_});
  ASSERT_TRUE(s.ok()) << s.ToString();
  struct stat after;
  ASSERT_EQ(::lstat(vol.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_uid, 1234u);
  EXPECT_EQ(after.st_gid, 5678u);
  DIR* dir = ::opendir(vol.c_str());
  int entries = 0;
  while (::readdir(dir) != nullptr) ++entries;
  ::closedir(dir);
  EXPECT_EQ(entries, 2);
  EXPECT_EQ(ReadFile(outside_ + "/keep.txt"), "precious");
}

TEST_F(VolumeDirectoryTest, FilesystemAvailableIsWhatTheFilesystemHasFree) {
  EnterPrivateMountNamespace();
  std::string mnt = base_ + "/disk";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  Mount("tmpfs", mnt, "tmpfs", 0, "size=64m");
  ASSERT_EQ(::mkdir((mnt + "/pool").c_str(), 0755), 0);
  auto available = FilesystemAvailable(mnt + "/pool");
  ASSERT_TRUE(available.ok()) << available.status().ToString();
  EXPECT_EQ(*available, 64 << 20);
  WriteFile(mnt + "/other-data", std::string(10 << 20, 'x'));
  available = FilesystemAvailable(mnt + "/pool");
  ASSERT_TRUE(available.ok()) << available.status().ToString();
  EXPECT_EQ(*available, 54 << 20);

  auto missing = FilesystemAvailable(base_ + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIOError);
  EXPECT_NE(missing.status().message().find(base_ + "/nope"), std::string::npos);
}

// ---- static volume sources

TEST_F(VolumeDirectoryTest, VolumeSourceMustLieStrictlyBelowAnAllowedRoot) {
  std::vector<std::string> roots = {pool_, base_ + "/allowed/"};
  ASSERT_EQ(::mkdir((base_ + "/allowed").c_str(), 0755), 0);
  EXPECT_TRUE(CheckVolumeSource(base_ + "/allowed/a", roots, false).ok());
  EXPECT_TRUE(CheckVolumeSource(base_ + "//allowed/./a/", roots, false).ok());
  EXPECT_TRUE(CheckVolumeSource(base_ + "/allowed/missing/deeper", roots, false).ok());
  for (const std::string& bad : {base_ + "/allowed", outside_, std::string("/etc"),
                                 std::string("allowed/a"), base_ + "/allowed/../outside",
                                 std::string("")}) {
    SCOPED_TRACE(bad);
    Status s = CheckVolumeSource(bad, roots, false);
    EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
    EXPECT_NE(s.message().find("volume source " + bad), std::string::npos) << s.message();
  }
  Status s = CheckVolumeSource(outside_, roots, false);
  EXPECT_NE(s.message().find(pool_ + ", " + base_ + "/allowed/"), std::string::npos)
      << s.message();
}

TEST_F(VolumeDirectoryTest, VolumeSourceThroughASymlinkIsRefusedAndNothingIsCreatedThere) {
  std::vector<std::string> roots = {base_};
  ASSERT_EQ(::symlink(outside_.c_str(), (base_ + "/link").c_str()), 0);
  for (bool create : {false, true}) {
    Status s = CheckVolumeSource(base_ + "/link/new", roots, create);
    EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
    EXPECT_NE(s.message().find("goes through the symlink " + base_ + "/link"), std::string::npos)
        << s.message();
  }
  struct stat st;
  EXPECT_NE(::stat((outside_ + "/new").c_str(), &st), 0);  // nothing made through the link
  WriteFile(base_ + "/file", "x");
  EXPECT_EQ(CheckVolumeSource(base_ + "/file/sub", roots, true).code(), StatusCode::kInvalid);
}

TEST_F(VolumeDirectoryTest, VolumeSourceIsCreatedBelowTheRootWhenAsked) {
  std::vector<std::string> roots = {base_};
  std::string source = base_ + "/hp/a/b";
  ASSERT_TRUE(CheckVolumeSource(source, roots, false).ok());
  struct stat st;
  EXPECT_NE(::stat(source.c_str(), &st), 0);  // a check creates nothing
  Status s = CheckVolumeSource(source, roots, true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(::stat(source.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_TRUE(CheckVolumeSource(source, roots, true).ok());  // idempotent
}

// The directory the mount must serve is the one the walk reached, named by its inode.
TEST_F(VolumeDirectoryTest, OpenVolumeSourceReturnsTheDirectoryTheWalkReached) {
  std::vector<std::string> roots = {base_};
  std::string source = base_ + "/hp/a";
  auto missing = OpenVolumeSource(source, roots, false);
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  EXPECT_FALSE(missing->has_value());
  auto made = OpenVolumeSource(base_ + "//hp/./a/", roots, true);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  ASSERT_TRUE(made->has_value());
  struct stat st;
  ASSERT_EQ(::stat(source.c_str(), &st), 0);
  EXPECT_EQ((*made)->ino, st.st_ino);
  EXPECT_EQ((*made)->dev, st.st_dev);
}

// Issue 9: with the NUL inside, "<root>/x\0" compared as below the root while every syscall saw
// "<root>/x"; "<pool>\0" was the pool itself to open(2) and a volume below it to the checks.
TEST_F(VolumeDirectoryTest, NulByteInAPathIsRefusedBeforeAnySyscall) {
  std::vector<std::string> roots = {pool_, base_};
  WriteFile(pool_ + "/keep", "keep");
  using namespace std::string_literals;
  for (const std::string& bad : {pool_ + "\0"s, base_ + "/x\0"s, pool_ + "/\0x"s,
                                 base_ + "/a\tb", base_ + "/\xff"}) {
    SCOPED_TRACE(::testing::PrintToString(bad));
    for (bool create : {false, true}) {
      Status s = CheckVolumeSource(bad, roots, create);
      EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
    }
    EXPECT_EQ(DeleteVolumeDirectory(bad, roots).code(), StatusCode::kForbidden);
    EXPECT_EQ(ScrubVolumeDirectory(bad, roots).code(), StatusCode::kForbidden);
    EXPECT_FALSE(PathsOverlap(bad, "/"));
  }
  Status s = DeleteVolumeDirectory(pool_ + "/\0x"s, roots);
  EXPECT_NE(s.message().find("must not contain NUL"), std::string::npos) << s.message();
  EXPECT_EQ(ReadFile(pool_ + "/keep"), "keep");
}

TEST(PathsOverlapTest, SameOrNestedDirectoriesOverlap) {
  EXPECT_TRUE(PathsOverlap("/var/lib/claimfs", "/var/lib/claimfs"));
  EXPECT_TRUE(PathsOverlap("/var/lib/claimfs/pools/x", "/var/lib/claimfs/pools"));
  EXPECT_TRUE(PathsOverlap("/var", "/var/lib/claimfs/pools/"));
  EXPECT_TRUE(PathsOverlap("//var/./lib", "/var/lib"));
  EXPECT_TRUE(PathsOverlap("/", "/tmp"));
  EXPECT_FALSE(PathsOverlap("/var/lib/claimfs-other", "/var/lib/claimfs"));
  EXPECT_FALSE(PathsOverlap("/tmp/a", "/tmp/b"));
  EXPECT_FALSE(PathsOverlap("relative", "relative"));
}

}  // namespace
}  // namespace claimfs::provisioner
