// Ownership and permissions as a non-root user (issue 2, Semantics: "new objects belong to the
// calling user and group (setgid directories honoured); permission checks as the kernel does
// them; a non-root user inside a volume sees exactly what ext4 would show, and cannot touch
// another user's 0600 file"). Scenarios run in a child as uid 1000 (like setpriv --reuid=1000
// --regid=1000 --clear-groups) on native ext4 and on a volume mounted with allow_other.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "fs/mount_fixture.h"
#include "fs/parity.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

constexpr uid_t kUser = 1000;
constexpr gid_t kGroup = 1000;
constexpr uid_t kOtherUser = 1001;
constexpr gid_t kOtherGroup = 2000;
const struct timespec kOldTimes[2] = {{1, 0}, {1, 0}};

int OpenClose(const char* path, int flags, mode_t mode = 0666) {
  int fd = open(path, flags | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

// The tree every scenario starts from, made by root.
void RootSetup(Trace& t) {
  mkdir(t.C("pub"), 0777);
  chmod(t.C("pub"), 0777);
  mkdir(t.C("sg"), 0777);
  chown(t.C("sg"), 0, kOtherGroup);
  chmod(t.C("sg"), 02777);
  mkdir(t.C("shared"), 0777);
  chmod(t.C("shared"), 01777);
  WriteFile(t.P("shared/priv"), "private data\n");
  chown(t.C("shared/priv"), kOtherUser, kOtherUser);
  chmod(t.C("shared/priv"), 0600);
  WriteFile(t.P("shared/open"), "everyone may write\n");
  chown(t.C("shared/open"), kOtherUser, kOtherUser);
  chmod(t.C("shared/open"), 0666);
  WriteFile(t.P("rootfile"), "root's\n");
  chmod(t.C("rootfile"), 0644);
  WriteFile(t.P("suid"), "setuid file\n");
  chmod(t.C("suid"), 04777);
  mkdir(t.C("rootdir"), 0755);
  mkdir(t.C("noread"), 0711);
  chmod(t.C("noread"), 0711);
  WriteFile(t.P("noread/inner"), "x");
  mkdir(t.C("closed"), 0700);
  WriteFile(t.P("closed/inner"), "x");
  mkdir(t.C("home"), 0755);
  chown(t.C("home"), kUser, kGroup);
}

class PermissionsTest : public VolumeTest {
 protected:
  void SetUp() override {
    VolumeTest::SetUp();
    if (HasFatalFailure()) return;
    // uid 1000 must reach the native twin and the mount point.
    ASSERT_NO_FATAL_FAILURE(MountVolume("allow_other"));
  }
  void ParityAsUser(const Scenario& scenario, int umask = 022) {
    ParityOptions options;
    options.setup = RootSetup;
    options.as = Credentials{kUser, kGroup, {}};
    options.umask = umask;
    ExpectParity(native(), root(), scenario, options);
  }
};

TEST_F(PermissionsTest, NewObjectsBelongToTheCaller) {
  ParityAsUser([](Trace& t) {
    t.Ret("create", OpenClose(t.C("pub/file"), O_CREAT | O_WRONLY, 0666));
    t.Stat("pub/file");
    t.Ret("mkdir", mkdir(t.C("pub/dir"), 0777));
    t.Stat("pub/dir", kDirFields);
    t.Ret("symlink", symlink("file", t.C("pub/link")));
    t.Stat("pub/link", kMode | kOwner | kSize);
    t.Ret("mkfifo", mkfifo(t.C("pub/fifo"), 0666));
    t.Stat("pub/fifo");
    t.Ret("mknod regular", mknod(t.C("pub/node"), S_IFREG | 0640, 0));
    t.Stat("pub/node");
    t.Ret("mknod char device (needs CAP_MKNOD)",
          mknod(t.C("pub/dev"), S_IFCHR | 0666, makedev(1, 3)));
    t.Ret("link", link(t.C("pub/file"), t.P("pub/file2").c_str()));
    t.Stat("pub/file2");
    t.Ret("rename", rename(t.C("pub/file2"), t.P("pub/dir/moved").c_str()));
    t.Stat("pub/dir/moved");
    t.Ret("create in own home", OpenClose(t.C("home/mine"), O_CREAT | O_WRONLY, 0600));
    t.Stat("home/mine");
    t.Ret("chown to self", chown(t.C("home/mine"), kUser, kGroup));
    t.Ret("chown to another user", chown(t.C("home/mine"), kOtherUser, static_cast<gid_t>(-1)));
    t.Ret("chgrp to a group not held",
          chown(t.C("home/mine"), static_cast<uid_t>(-1), kOtherGroup));
    t.Stat("home/mine");
    t.Listing("pub");
  });
}

TEST_F(PermissionsTest, SetgidDirectoryInheritance) {
  ParityAsUser([](Trace& t) {
    t.Stat("sg", kDirFields);
    t.Ret("create in setgid dir", OpenClose(t.C("sg/file"), O_CREAT | O_WRONLY, 0666));
    t.Stat("sg/file");
    t.Ret("mkdir in setgid dir", mkdir(t.C("sg/sub"), 0777));
    t.Stat("sg/sub", kDirFields);
    t.Ret("create two levels down", OpenClose(t.C("sg/sub/deep"), O_CREAT | O_WRONLY, 0644));
    t.Stat("sg/sub/deep");
    t.Ret("symlink in setgid dir", symlink("file", t.C("sg/link")));
    t.Stat("sg/link", kMode | kOwner);
    t.Ret("mkfifo in setgid dir", mkfifo(t.C("sg/fifo"), 0666));
    t.Stat("sg/fifo");
    // Not a member of group 2000: setting S_ISGID on the file is silently dropped.
    t.Ret("chmod g+s without the group", chmod(t.C("sg/file"), 02755));
    t.Stat("sg/file");
    t.Ret("mkdir with explicit setgid", mkdir(t.C("pub/sgself"), 02777));
    t.Stat("pub/sgself", kDirFields);
    t.Ret("create with setgid mode", OpenClose(t.C("sg/sgfile"), O_CREAT | O_WRONLY, 02777));
    t.Stat("sg/sgfile");
  });
}

TEST_F(PermissionsTest, AnotherUsersPrivateFileIsUntouchable) {
  ParityAsUser([](Trace& t) {
    char buf[64];
    t.Ret("open for reading", OpenClose(t.C("shared/priv"), O_RDONLY));
    t.Ret("open for writing", OpenClose(t.C("shared/priv"), O_WRONLY));
    t.Ret("open O_TRUNC", OpenClose(t.C("shared/priv"), O_WRONLY | O_TRUNC));
    t.Ret("open O_APPEND", OpenClose(t.C("shared/priv"), O_WRONLY | O_APPEND));
    t.Ret("truncate", truncate(t.C("shared/priv"), 0));
    t.Ret("chmod", chmod(t.C("shared/priv"), 0666));
    t.Ret("chown", chown(t.C("shared/priv"), kUser, kGroup));
    t.Ret("utimensat explicit", utimensat(AT_FDCWD, t.C("shared/priv"), kOldTimes, 0));
    t.Ret("utimensat now", utimensat(AT_FDCWD, t.C("shared/priv"), nullptr, 0));
    t.Ret("setxattr", setxattr(t.C("shared/priv"), "user.x", "1", 1, 0));
    t.Ret("getxattr", getxattr(t.C("shared/priv"), "user.x", buf, sizeof(buf)));
    t.Ret("unlink in sticky dir", unlink(t.C("shared/priv")));
    t.Ret("rename away in sticky dir", rename(t.C("shared/priv"), t.P("pub/stolen").c_str()));
    t.Ret("rename over it", rename(t.C("pub"), t.P("shared/priv").c_str()));
    t.Ret("hard link it", link(t.C("shared/priv"), t.P("pub/hl").c_str()));
    t.Ret("access R_OK", access(t.C("shared/priv"), R_OK));
    t.Ret("access W_OK", access(t.C("shared/priv"), W_OK));
    t.Ret("access F_OK", access(t.C("shared/priv"), F_OK));
    t.Stat("shared/priv");
    // A 0666 file of another user: writable, but its mode and times are not ours to set.
    t.Ret("write 0666 file", OpenClose(t.C("shared/open"), O_WRONLY | O_APPEND));
    t.Ret("utimensat now on 0666 file", utimensat(AT_FDCWD, t.C("shared/open"), nullptr, 0));
    t.Ret("utimensat explicit on 0666 file", utimensat(AT_FDCWD, t.C("shared/open"), kOldTimes, 0));
    t.Ret("chmod 0666 file", chmod(t.C("shared/open"), 0600));
    t.Ret("unlink 0666 file in sticky dir", unlink(t.C("shared/open")));
  });
  // And root, on the volume, checks that the file is intact.
  EXPECT_EQ(ReadFile(P("shared/priv")), "private data\n");
  struct stat st {};
  ASSERT_EQ(stat(P("shared/priv").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, kOtherUser);
}

TEST_F(PermissionsTest, UserSeesWhatExt4Shows) {
  for (int mask : {022, 077, 0}) {
    SCOPED_TRACE("umask " + std::to_string(mask));
    ParityAsUser(
        [mask](Trace& t) {
          std::string d = "home/u" + std::to_string(mask);
          t.Ret("mkdir", mkdir(t.C(d), 0777));
          t.Stat(d, kDirFields);
          t.Ret("create 0666", OpenClose(t.C(d + "/a"), O_CREAT | O_WRONLY, 0666));
          t.Stat(d + "/a");
          t.Ret("create 0755", OpenClose(t.C(d + "/x"), O_CREAT | O_WRONLY, 0755));
          t.Stat(d + "/x");
          t.Ret("chmod 0000", chmod(t.C(d + "/a"), 0));
          t.Ret("open own 0000 file", OpenClose(t.C(d + "/a"), O_RDONLY));
          t.Ret("access own 0000 file", access(t.C(d + "/a"), R_OK));
          t.Ret("chmod 0400", chmod(t.C(d + "/a"), 0400));
          t.Ret("write own 0400 file", OpenClose(t.C(d + "/a"), O_WRONLY));
          t.Ret("read own 0400 file", OpenClose(t.C(d + "/a"), O_RDONLY));
          t.Ret("access X_OK on 0755", access(t.C(d + "/x"), X_OK));
          t.Ret("chmod dir 0500", chmod(t.C(d), 0500));
          t.Ret("create in own 0500 dir", OpenClose(t.C(d + "/b"), O_CREAT | O_WRONLY));
          t.Ret("unlink in own 0500 dir", unlink(t.C(d + "/x")));
          t.Ret("chmod dir back", chmod(t.C(d), 0755));
          t.Ret("read root's file", OpenClose(t.C("rootfile"), O_RDONLY));
          t.Ret("write root's file", OpenClose(t.C("rootfile"), O_WRONLY));
          t.Ret("create in root's dir", OpenClose(t.C("rootdir/x"), O_CREAT | O_WRONLY));
          t.Ret("mkdir in root's dir", mkdir(t.C("rootdir/x"), 0755));
          t.Ret("symlink in root's dir", symlink("x", t.C("rootdir/l")));
          t.Ret("rmdir root's dir", rmdir(t.C("rootdir")));
          t.Listing("noread");
          t.Stat("noread/inner");
          t.Listing("closed");
          t.Stat("closed/inner");
          t.Ret("open in 0700 dir", OpenClose(t.C("closed/inner"), O_RDONLY));
          t.Listing("home");
          // Writing a setuid file of another user clears its setuid bit.
          int fd = open(t.C("suid"), O_WRONLY | O_APPEND);
          t.Ok("open setuid 0777 file", fd);
          if (fd >= 0) {
            t.Ret("write", write(fd, "x", 1));
            close(fd);
          }
          t.Stat("suid", kMode | kOwner);
          t.Ret("chmod root's file", chmod(t.C("rootfile"), 0777));
          t.Ret("unlink root's file in root's dir", unlink(t.C("rootfile")));
          t.Stat("rootfile");
        },
        mask);
  }
}

// Without allow_other the kernel keeps every other user out of the mount (the FUSE default);
// allow_other is what lets container users in.
class WithoutAllowOtherTest : public VolumeTest {};

TEST_F(WithoutAllowOtherTest, OtherUsersAreShutOut) {
  CLAIMFS_REQUIRE_MOUNT();
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi"));
  ASSERT_EQ(chmod(P("").c_str(), 0777), 0);
  ChildResult r = RunInChild(
      [this] {
        struct stat st;
        int rv = stat(P("").c_str(), &st);
        return rv == 0 ? std::string("0") : ErrnoName(errno);
      },
      Credentials{kUser, kGroup, {}});
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.output, "EACCES");
}

// `claimfs SRC MNT -o capacity=...,allow_other`: the volume root's owner, group and mode come
// from SRC. Owner, a member of the owning group and root get in; another user gets EACCES on
// everything but stat of the root (what the daemon's claims rely on with their 0770 roots).
class VolumeRootOwnerTest : public VolumeTest {
 protected:
  void SetUp() override {
    VolumeTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(chown(source().c_str(), kOtherUser, kOtherUser), 0);
    ASSERT_EQ(chmod(source().c_str(), 0770), 0);
    WriteFile(source() + "/owned", "data");
    ASSERT_EQ(chmod((source() + "/owned").c_str(), 0660), 0);
    ASSERT_EQ(mkdir((source() + "/sub").c_str(), 0770), 0);
    WriteFile(source() + "/sub/inner", "x");
    for (const char* name : {"/owned", "/sub", "/sub/inner"}) {
      ASSERT_EQ(chown((source() + name).c_str(), kOtherUser, kOtherUser), 0);
    }
    ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi,allow_other"));
  }

  // "read=... write=... list=... traverse=... stat=..." for `who` on the volume.
  std::string Access(const Credentials& who) {
    ChildResult r = RunInChild(
        [this] {
          auto result = [](int rv) { return rv >= 0 ? std::string("ok") : ErrnoName(errno); };
          int fd = open(P("owned").c_str(), O_RDONLY | O_CLOEXEC);
          std::string out = "read=" + result(fd);
          if (fd >= 0) close(fd);
          fd = open(P("by-" + std::to_string(getuid())).c_str(),
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
          out += " write=" + result(fd);
          if (fd >= 0) close(fd);
          fd = open(root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
          out += " list=" + result(fd);
          if (fd >= 0) close(fd);
          struct stat st;
          out += " traverse=" + result(stat(P("sub/inner").c_str(), &st));
          out += " stat=" + result(stat(root().c_str(), &st));
          return out;
        },
        who);
    return r.ok ? r.output : r.problem;
  }
};

TEST_F(VolumeRootOwnerTest, UidMatrixOnTheVolumeRoot) {
  const std::string all = "read=ok write=ok list=ok traverse=ok stat=ok";
  EXPECT_EQ(Access(Credentials{kOtherUser, kOtherUser, {}}), all) << "the owner";
  EXPECT_EQ(Access(Credentials{1002, 1002, {kOtherUser}}), all) << "a member of the group";
  EXPECT_EQ(Access(Credentials{0, 0, {}}), all) << "root";
  EXPECT_EQ(Access(Credentials{1003, 1003, {}}),
            "read=EACCES write=EACCES list=EACCES traverse=EACCES stat=ok")
      << "another user";
}

}  // namespace
}  // namespace claimfs::it
