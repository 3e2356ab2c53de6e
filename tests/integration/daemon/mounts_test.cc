// How the daemon mounts bound volumes: ReadOnlyMany-only claims read-only, a PV's mountOptions
// applied, and an invalid mount option failing that mount alone with a FailedMount event.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

bool HasOption(const std::string& options, const std::string& option) {
  std::istringstream in(options);
  for (std::string o; std::getline(in, o, ',');) {
    if (o == option) return true;
  }
  return false;
}

class MountsTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(StartDaemon());
  }

  // A static hostPath PV `name` over a new directory base()/<name> and a claim `name`
  // pre-bound to it (storageClassName ""). Returns the backing directory.
  std::string StaticPair(const std::string& name, const std::string& access_mode,
                         const std::string& mount_options) {
    std::string dir = base() + "/" + name;
    EXPECT_EQ(mkdir(dir.c_str(), 0755), 0) << strerror(errno);
    CommandResult r = Apply(StaticPairYaml(name, dir, access_mode, "Retain", mount_options));
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return dir;
  }
};

TEST_F(MountsTest, ReadOnlyManyClaimIsMountedReadOnly) {
  std::string dir = StaticPair("shared", "ReadOnlyMany", "");
  ASSERT_TRUE(WriteFile(dir + "/seed.txt", "seeded"));
  ASSERT_TRUE(WaitBoundAndMounted("shared"));
  std::string mount = MountPath("shared");
  std::optional<MountInfo> m = MountAt(mount);
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(HasOption(m->mount_options, "ro")) << m->mount_options;

  EXPECT_EQ(ReadFile(mount + "/seed.txt"), "seeded");
  int fd = open((mount + "/new.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  int err = errno;
  EXPECT_LT(fd, 0);
  EXPECT_EQ(err, EROFS) << ErrnoName(err);
  if (fd >= 0) close(fd);
  fd = open((mount + "/seed.txt").c_str(), O_WRONLY | O_CLOEXEC);
  err = errno;
  EXPECT_LT(fd, 0);
  EXPECT_EQ(err, EROFS) << ErrnoName(err);
  if (fd >= 0) close(fd);
  EXPECT_NE(mkdir((mount + "/d").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS) << ErrnoName(errno);
  EXPECT_EQ(ReadFile(dir + "/seed.txt"), "seeded");
  EXPECT_NE(access((dir + "/new.txt").c_str(), F_OK), 0);
}

TEST_F(MountsTest, PersistentVolumeMountOptionsAreApplied) {
  StaticPair("opts", "ReadWriteOnce", "noexec, nosuid, noatime");
  ASSERT_TRUE(WaitBoundAndMounted("opts"));
  std::string mount = MountPath("opts");
  std::optional<MountInfo> m = MountAt(mount);
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(HasOption(m->mount_options, "noexec")) << m->mount_options;
  EXPECT_TRUE(HasOption(m->mount_options, "nosuid")) << m->mount_options;
  EXPECT_TRUE(HasOption(m->mount_options, "noatime")) << m->mount_options;
  EXPECT_TRUE(HasOption(m->mount_options, "rw")) << m->mount_options;

  // noexec is real: a script on the volume cannot be run.
  std::string script = mount + "/run.sh";
  ASSERT_TRUE(WriteFile(script, "#!/bin/sh\nexit 0\n"));
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  EXPECT_NE(access(script.c_str(), X_OK), 0);
  CommandResult r = RunCommand({script});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
}

TEST_F(MountsTest, InvalidMountOptionFailsThatMountWithAnEventAndOthersKeepWorking) {
  StaticPair("bad", "ReadWriteOnce", "no-such-option");
  auto failed_mount = [&] {
    for (const nlohmann::json& e : EventsFor("PersistentVolumeClaim", "bad")) {
      if (JsonString(e, "/reason") == "FailedMount" && JsonString(e, "/type") == "Warning" &&
          JsonString(e, "/message").find("no-such-option") != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(WaitFor(failed_mount, 10s)) << DescribeEvents("PersistentVolumeClaim", "bad");
  EXPECT_FALSE(MountAt(MountPath("bad")).has_value());
  CommandResult r = Claimctl({"describe", "pvc", "bad"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.out.find("FailedMount"), std::string::npos) << r.out;

  // Another claim is provisioned, mounted and used meanwhile.
  ASSERT_TRUE(CreateDynamicClaim("good", "16Mi"));
  EXPECT_TRUE(WriteFile(MountPath("good") + "/file", "works"));
  EXPECT_EQ(ReadFile(MountPath("good") + "/file"), "works");
  EXPECT_TRUE(DaemonRunning());
}

}  // namespace
}  // namespace claimfs::it
