// Storage-object-in-use protection with the real daemon: a deleted claim stays Terminating, mounted
// and usable while anyone uses it (an open file, a bind mount in another mount namespace, a
// `claimctl use` lease) and is reclaimed by itself once the last user is gone. Also the lease
// rules: ReadWriteOncePod takes one user at a time, `use` passes the command's exit code.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <regex>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kHeldContent[] = "held";

// Runs in a holder child after it got hold of the volume: every 250 ms reads the held file
// through `fd` and reports 'k' (read it) or 'e' (failed) on `report`. Never returns.
[[noreturn]] void KeepReading(int fd, int report) {
  while (true) {
    usleep(250000);
    char buf[8];
    ssize_t n = pread(fd, buf, 4, 0);
    char c = n == 4 && memcmp(buf, kHeldContent, 4) == 0 ? 'k' : 'e';
    if (write(report, &c, 1) != 1) _exit(3);
  }
}

class ProtectionTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(StartDaemon());
  }

  // Creates claim "data" with a file to hold.
  void CreateData() {
    ASSERT_TRUE(CreateDynamicClaim("data", "32Mi"));
    volume_ = VolumeOf("data");
    ASSERT_NE(volume_, "");
    ASSERT_TRUE(WriteFile(MountPath("data") + "/held.txt", kHeldContent));
  }

  // Starts `claimctl use CLAIM -- sh -c 'touch READY; exec sleep SECONDS'` and waits until the
  // command runs, under its lease. Returns claimctl's pid, or -1 (a failure is recorded) when
  // the command did not start.
  pid_t StartUse(const std::string& claim, int seconds) {
    std::string ready = base() + "/use-ready-" + std::to_string(++uses_);
    pid_t pid = Spawn({ClaimctlBinary(), "--socket", socket_path(), "use", claim, "--", "sh",
                       "-c", "touch " + ready + "; exec sleep " + std::to_string(seconds)});
    if (!WaitFor([&] { return access(ready.c_str(), F_OK) == 0; }, 10s)) {
      ADD_FAILURE() << "claimctl use " << claim << " did not run its command";
      return -1;
    }
    return pid;
  }

  // Waits for one byte on `fd` (a holder's "ready"); true if it is `want`.
  static bool WaitByte(int fd, char want, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    char c = 0;
    return read(fd, &c, 1) == 1 && c == want;
  }

  // Deletes claim "data" without waiting, then checks for `hold` that it stays Terminating,
  // protected by the finalizer, and mounted.
  void DeleteAndExpectHeld(std::chrono::milliseconds hold = 3s) {
    CommandResult r = Claimctl({"delete", "pvc", "data", "--wait=false"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.out, "persistentvolumeclaim \"data\" deleted\n");

    r = Claimctl({"get", "pvc", "data", "-o", "json"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    nlohmann::json claim = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_TRUE(claim.is_object()) << r.out;
    EXPECT_NE(JsonString(claim, "/metadata/deletionTimestamp"), "") << r.out;
    ASSERT_TRUE(claim.contains("metadata") && claim["metadata"].contains("finalizers")) << r.out;
    EXPECT_NE(std::find(claim["metadata"]["finalizers"].begin(),
                        claim["metadata"]["finalizers"].end(), "kubernetes.io/pvc-protection"),
              claim["metadata"]["finalizers"].end())
        << r.out;

    // kubectl shows a claim being deleted as Terminating.
    r = Claimctl({"get", "pvc", "data"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_NE(r.out.find("Terminating"), std::string::npos) << r.out;

    auto until = Clock::now() + hold;
    while (Clock::now() < until) {
      auto c = GetClaim("data");
      ASSERT_TRUE(c.has_value()) << "claim gone while still in use\n" << DaemonLog();
      EXPECT_NE(JsonString(*c, "/metadata/deletionTimestamp"), "");
      ASSERT_TRUE(MountAt(MountPath("data")).has_value()) << "unmounted while still in use";
      std::this_thread::sleep_for(250ms);
    }
    EXPECT_TRUE(GetVolume(volume_).has_value());
  }

  // After the last user went: the claim, its PV, its mount and its data go within 10 s.
  void ExpectReclaimed() {
    auto start = Clock::now();
    EXPECT_TRUE(WaitFor([&] { return !GetClaim("data").has_value(); }, 10s))
        << "claim still there (phase " << ClaimPhase("data") << ")";
    EXPECT_TRUE(WaitFor([&] { return !GetVolume(volume_).has_value(); }, 10s))
        << volume_ << " still there";
    EXPECT_FALSE(MountAt(MountPath("data")).has_value());
    std::string backing = pool_dir() + "/" + volume_;
    EXPECT_TRUE(WaitFor([&] { return access(backing.c_str(), F_OK) != 0; }, 10s))
        << backing << " still there";
    EXPECT_LT(Clock::now() - start, 10s);
  }

  // `claimctl describe pvc data` lists `who` first under "Used By".
  void ExpectUsedBy(const std::string& who) {
    CommandResult r = Claimctl({"describe", "pvc", "data"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    std::smatch used_by;
    ASSERT_TRUE(std::regex_search(r.out, used_by, std::regex("\nUsed By: +([^\n]*)\n"))) << r.out;
    EXPECT_EQ(used_by[1].str().rfind(who, 0), 0u) << r.out;
  }

  std::string volume_;
  int uses_ = 0;
};

TEST_F(ProtectionTest, OpenFileKeepsDeletedClaimTerminatingUntilTheHolderExits) {
  ASSERT_NO_FATAL_FAILURE(CreateData());
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  std::string file = MountPath("data") + "/held.txt";
  int report = p[1];
  pid_t holder = SpawnFunction([=] {
    int fd = open(file.c_str(), O_RDONLY);
    if (fd < 0) return 1;
    if (write(report, "R", 1) != 1) return 2;
    KeepReading(fd, report);
  });
  close(p[1]);
  ASSERT_TRUE(WaitByte(p[0], 'R', 10s)) << "holder did not open " << file;
  // Issue 12: describe said "Used By: <none>" while the daemon's log knew the holder.
  ExpectUsedBy("pid " + std::to_string(holder) + " (");

  ASSERT_NO_FATAL_FAILURE(DeleteAndExpectHeld());
  // The holder kept reading its file the whole time.
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  std::string reports;
  char buf[256];
  for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;) reports.append(buf, static_cast<size_t>(n));
  close(p[0]);
  EXPECT_GE(std::count(reports.begin(), reports.end(), 'k'), 8) << reports;
  EXPECT_EQ(reports.find('e'), std::string::npos) << "the holder's reads failed: " << reports;

  KillSpawned(holder);
  CommandResult r = Claimctl({"wait", "--for=delete", "pvc/data", "--timeout=10s"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  ExpectReclaimed();
}

TEST_F(ProtectionTest, BindMountInAnotherMountNamespaceKeepsDeletedClaimUntilTheNamespaceEnds) {
  ASSERT_NO_FATAL_FAILURE(CreateData());
  std::string target = base() + "/container-data";
  ASSERT_EQ(mkdir(target.c_str(), 0755), 0);
  std::string source = MountPath("data");
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  int report = p[1];
  // A "container": its own mount namespace holding only a bind of the volume (the volume's own
  // mount and every other FUSE mount detached there), and nothing open on it.
  pid_t holder = SpawnFunction([=]() -> int {
    if (unshare(CLONE_NEWNS) != 0) return 1;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 2;
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) return 3;
    for (const MountInfo& m : ReadMounts()) {
      if (m.fs_type.rfind("fuse", 0) == 0 && m.mount_point != target) {
        umount2(m.mount_point.c_str(), MNT_DETACH);
      }
    }
    int fd = open((target + "/held.txt").c_str(), O_RDONLY);
    if (fd < 0) return 4;
    char buf[8];
    bool readable = pread(fd, buf, 4, 0) == 4 && memcmp(buf, kHeldContent, 4) == 0;
    close(fd);
    if (!readable) return 5;
    if (write(report, "R", 1) != 1) return 6;
    pause();
    return 0;
  });
  close(p[1]);
  bool ready = WaitByte(p[0], 'R', 10s);
  close(p[0]);
  if (!ready) {
    std::optional<int> status = WaitSpawned(holder, 1s);
    FAIL() << "the namespace holder did not set up its bind mount (wait status "
           << (status ? std::to_string(*status) : "running") << ")";
  }
  ExpectUsedBy("mount namespace of pid " + std::to_string(holder) + " (");

  ASSERT_NO_FATAL_FAILURE(DeleteAndExpectHeld());
  KillSpawned(holder);  // the namespace, and the bind with it, ends with its last process
  ExpectReclaimed();
}

TEST_F(ProtectionTest, UseLeaseKeepsDeletedClaimTerminatingUntilTheCommandExits) {
  ASSERT_NO_FATAL_FAILURE(CreateData());
  std::string mount = MountPath("data");

  // `use` runs the command with CLAIMFS_MOUNT and exits with its code.
  CommandResult r = Claimctl({"use", "data", "--", "sh", "-c", "echo \"$CLAIMFS_MOUNT\"; exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.Describe();
  EXPECT_EQ(r.out, mount + "\n");
  EXPECT_TRUE(Leases("data").empty()) << "the lease outlived its command";

  pid_t user = StartUse("data", 8);
  ASSERT_GT(user, 0);
  std::vector<nlohmann::json> leases = Leases("data");
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(JsonString(leases[0], "/claim"), "default/data");

  ASSERT_NO_FATAL_FAILURE(DeleteAndExpectHeld());
  // A claim being deleted takes no new users.
  r = Claimctl({"use", "data", "--", "true"});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find("being deleted"), std::string::npos) << r.err;

  std::optional<int> status = WaitSpawned(user, 10s);
  ASSERT_TRUE(status.has_value()) << "claimctl use did not finish";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
  ExpectReclaimed();
}

// Leases lived only in the daemon's memory: after a crash and restart a claim whose
// `claimctl use` still ran was deleted at once, data and all.
TEST_F(ProtectionTest, UseLeaseSurvivesADaemonCrashAndStillHoldsTheClaim) {
  ASSERT_NO_FATAL_FAILURE(CreateData());
  pid_t user = StartUse("data", 60);
  ASSERT_GT(user, 0);
  std::vector<nlohmann::json> before = Leases("data");
  ASSERT_EQ(before.size(), 1u);

  Kill9();
  ASSERT_TRUE(Restart());
  ASSERT_TRUE(WaitBoundAndMounted("data"));
  std::vector<nlohmann::json> after = Leases("data");
  ASSERT_EQ(after.size(), 1u) << DaemonLog();
  EXPECT_EQ(JsonString(after[0], "/id"), JsonString(before[0], "/id"));
  EXPECT_EQ(after[0].value("pid", 0), before[0].value("pid", 0));

  ASSERT_NO_FATAL_FAILURE(DeleteAndExpectHeld());
  EXPECT_EQ(ReadFile(pool_dir() + "/" + volume_ + "/held.txt"), kHeldContent);
  KillSpawned(user);  // the holder goes: its lease with it, at the next pass
  ExpectReclaimed();
}

// The lease named claimctl's pid: when claimctl was killed, the command it ran went on using
// the volume while the claim could be deleted under it.
TEST_F(ProtectionTest, UseLeaseFollowsTheCommandWhenClaimctlIsKilled) {
  ASSERT_NO_FATAL_FAILURE(CreateData());
  pid_t user = StartUse("data", 60);
  ASSERT_GT(user, 0);
  std::vector<nlohmann::json> leases = Leases("data");
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_NE(leases[0].value("pid", 0), user) << "the lease names claimctl, not its command";

  ASSERT_EQ(kill(user, SIGKILL), 0) << strerror(errno);  // claimctl only; the command runs on
  ASSERT_NO_FATAL_FAILURE(DeleteAndExpectHeld());
  EXPECT_EQ(Leases("data").size(), 1u);

  ASSERT_EQ(kill(leases[0].value("pid", 0), SIGKILL), 0) << strerror(errno);  // the command ends
  ExpectReclaimed();
}

TEST_F(ProtectionTest, ReadWriteOncePodClaimTakesOneUserAtATime) {
  ASSERT_TRUE(CreateDynamicClaim("solo", "16Mi", "ReadWriteOncePod"));
  pid_t first = StartUse("solo", 30);
  ASSERT_GT(first, 0);

  std::string second = base() + "/second-ran";
  CommandResult r = Claimctl({"use", "solo", "--", "touch", second});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("ReadWriteOncePod"), std::string::npos) << r.err;
  EXPECT_NE(access(second.c_str(), F_OK), 0) << "the second command ran";

  // Once the first user is gone (killed: its lease goes with its process), the next one gets in.
  KillSpawned(first);
  EXPECT_TRUE(WaitFor(
      [&] { return Claimctl({"use", "solo", "--", "touch", second}).exit_code == 0; }, 10s,
      500ms));
  EXPECT_EQ(access(second.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace claimfs::it
