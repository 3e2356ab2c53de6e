// The claimfs program (issue 2, "The program" and Semantics "ro"): options refused before
// anything is mounted, kernel mount options applied, mount type fuse.claimfs, background and
// foreground modes, clean unmount on SIGTERM/SIGINT/fusermount3 -u, and the mount(8) helper
// convention.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

bool HasOption(const std::string& list, const std::string& option) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    if (list.substr(start, end - start) == option) return true;
    start = end + 1;
  }
  return false;
}

// Processes other than this one whose command line mentions `needle`.
std::vector<pid_t> ProcessesMentioning(const std::string& needle) {
  std::vector<pid_t> found;
  DIR* d = opendir("/proc");
  if (d == nullptr) return found;
  while (dirent* e = readdir(d)) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    std::string cmdline = ReadFileOrEmpty("/proc/" + std::string(e->d_name) + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) found.push_back(pid);
  }
  closedir(d);
  return found;
}

bool WaitGone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool any = false;
    for (pid_t pid : pids) {
      // A zombie is gone for our purposes; it is not our child to reap.
      std::string stat = ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
      size_t paren = stat.rfind(')');
      if (!stat.empty() && paren != std::string::npos && stat.substr(paren + 2, 1) != "Z") {
        any = true;
      }
    }
    if (!any) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

// Runs `path` in a child: "exit N", or the errno name when execve itself fails.
std::string ExecResult(const std::string& path) {
  ChildResult r = RunInChild(
      [&path] {
        pid_t pid = fork();
        if (pid == 0) {
          int devnull = open("/dev/null", O_RDWR);
          dup2(devnull, 1);
          dup2(devnull, 2);
          char* const argv[] = {const_cast<char*>(path.c_str()), nullptr};
          execv(path.c_str(), argv);
          int err = errno;
          _exit(200 + (err == EACCES ? 1 : err == ENOEXEC ? 2 : 3));
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status)) return std::string("signal");
        int code = WEXITSTATUS(status);
        if (code == 201) return std::string("EACCES");
        if (code >= 200) return "exec failed (" + std::to_string(code) + ")";
        return "exit " + std::to_string(code);
      },
      std::nullopt, 10s);
  return r.ok ? r.output : "<" + r.problem + ">";
}

class ProgramTest : public VolumeTest {
 protected:
  void SetUp() override {
    VolumeTest::SetUp();
    if (HasFatalFailure()) return;
    if (NativeMode()) GTEST_SKIP() << "tests the claimfs program itself (native mode)";
  }
};

TEST_F(ProgramTest, MountinfoShowsTypeFuseClaimfs) {
  ASSERT_NO_FATAL_FAILURE(MountVolume(""));
  std::optional<MountEntry> m = FindMount(mount_point());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->fs_type, "fuse.claimfs");
  struct statvfs sv {};
  ASSERT_EQ(statvfs(mount_point().c_str(), &sv), 0);
  EXPECT_FALSE(sv.f_flag & ST_RDONLY);
}

TEST_F(ProgramTest, KernelMountOptionsAreApplied) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("noexec,nosuid,nodev,noatime,fsname=claimfs-test-vol"));
  std::optional<MountEntry> m = FindMount(mount_point());
  ASSERT_TRUE(m);
  for (const char* opt : {"noexec", "nosuid", "nodev", "noatime"}) {
    EXPECT_TRUE(HasOption(m->mount_options, opt)) << opt << " not in " << m->mount_options;
  }
  EXPECT_EQ(m->source, "claimfs-test-vol");
  EXPECT_EQ(m->fs_type, "fuse.claimfs");
  // noexec is enforced: execve fails with EACCES.
  ASSERT_TRUE(WriteFile(P("prog"), ReadFile("/bin/true")));
  ASSERT_EQ(chmod(P("prog").c_str(), 0755), 0);
  EXPECT_EQ(ExecResult(P("prog")), "EACCES");
}

TEST_F(ProgramTest, ExecWorksWithoutNoexec) {
  ASSERT_NO_FATAL_FAILURE(MountVolume(""));
  std::optional<MountEntry> m = FindMount(mount_point());
  ASSERT_TRUE(m);
  EXPECT_FALSE(HasOption(m->mount_options, "noexec")) << m->mount_options;
  ASSERT_TRUE(WriteFile(P("prog"), ReadFile("/bin/true")));
  ASSERT_EQ(chmod(P("prog").c_str(), 0755), 0);
  EXPECT_EQ(ExecResult(P("prog")), "exit 0");
}

TEST_F(ProgramTest, ReadOnlyMountRefusesEveryWritePath) {
  ASSERT_TRUE(WriteFile(source() + "/f", "content"));
  ASSERT_EQ(mkdir((source() + "/d").c_str(), 0755), 0);
  ASSERT_EQ(symlink("f", (source() + "/l").c_str()), 0);
  ASSERT_EQ(setxattr((source() + "/f").c_str(), "user.k", "v", 1, 0), 0);
  ASSERT_NO_FATAL_FAILURE(MountVolume("ro,capacity=64Mi"));
  std::optional<MountEntry> m = FindMount(mount_point());
  ASSERT_TRUE(m);
  EXPECT_TRUE(HasOption(m->mount_options, "ro")) << m->mount_options;
  struct statvfs sv {};
  ASSERT_EQ(statvfs(mount_point().c_str(), &sv), 0);
  EXPECT_TRUE(sv.f_flag & ST_RDONLY);

  auto expect_erofs = [](long rv, const char* what) {
    int err = errno;
    EXPECT_EQ(rv, -1) << what;
    EXPECT_EQ(err, EROFS) << what << ": " << ErrnoName(err);
  };
  auto open_rv = [](const std::string& path, int flags) -> long {
    int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
  };
  std::string f = P("f");
  struct timespec ts[2] = {{1, 0}, {1, 0}};
  expect_erofs(open_rv(f, O_WRONLY), "open O_WRONLY");
  expect_erofs(open_rv(f, O_RDWR), "open O_RDWR");
  expect_erofs(open_rv(f, O_WRONLY | O_TRUNC), "open O_TRUNC");
  expect_erofs(open_rv(f, O_WRONLY | O_APPEND), "open O_APPEND");
  expect_erofs(open_rv(P("new"), O_WRONLY | O_CREAT), "create");
  expect_erofs(mkdir(P("newdir").c_str(), 0755), "mkdir");
  expect_erofs(rmdir(P("d").c_str()), "rmdir");
  expect_erofs(unlink(f.c_str()), "unlink");
  expect_erofs(rename(f.c_str(), P("g").c_str()), "rename");
  expect_erofs(renameat2(AT_FDCWD, f.c_str(), AT_FDCWD, P("d").c_str(), RENAME_EXCHANGE),
               "rename exchange");
  expect_erofs(link(f.c_str(), P("hl").c_str()), "link");
  expect_erofs(symlink("f", P("sl").c_str()), "symlink");
  expect_erofs(mknod(P("node").c_str(), S_IFREG | 0644, 0), "mknod");
  expect_erofs(mkfifo(P("fifo").c_str(), 0644), "mkfifo");
  expect_erofs(chmod(f.c_str(), 0600), "chmod");
  expect_erofs(chown(f.c_str(), 1000, 1000), "chown");
  expect_erofs(lchown(P("l").c_str(), 1000, 1000), "lchown");
  expect_erofs(truncate(f.c_str(), 0), "truncate");
  expect_erofs(utimensat(AT_FDCWD, f.c_str(), ts, 0), "utimensat");
  expect_erofs(utimensat(AT_FDCWD, f.c_str(), nullptr, 0), "utimensat now");
  expect_erofs(setxattr(f.c_str(), "user.x", "1", 1, 0), "setxattr");
  expect_erofs(removexattr(f.c_str(), "user.k"), "removexattr");
  // Reading works.
  EXPECT_EQ(ReadFile(f), "content");
  char buf[16];
  EXPECT_EQ(getxattr(f.c_str(), "user.k", buf, sizeof(buf)), 1);
  char link_target[16];
  EXPECT_EQ(readlink(P("l").c_str(), link_target, sizeof(link_target)), 1);
  // An fd opened for reading cannot be used to write or allocate.
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(write(fd, "x", 1), -1);
  EXPECT_EQ(fchmod(fd, 0600), -1);
  EXPECT_EQ(errno, EROFS) << "fchmod: " << ErrnoName(errno);
  EXPECT_EQ(fsetxattr(fd, "user.x", "1", 1, 0), -1);
  EXPECT_EQ(errno, EROFS) << "fsetxattr: " << ErrnoName(errno);
  EXPECT_EQ(futimens(fd, ts), -1);
  EXPECT_EQ(errno, EROFS) << "futimens: " << ErrnoName(errno);
  close(fd);
  // And nothing changed underneath.
  EXPECT_EQ(ReadFile(source() + "/f"), "content");
  struct stat st {};
  EXPECT_NE(lstat((source() + "/new").c_str(), &st), 0);
}

struct BadArgsCase {
  const char* name;
  std::vector<std::string> options;  // after SOURCE MOUNTPOINT
  const char* needle;                // the message must name this; "$SOURCE" for the path
  bool missing_source = false;
  bool file_source = false;
};

void PrintTo(const BadArgsCase& c, std::ostream* os) { *os << c.name; }

class BadArgumentsTest : public ProgramTest, public ::testing::WithParamInterface<BadArgsCase> {};

TEST_P(BadArgumentsTest, RefusedWithAMessageAndNothingMounted) {
  const BadArgsCase& c = GetParam();
  std::string src = source();
  if (c.missing_source) src = base() + "/no-such-source";
  if (c.file_source) {
    src = base() + "/plain-file";
    ASSERT_TRUE(WriteFile(src, "not a directory"));
  }
  std::vector<std::string> argv = {ClaimfsBinary(), src, mount_point()};
  argv.insert(argv.end(), c.options.begin(), c.options.end());
  RunResult r = it::Run(argv, {.timeout = 20s});
  bool mounted = FindMount(mount_point()).has_value();
  ForceUnmount(mount_point());
  EXPECT_TRUE(r.Exited() && r.ExitCode() != 0) << "must exit non-zero: " << r.Describe();
  std::string needle = std::string(c.needle) == "$SOURCE" ? src : c.needle;
  EXPECT_NE(r.output.find(needle), std::string::npos)
      << "message must name '" << needle << "': " << r.output;
  EXPECT_FALSE(mounted) << "mounted despite the bad argument";
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadArgumentsTest,
    ::testing::Values(
        BadArgsCase{"UnknownOption", {"-o", "bogus"}, "bogus"},
        BadArgsCase{
            "UnknownOptionAmongGood", {"-o", "capacity=64Mi,frobnicate=1,noatime"}, "frobnicate"},
        BadArgsCase{"MalformedCapacity", {"-o", "capacity=12Qx"}, "capacity"},
        BadArgsCase{"EmptyCapacity", {"-o", "capacity="}, "capacity"},
        BadArgsCase{"NegativeCapacity", {"-o", "capacity=-5Mi"}, "capacity"},
        BadArgsCase{"MalformedInodes", {"-o", "inodes=many"}, "inodes"},
        BadArgsCase{"UnknownQuotaErrno", {"-o", "quota_errno=EIO"}, "quota_errno"},
        BadArgsCase{"MissingSource", {"-o", "capacity=64Mi"}, "$SOURCE", true, false},
        BadArgsCase{"SourceIsAFile", {"-o", "capacity=64Mi"}, "$SOURCE", false, true}),
    [](const ::testing::TestParamInfo<BadArgsCase>& info) { return info.param.name; });

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

void ExpectCleanExit(ClaimfsServer* server, const std::string& mount_point, const char* how) {
  std::optional<int> status = server->WaitExit(10s);
  ASSERT_TRUE(status.has_value()) << "claimfs still running 10 s after " << how;
  EXPECT_EQ(DescribeStatus(*status), "exit code 0")
      << "after " << how << "; claimfs log: " << server->Log();
  EXPECT_TRUE(WaitForMountState(mount_point, false, 2s)) << "still mounted after " << how;
}

TEST_F(ProgramTest, SigtermUnmountsCleanly) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi"));
  ASSERT_TRUE(WriteFile(P("kept"), "written before SIGTERM"));
  server()->Signal(SIGTERM);
  ExpectCleanExit(server(), mount_point(), "SIGTERM");
  EXPECT_EQ(ReadFile(source() + "/kept"), "written before SIGTERM");
}

TEST_F(ProgramTest, SigintUnmountsCleanly) {
  ASSERT_NO_FATAL_FAILURE(MountVolume(""));
  server()->Signal(SIGINT);
  ExpectCleanExit(server(), mount_point(), "SIGINT");
}

TEST_F(ProgramTest, FusermountUnmountEndsTheProcess) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi"));
  RunResult r = it::Run({"fusermount3", "-u", mount_point()}, {.timeout = 10s});
  EXPECT_TRUE(r.Succeeded()) << r.Describe();
  ExpectCleanExit(server(), mount_point(), "fusermount3 -u");
}

TEST_F(ProgramTest, DebugFlagTracesRequests) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("", ServerOptions{.extra_args = {"-d"}}));
  struct stat st {};
  stat(P("anything").c_str(), &st);
  EXPECT_FALSE(server()->Log().empty()) << "-d printed nothing";
}

TEST_F(ProgramTest, BackgroundModeReturnsOnceTheMountIsUsable) {
  ASSERT_TRUE(WriteFile(source() + "/hello", "hi"));
  RunResult r =
      it::Run({ClaimfsBinary(), source(), mount_point(), "-o", "capacity=64Mi"}, {.timeout = 20s});
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  // Usable at once, no waiting.
  std::optional<MountEntry> m = FindMount(mount_point());
  ASSERT_TRUE(m) << "claimfs returned before mounting";
  EXPECT_EQ(m->fs_type, "fuse.claimfs");
  EXPECT_EQ(ReadFile(mount_point() + "/hello"), "hi");
  EXPECT_EQ(StatFs(mount_point()).total, 64u << 20);
  std::vector<pid_t> servers = ProcessesMentioning(mount_point());
  EXPECT_FALSE(servers.empty()) << "no claimfs process serves the mount";
  RunResult u = it::Run({"fusermount3", "-u", mount_point()}, {.timeout = 10s});
  EXPECT_TRUE(u.Succeeded()) << u.Describe();
  EXPECT_TRUE(WaitGone(servers, 10s)) << "the background claimfs did not exit after unmount";
}

TEST_F(ProgramTest, MountFuse3HelperRunsClaimfsFromPath) {
  // What mount(8) and /etc/fstab run for type fuse.claimfs: mount.fuse3, which runs "claimfs
  // SOURCE MOUNTPOINT -o OPTIONS" through /bin/sh with PATH.
  std::string bin = base() + "/bin";
  ASSERT_EQ(mkdir(bin.c_str(), 0755), 0);
  ASSERT_EQ(symlink(ClaimfsBinary().c_str(), (bin + "/claimfs").c_str()), 0);
  const char* path = getenv("PATH");
  RunOptions options{.timeout = 20s};
  options.env = {"PATH=" + bin + ":" + (path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin")};
  RunResult r = it::Run(
      {"mount.fuse3", source(), mount_point(), "-t", "fuse.claimfs", "-o", "capacity=64Mi,noatime"},
      options);
  std::optional<MountEntry> m = FindMount(mount_point());
  std::vector<pid_t> servers = ProcessesMentioning(mount_point());
  EXPECT_TRUE(r.Succeeded()) << r.Describe();
  ASSERT_TRUE(m) << "not mounted";
  EXPECT_EQ(m->fs_type, "fuse.claimfs");
  EXPECT_TRUE(HasOption(m->mount_options, "noatime")) << m->mount_options;
  EXPECT_EQ(StatFs(mount_point()).total, 64u << 20);
  ASSERT_TRUE(WriteFile(mount_point() + "/via-helper", "ok"));
  EXPECT_EQ(ReadFile(source() + "/via-helper"), "ok");
  RunResult u = it::Run({"umount", mount_point()}, {.timeout = 10s});
  EXPECT_TRUE(u.Succeeded()) << u.Describe();
  EXPECT_TRUE(WaitGone(servers, 10s)) << "claimfs did not exit after umount";
}

TEST_F(ProgramTest, MountTypeFuseClaimfs) {
  // mount(8) drops PATH before it runs mount.fuse3, whose /bin/sh then searches only the
  // default PATH: claimfs must be installed there. The test puts it there in a private mount
  // namespace (a bind mount over /usr/local/sbin) so the host is not touched.
  std::string bin = base() + "/bin";
  ASSERT_EQ(mkdir(bin.c_str(), 0755), 0);
  ASSERT_EQ(symlink(ClaimfsBinary().c_str(), (bin + "/claimfs").c_str()), 0);
  std::string mnt = mount_point();
  std::string script =
      "set -e\n"
      "trap \"umount -l '" +
      mnt +
      "' 2>/dev/null || true\" EXIT\n"
      "mount --make-rprivate /\n"
      "mount --bind '" +
      bin +
      "' /usr/local/sbin\n"
      "mount -t fuse.claimfs '" +
      source() + "' '" + mnt +
      "' -o capacity=64Mi,noatime\n"
      "grep ' " +
      mnt +
      " ' /proc/self/mountinfo\n"
      "stat -f -c 'statfs %b %S' '" +
      mnt +
      "'\n"
      "echo ok > '" +
      mnt +
      "/via-mount'\n"
      "umount '" +
      mnt +
      "'\n"
      // An /etc/fstab line (mount -T reads an alternative fstab).
      "echo '" +
      source() + " " + mnt + " fuse.claimfs capacity=32Mi,noexec 0 0' > '" + base() +
      "/fstab'\n"
      "mount -T '" +
      base() + "/fstab' '" + mnt +
      "'\n"
      "stat -f -c 'fstab %b %S' '" +
      mnt +
      "'\n"
      "grep ' " +
      mnt +
      " ' /proc/self/mountinfo\n"
      "umount '" +
      mnt +
      "'\n"
      "for i in $(seq 100); do pgrep -f '^[^ ]*claimfs [^ ]* " +
      mnt +
      "' >/dev/null || exit 0; "
      "sleep 0.1; done\n"
      "echo 'claimfs still running after umount'; exit 3\n";
  RunResult r = it::Run({"unshare", "-m", "/bin/sh", "-c", script}, {.timeout = 30s});
  EXPECT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_NE(r.output.find(" - fuse.claimfs "), std::string::npos) << r.output;
  unsigned long long blocks = 0, frsize = 0;
  size_t at = r.output.find("statfs ");
  ASSERT_NE(at, std::string::npos) << r.output;
  ASSERT_EQ(sscanf(r.output.c_str() + at, "statfs %llu %llu", &blocks, &frsize), 2);
  EXPECT_EQ(blocks * frsize, 64ull << 20) << "df of the helper-mounted volume";
  at = r.output.find("fstab ");
  ASSERT_NE(at, std::string::npos) << r.output;
  ASSERT_EQ(sscanf(r.output.c_str() + at, "fstab %llu %llu", &blocks, &frsize), 2);
  EXPECT_EQ(blocks * frsize, 32ull << 20) << "df of the volume mounted from an fstab line";
  EXPECT_NE(r.output.find(",noexec"), std::string::npos) << "fstab options applied: " << r.output;
  EXPECT_EQ(ReadFile(source() + "/via-mount"), "ok\n");
}

}  // namespace
}  // namespace claimfs::it
