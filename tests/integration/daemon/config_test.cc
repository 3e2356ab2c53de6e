// claimfsd's configuration file with the real daemon: every error reported at file:line before
// starting, SIGHUP reloads (a broken file keeps the running config), and maxVolumes.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

std::string ClaimYaml(const std::string& name, const std::string& size) {
  return "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: " + name +
         "\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: " +
         size + "\n";
}

class ConfigTest : public DaemonTest {
 protected:
  // Applies claim `name` and expects it to stay Pending for 2 s with an event saying the
  // volume limit is reached.
  void ExpectPendingAtVolumeLimit(const std::string& name) {
    CommandResult r = Apply(ClaimYaml(name, "16Mi"));
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    auto event = [&] {
      for (const nlohmann::json& e : EventsFor("PersistentVolumeClaim", name)) {
        if (JsonString(e, "/type") == "Warning" &&
            JsonString(e, "/message").find("exceed max volume count") != std::string::npos) {
          return true;
        }
      }
      return false;
    };
    EXPECT_TRUE(WaitFor(event, 5s)) << "no volume-limit event for " << name << ":\n"
                                    << DescribeEvents("PersistentVolumeClaim", name);
    std::this_thread::sleep_for(2s);
    EXPECT_EQ(ClaimPhase(name), "Pending");
    EXPECT_FALSE(MountAt(MountPath(name)).has_value());
    // claimctl describe shows why.
    r = Claimctl({"describe", "pvc", name});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_NE(r.out.find("exceed max volume count"), std::string::npos) << r.out;
  }
};

TEST_F(ConfigTest, ConfigWithTwoErrorsExitsOneListingBothAtTheirLines) {
  // WriteConfig's own lines are 1-7; the two mistakes are on lines 8 and 9.
  std::string path = WriteConfig("maxVolumes: lots\nlogLevell: debug\n");
  CommandOptions options;
  options.timeout = 30s;
  CommandResult r = RunCommand({ClaimfsdBinary(), "--config", path}, options);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::string all = r.out + r.err;
  EXPECT_NE(r.err.find(path + ":8:"), std::string::npos) << all;
  EXPECT_NE(r.err.find("maxVolumes"), std::string::npos) << all;
  EXPECT_NE(r.err.find(path + ":9:"), std::string::npos) << all;
  EXPECT_NE(r.err.find("logLevell"), std::string::npos) << all;
  EXPECT_NE(r.err.find("logLevel\""), std::string::npos) << "no suggestion of logLevel: " << all;
  EXPECT_NE(access(socket_path().c_str(), F_OK), 0) << "it started anyway";
  EXPECT_TRUE(MountsUnder(data_dir()).empty());
}

TEST_F(ConfigTest, SighupWithBrokenConfigKeepsServingWithTheOldOne) {
  std::string path = WriteConfig("maxVolumes: 0\n");
  ASSERT_TRUE(StartDaemon({"--config", path}));
  ASSERT_TRUE(CreateDynamicClaim("one", "16Mi"));
  ASSERT_TRUE(WriteFile(MountPath("one") + "/file", "one"));

  std::ofstream(path, std::ios::trunc) << "pools: [unclosed\nmaxVolumes: -5\n";
  size_t index = notify().Count();
  size_t log_before = DaemonLog().size();
  SignalDaemon(SIGHUP);
  // The reload ends (READY=1 again) and the daemon says where the file is wrong.
  EXPECT_TRUE(notify().WaitFor("READY=1", index, 10s)) << "no READY=1 after SIGHUP";
  const std::regex at_line(path + ":[0-9]+:[0-9]+");
  EXPECT_TRUE(WaitFor(
      [&] { return std::regex_search(DaemonLog().substr(log_before), at_line); }, 5s))
      << "the broken config's errors were not logged at file:line:col:\n"
      << DaemonLog().substr(log_before);
  ASSERT_TRUE(DaemonRunning()) << DaemonLog();

  // Well-formed YAML with a bad value: the summary says the daemon goes on ("not starting" was
  // the start's wording, printed by a daemon that kept running).
  std::ofstream(path, std::ios::trunc) << "maxVolumes: -5\n";
  index = notify().Count();
  log_before = DaemonLog().size();
  SignalDaemon(SIGHUP);
  EXPECT_TRUE(notify().WaitFor("READY=1", index, 10s)) << "no READY=1 after SIGHUP";
  EXPECT_TRUE(WaitFor(
      [&] {
        return DaemonLog().substr(log_before).find(
                   "1 error(s); keeping the running configuration") != std::string::npos;
      },
      5s))
      << DaemonLog().substr(log_before);
  EXPECT_EQ(DaemonLog().substr(log_before).find("not starting"), std::string::npos);
  ASSERT_TRUE(DaemonRunning()) << DaemonLog();

  ASSERT_TRUE(CreateDynamicClaim("two", "16Mi"));
  EXPECT_TRUE(WriteFile(MountPath("two") + "/file", "two"));
  EXPECT_EQ(ReadFile(MountPath("one") + "/file"), "one");
}

TEST_F(ConfigTest, MaxVolumesKeepsTheExtraClaimPendingUntilAVolumeFrees) {
  std::string path = WriteConfig("maxVolumes: 1\n");
  ASSERT_TRUE(StartDaemon({"--config", path}));
  ASSERT_TRUE(CreateDynamicClaim("first", "16Mi"));
  ASSERT_NO_FATAL_FAILURE(ExpectPendingAtVolumeLimit("second"));

  CommandResult r = Claimctl({"delete", "pvc", "first"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitBoundAndMounted("second", 10s));
}

TEST_F(ConfigTest, SighupWithValidNewMaxVolumesTakesEffect) {
  std::string path = WriteConfig("maxVolumes: 1\n");
  ASSERT_TRUE(StartDaemon({"--config", path}));
  ASSERT_TRUE(CreateDynamicClaim("first", "16Mi"));
  ASSERT_NO_FATAL_FAILURE(ExpectPendingAtVolumeLimit("second"));

  WriteConfig("maxVolumes: 2\n");
  SignalDaemon(SIGHUP);
  EXPECT_TRUE(WaitBoundAndMounted("second", 10s));
  ASSERT_NO_FATAL_FAILURE(ExpectPendingAtVolumeLimit("third"));
  EXPECT_TRUE(DaemonRunning());
}

// A second daemon configured with the first one's mountRoot took every live mount there for a
// crash's leftovers and detached them, leaving plain directories without a quota in their place.
TEST_F(ConfigTest, SecondDaemonOnTheSameMountRootRefusesAndLeavesTheMountsAlone) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("first", "16Mi"));
  ASSERT_TRUE(WriteFile(MountPath("first") + "/data.txt", "first's"));

  std::string other = base() + "/other";
  std::string config = base() + "/other.yaml";
  {
    std::ofstream out(config);
    out << "pools:\n  - name: default\n    path: " << other << "/pool\n"
        << "stateDir: " << other << "/state\n"
        << "mountRoot: " << data_dir() << "/claims\n"
        << "socket:\n  path: " << other << "/claimfsd.sock\n"
        << "volumePlugin:\n  enabled: false\n";
  }
  CommandOptions options;
  options.timeout = 30s;
  CommandResult r = RunCommand({ClaimfsdBinary(), "--config", config}, options);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("mount root " + data_dir() + "/claims is in use by another claimfsd (pid " +
                       std::to_string(daemon_pid()) + ")"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(MountAt(MountPath("first")).has_value()) << "the first daemon's mount was detached";
  EXPECT_EQ(ReadFile(MountPath("first") + "/data.txt"), "first's");
  EXPECT_EQ(ClaimPhase("first"), "Bound");
}

// Exploratory test (issue 10 phase 1): a second claimfsd whose mountRoot lay inside the first
// one's (its namespace directory) or around it (its data directory) started, took the first
// one's live mount for a crash's leftover and detached it.
TEST_F(ConfigTest, SecondDaemonWithAMountRootInsideOrAroundTheFirstsIsRefused) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("first", "16Mi"));
  ASSERT_TRUE(WriteFile(MountPath("first") + "/data.txt", "first's"));
  std::string other = base() + "/other";
  for (const auto& [root, relation] : {std::pair{data_dir() + "/claims/default", "lies inside"},
                                       std::pair{data_dir(), "contains"}}) {
    std::string config = base() + "/other.yaml";
    std::ofstream(config, std::ios::trunc)
        << "pools:\n  - name: default\n    path: " << other << "/pool\n"
        << "stateDir: " << other << "/state\n"
        << "mountRoot: " << root << "\n"
        << "socket:\n  path: " << other << "/claimfsd.sock\n"
        << "volumePlugin:\n  enabled: false\n";
    CommandOptions options;
    options.timeout = 30s;
    CommandResult r = RunCommand({ClaimfsdBinary(), "--config", config}, options);
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_NE(r.err.find("mount root " + root + " " + relation + " the mount root " + data_dir() +
                         "/claims of another claimfsd (pid " + std::to_string(daemon_pid()) + ")"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(MountAt(MountPath("first")).has_value()) << "the first daemon's mount was detached";
    EXPECT_EQ(ReadFile(MountPath("first") + "/data.txt"), "first's");
  }
  EXPECT_EQ(ClaimPhase("first"), "Bound");
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Attack report C1 (issue 9): `claimfsd --data-dir DIR` in a directory another user made first
// (the quick start's /var/tmp/claimfs) followed the symlinks planted there and chmodded their
// targets to 0700 and their files to 0600, and DIR stayed the other user's.
TEST_F(ConfigTest, DataDirOwnedByAnotherUserWithPlantedSymlinksIsRefused) {
  std::string victim = base() + "/victim";
  std::string victim2 = base() + "/victim2";
  ASSERT_EQ(mkdir(victim.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((victim + "/default").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(victim2.c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(victim2 + "/file", "v"));
  ASSERT_EQ(chmod(victim.c_str(), 0755), 0);
  ASSERT_EQ(chmod(victim2.c_str(), 0755), 0);
  ASSERT_EQ(chmod((victim2 + "/file").c_str(), 0644), 0);
  // The attacker's directory (uid 1002), with its symlinks.
  std::string attacker = base() + "/atk";
  std::string dir = attacker + "/data";
  ASSERT_EQ(mkdir(attacker.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(symlink(victim.c_str(), (dir + "/pools").c_str()), 0);
  ASSERT_EQ(symlink(victim2.c_str(), (dir + "/state").c_str()), 0);
  for (const std::string& p : {attacker, dir, dir + "/pools", dir + "/state"}) {
    ASSERT_EQ(lchown(p.c_str(), 1002, 1002), 0) << p;
  }
  // base() is 0700: let the walk from / see only root's and 1002's directories.
  CommandOptions options;
  options.timeout = 30s;
  CommandResult r = RunCommand({ClaimfsdBinary(), "--data-dir", dir}, options);
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find(attacker), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("uid 1002"), std::string::npos) << r.Describe();
  EXPECT_EQ(ModeOf(victim), 0755u);
  EXPECT_EQ(ModeOf(victim + "/default"), 0755u);
  EXPECT_EQ(ModeOf(victim2), 0755u);
  EXPECT_EQ(ModeOf(victim2 + "/file"), 0644u);
  EXPECT_NE(access((victim2 + "/state.db").c_str(), F_OK), 0) << "state created in the target";

  // The same directory handed to root: the planted symlinks are still refused, by name.
  for (const std::string& p : {attacker, dir, dir + "/pools", dir + "/state"}) {
    ASSERT_EQ(lchown(p.c_str(), 0, 0), 0) << p;
  }
  r = RunCommand({ClaimfsdBinary(), "--data-dir", dir}, options);
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find("symlink"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find(dir + "/"), std::string::npos) << r.Describe();
  EXPECT_EQ(ModeOf(victim), 0755u);
  EXPECT_EQ(ModeOf(victim2), 0755u);
  EXPECT_EQ(ModeOf(victim2 + "/file"), 0644u);

  // A data directory writable by its group is refused too.
  ASSERT_EQ(unlink((dir + "/pools").c_str()), 0);
  ASSERT_EQ(unlink((dir + "/state").c_str()), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0775), 0);
  r = RunCommand({ClaimfsdBinary(), "--data-dir", dir}, options);
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find("writable by its group"), std::string::npos) << r.Describe();
  EXPECT_TRUE(MountsUnder(dir).empty());
}

// Issue 12: a 150Gi claim bound on a disk with 78G free, and df in the volume promised 150G. A
// pool promises at most what its volumes already use plus what its filesystem has free.
TEST_F(ConfigTest, PoolPromisesNoMoreThanItsDiskCanHold) {
  std::string disk = base() + "/disk";
  ASSERT_EQ(::mkdir(disk.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=64m"), 0) << strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{disk};
  // 40 MiB of the disk hold other data: 24 MiB are left for the pool.
  ASSERT_TRUE(WriteFile(disk + "/host-data", std::string(40 << 20, 'h')));
  std::string path = base() + "/small.yaml";
  {
    std::ofstream out(path);
    out << "pools:\n  - name: default\n    path: " << disk << "/pool\n"
        << "stateDir: " << data_dir() << "/state\n"
        << "mountRoot: " << data_dir() << "/claims\n"
        << "socket:\n  path: " << socket_path() << "\n";
  }
  ASSERT_TRUE(StartDaemon({"--config", path}));

  ASSERT_EQ(Apply(ClaimYaml("too-big", "32Mi")).exit_code, 0);
  auto refused = [&] {
    for (const nlohmann::json& e : EventsFor("PersistentVolumeClaim", "too-big")) {
      if (JsonString(e, "/reason") == "ProvisioningFailed") return JsonString(e, "/message");
    }
    return std::string();
  };
  EXPECT_TRUE(WaitFor([&] { return !refused().empty(); }, 5s))
      << DescribeEvents("PersistentVolumeClaim", "too-big");
  EXPECT_EQ(refused(),
            "failed to provision volume with StorageClass \"local\": insufficient capacity in "
            "pool \"default\": requested 32Mi, pool capacity 24Mi, already provisioned 0");
  EXPECT_EQ(ClaimPhase("too-big"), "Pending");

  // Data written into a volume counts as the pool's: it stays within the room, not outside it.
  ASSERT_TRUE(CreateDynamicClaim("first", "16Mi"));
  ASSERT_TRUE(WriteFile(MountPath("first") + "/data", std::string(8 << 20, 'd')));
  EXPECT_TRUE(CreateDynamicClaim("second", "7Mi"));
}

// Issue 12: --data-dir could not be combined with --config, so a quick-start user could not
// allow one more hostPath prefix. The file's keys now override the quick start's values; what
// the file moves out of the data directory is not the data directory's to chmod.
TEST_F(ConfigTest, DataDirWithAConfigFileTakesTheFilesKeysOverTheQuickStart) {
  std::string tmpl = "/var/tmp/claimfs-e2e-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << strerror(errno);
  const std::string outside = tmpl;
  RemoveAtTearDown(outside);
  std::string path = base() + "/extra.yaml";
  std::ofstream(path) << "allowedHostPathPrefixes: [/tmp, " << outside << "]\n";
  ASSERT_TRUE(StartDaemon({"--data-dir", data_dir(), "--config", path}));

  // The quick start's socket, pool and mounts, with the file's prefixes.
  ASSERT_TRUE(CreateDynamicClaim("dynamic", "16Mi"));
  EXPECT_EQ(VolumeOf("dynamic").rfind("pvc-", 0), 0u);
  CommandResult r = Apply(StaticPairYaml("outside", outside + "/volume", "ReadWriteOnce", "Retain"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitBoundAndMounted("outside"));
  EXPECT_EQ(ModeOf(data_dir()), 0711u);

  // A file that moves the state directory out of the data directory: its parent keeps its mode.
  ASSERT_TRUE(StopDaemon());
  std::string elsewhere = base() + "/elsewhere";
  ASSERT_EQ(::mkdir(elsewhere.c_str(), 0755), 0);
  std::ofstream(path, std::ios::trunc) << "stateDir: " << elsewhere << "/state\n";
  ASSERT_TRUE(StartDaemon({"--data-dir", data_dir(), "--config", path}));
  EXPECT_EQ(ModeOf(elsewhere), 0755u);
  EXPECT_EQ(ModeOf(elsewhere + "/state"), 0700u);
}

}  // namespace
}  // namespace claimfs::it
