#include "claimfs/mount/usage_scanner.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/mount/mount_table.h"

namespace claimfs::mount {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class UsageScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A private mount namespace: the test's mounts vanish with it, and every process outside
    // (the rest of the machine) is in "another namespace" that does not have them.
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
    char tmpl[] = "/tmp/claimfs-usage-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    vol_ = base_ + "/vol";
    device_ = MountTmpfs(vol_);
    WriteFile(vol_ + "/file", "data");
    ASSERT_EQ(::mkdir((vol_ + "/dir").c_str(), 0755), 0);
  }
  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it) {
      ::umount2(it->c_str(), MNT_DETACH);
    }
    std::string cmd = "rm -rf " + base_;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  static void WriteFile(const std::string& path, const std::string& content) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
  }

  dev_t MountTmpfs(const std::string& path) {
    std::string cmd = "mkdir -p " + path;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    EXPECT_EQ(::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=4m"), 0) << std::strerror(errno);
    mounted_.push_back(path);
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st.st_dev;
  }

  // Forks a child that runs `setup` and then waits to be killed; returns once setup is done.
  // A setup that fails makes the child exit, which the caller sees as a missing user.
  pid_t Child(const std::function<bool()>& setup, const char* exec_sleep = nullptr) {
    int ready[2];
    EXPECT_EQ(::pipe(ready), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(ready[0]);
      if (!setup()) ::_exit(1);
      if (exec_sleep != nullptr) {
        // Announce readiness by exec: the pipe end is close-on-exec.
        ::fcntl(ready[1], F_SETFD, FD_CLOEXEC);
        ::execlp(exec_sleep, exec_sleep, "300", nullptr);
        ::_exit(127);
      }
      char byte = 1;
      if (::write(ready[1], &byte, 1) != 1) ::_exit(1);
      while (true) ::pause();
    }
    ::close(ready[1]);
    char byte;
    ::read(ready[0], &byte, 1);  // a byte, or EOF at exec or exit
    ::close(ready[0]);
    children_.push_back(pid);
    return pid;
  }

  std::map<dev_t, VolumeUsers> Scan() const { return UsageScanner().Scan({{device_, vol_}}); }

  std::string base_, vol_;
  dev_t device_ = 0;
  std::vector<pid_t> children_;
  std::vector<std::string> mounted_;
};

TEST_F(UsageScannerTest, AnIdleVolumeHasNoUsers) {
  auto result = Scan();
  ASSERT_EQ(result.size(), 1u);
  const VolumeUsers& users = result[device_];
  EXPECT_FALSE(users.any()) << users.Describe();
  EXPECT_EQ(users.Describe(), "not in use");
  EXPECT_TRUE(UsageScanner().Scan({}).empty());
}

TEST_F(UsageScannerTest, TheScanningProcessItselfIsSkipped) {
  int fd = ::open((vol_ + "/file").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  int cwd = ::open(".", O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::chdir(vol_.c_str()), 0);
  auto result = Scan();
  ASSERT_EQ(::fchdir(cwd), 0);
  ::close(cwd);
  EXPECT_FALSE(result[device_].any()) << result[device_].Describe();

  // A child that inherited the descriptor is a user, the scanner still is not.
  pid_t child = Child([] { return true; });
  result = Scan();
  ::close(fd);
  EXPECT_THAT(result[device_].open_files, ElementsAre(child));
}

TEST_F(UsageScannerTest, AnOpenFileIsFoundByMountIdAndNamedInTheDescription) {
  std::string path = vol_ + "/file";
  pid_t child = Child(
      [&] {
        int fd = ::open(path.c_str(), O_RDONLY);
        return fd >= 0 && ::dup2(fd, 0) == 0;
      },
      "sleep");
  auto result = Scan();
  const VolumeUsers& users = result[device_];
  EXPECT_THAT(users.open_files, ElementsAre(child));
  EXPECT_THAT(users.other_namespaces, IsEmpty());
  EXPECT_THAT(users.bind_mounts, IsEmpty());
  EXPECT_EQ(users.Describe(), "open by pid " + std::to_string(child) + " (sleep)");
}

TEST_F(UsageScannerTest, AnOpenDirectoryAndADeletedFileCount) {
  std::string dir = vol_ + "/dir", doomed = vol_ + "/doomed";
  WriteFile(doomed, "x");
  pid_t with_dir = Child([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY) >= 0; });
  pid_t with_deleted = Child([&] { return ::open(doomed.c_str(), O_RDONLY) >= 0; });
  ASSERT_EQ(::unlink(doomed.c_str()), 0);
  auto result = Scan();
  std::vector<pid_t> expected = {with_dir, with_deleted};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(result[device_].open_files, expected);
}

TEST_F(UsageScannerTest, AWorkingDirectoryCounts) {
  std::string dir = vol_ + "/dir";
  pid_t child = Child([&] { return ::chdir(dir.c_str()) == 0; });
  // Even once the directory is deleted: the kernel shows "<path> (deleted)".
  pid_t deleted = Child([&] {
    return ::mkdir((vol_ + "/gone").c_str(), 0755) == 0 && ::chdir((vol_ + "/gone").c_str()) == 0 &&
           ::rmdir((vol_ + "/gone").c_str()) == 0;
  });
  auto result = Scan();
  std::vector<pid_t> expected = {child, deleted};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(result[device_].open_files, expected);
}

TEST_F(UsageScannerTest, AWorkingDirectoryInAMountBelowTheVolumeIsNotTheVolume) {
  std::string inner = vol_ + "/dir/inner";
  MountTmpfs(inner);
  pid_t child = Child([&] { return ::chdir(inner.c_str()) == 0; });
  auto result = Scan();
  EXPECT_FALSE(result[device_].any()) << result[device_].Describe() << " (pid " << child << ")";
}

TEST_F(UsageScannerTest, AMemoryMappingCountsWithoutADescriptor) {
  std::string path = vol_ + "/file";
  pid_t child = Child([&] {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return false;
    void* map = ::mmap(nullptr, 4, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    return map != MAP_FAILED && ::unlink(path.c_str()) == 0;
  });
  auto result = Scan();
  EXPECT_THAT(result[device_].open_files, ElementsAre(child));
}

TEST_F(UsageScannerTest, AnotherMountNamespaceHoldingTheVolumeIsListedOnce) {
  auto private_namespace = [] {
    return ::unshare(CLONE_NEWNS) == 0 &&
           ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  };
  pid_t holder = Child([&] {
    if (!private_namespace()) return false;
    // A second process in the same namespace must not add a second entry.
    pid_t sibling = ::fork();
    if (sibling == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // goes when the test kills its parent
      while (true) ::pause();
    }
    return sibling > 0;
  });
  auto result = Scan();
  const VolumeUsers& users = result[device_];
  EXPECT_THAT(users.other_namespaces, ElementsAre(holder));
  EXPECT_THAT(users.open_files, IsEmpty());
  EXPECT_THAT(users.Describe(),
              HasSubstr("mounted in the mount namespace of pid " + std::to_string(holder)));
}

TEST_F(UsageScannerTest, ABindMountInAContainerAndAFileOpenThere) {
  // Like `docker run -v <vol>:/data`: the container's namespace has the volume at another path
  // and no longer at ours; a process there has a file open through it.
  std::string data = base_ + "/container-data";
  ASSERT_EQ(::mkdir(data.c_str(), 0755), 0);
  std::string file_there = data + "/file";
  pid_t container = Child([&] {
    return ::unshare(CLONE_NEWNS) == 0 &&
           ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
           ::mount(vol_.c_str(), data.c_str(), nullptr, MS_BIND, nullptr) == 0 &&
           ::umount2(vol_.c_str(), MNT_DETACH) == 0 && ::open(file_there.c_str(), O_RDONLY) >= 0;
  });
  auto result = Scan();
  const VolumeUsers& users = result[device_];
  EXPECT_THAT(users.other_namespaces, ElementsAre(container));
  EXPECT_THAT(users.open_files, ElementsAre(container));
  EXPECT_THAT(users.bind_mounts, IsEmpty());
}

TEST_F(UsageScannerTest, AFileOpenThroughADetachedMountInAnotherNamespace) {
  // The namespace no longer lists any mount of the volume: the file descriptor alone holds it.
  std::string path = vol_ + "/file";
  pid_t child = Child([&] {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return false;
    }
    int fd = ::open(path.c_str(), O_RDONLY);
    return fd >= 0 && ::umount2(vol_.c_str(), MNT_DETACH) == 0;
  });
  auto result = Scan();
  EXPECT_THAT(result[device_].open_files, ElementsAre(child));
  EXPECT_THAT(result[device_].other_namespaces, IsEmpty());
}

TEST_F(UsageScannerTest, ACopyThatOurUnmountRemovesHoldsNothing) {
  // Our mount is shared; a namespace made afterwards with slave propagation (what systemd's
  // PrivateTmp= and friends do) gets a copy that goes away when we unmount.
  std::string shared = base_ + "/shared";
  MountTmpfs(shared);
  ASSERT_EQ(::mount(nullptr, shared.c_str(), nullptr, MS_SHARED, nullptr), 0);
  std::string vol = shared + "/vol";
  dev_t device = MountTmpfs(vol);
  WriteFile(vol + "/file", "x");
  auto slave_namespace = [] {
    return ::unshare(CLONE_NEWNS) == 0 &&
           ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) == 0;
  };
  pid_t idle = Child(slave_namespace);
  auto result = UsageScanner().Scan({{device, vol}});
  EXPECT_FALSE(result[device].any()) << result[device].Describe() << " (pid " << idle << ")";

  // A file open in such a copy does hold the volume.
  std::string path = vol + "/file";
  pid_t busy = Child([&] { return slave_namespace() && ::open(path.c_str(), O_RDONLY) >= 0; });
  result = UsageScanner().Scan({{device, vol}});
  EXPECT_THAT(result[device].open_files, ElementsAre(busy));
  EXPECT_THAT(result[device].other_namespaces, IsEmpty());

  // A private copy is held even though it started as the same mount.
  pid_t holder = Child([] {
    return ::unshare(CLONE_NEWNS) == 0 &&
           ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  });
  result = UsageScanner().Scan({{device, vol}});
  EXPECT_THAT(result[device].other_namespaces, ElementsAre(holder));
}

TEST_F(UsageScannerTest, BindMountsInOurNamespace) {
  std::string bind = base_ + "/bind";
  ASSERT_EQ(::mkdir(bind.c_str(), 0755), 0);
  ASSERT_EQ(::mount(vol_.c_str(), bind.c_str(), nullptr, MS_BIND, nullptr), 0);
  mounted_.push_back(bind);
  // A file opened through the bind mount is on the volume too.
  std::string path = bind + "/file";
  pid_t child = Child([&] { return ::open(path.c_str(), O_RDONLY) >= 0; });
  auto result = Scan();
  const VolumeUsers& users = result[device_];
  EXPECT_THAT(users.bind_mounts, ElementsAre(bind));
  EXPECT_THAT(users.open_files, ElementsAre(child));
  EXPECT_THAT(users.Describe(), HasSubstr("bind-mounted at " + bind));
}

TEST_F(UsageScannerTest, OneScanServesEveryVolume) {
  std::string vol2 = base_ + "/vol2", vol3 = base_ + "/vol3";
  dev_t device2 = MountTmpfs(vol2);
  dev_t device3 = MountTmpfs(vol3);
  pid_t on1 = Child([&] { return ::chdir(vol_.c_str()) == 0; });
  pid_t on2 = Child([&] { return ::open(vol2.c_str(), O_RDONLY) >= 0; });
  auto result = UsageScanner().Scan({{device_, vol_}, {device2, vol2}, {device3, vol3}});
  ASSERT_EQ(result.size(), 3u);
  EXPECT_THAT(result[device_].open_files, ElementsAre(on1));
  EXPECT_THAT(result[device2].open_files, ElementsAre(on2));
  EXPECT_FALSE(result[device3].any());
}

// --- A FUSE server that does not answer must not hang the scan ----------------------------------

std::string ClaimfsBinary() {
  if (const char* env = std::getenv("CLAIMFS_BINARY")) return env;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "claimfs";
  self[n] = '\0';
  std::string dir(self);
  return dir.substr(0, dir.rfind('/')) + "/claimfs";
}

TEST_F(UsageScannerTest, AStoppedFuseServerDoesNotHangTheScan) {
  std::string binary = ClaimfsBinary();
  ASSERT_EQ(::access(binary.c_str(), X_OK), 0)
      << "the claimfs binary is missing at " << binary
      << " (build the claimfs target, or set CLAIMFS_BINARY)";
  std::string source = base_ + "/src", mnt = base_ + "/fuse";
  ASSERT_EQ(::mkdir(source.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((source + "/dir").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  WriteFile(source + "/file", std::string(8192, 'x'));
  pid_t server = ::fork();
  if (server == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    // No attribute cache: a stat() of anything on the mount would have to ask the server.
    ::execl(binary.c_str(), "claimfs", source.c_str(), mnt.c_str(), "-o",
            "capacity=64Mi,cache_timeout=0", "-f", nullptr);
    ::_exit(127);
  }
  children_.push_back(server);
  mounted_.push_back(mnt);
  dev_t device = 0;
  for (int i = 0; i < 1000 && device == 0; ++i) {
    auto table = ReadMountInfo();
    if (table.ok()) {
      for (const MountInfo& m : *table) {
        if (m.mount_point == mnt && m.fs_type == "fuse.claimfs") device = m.device;
      }
    }
    if (device == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(device, 0u) << "claimfs did not mount " << mnt;

  std::string dir = mnt + "/dir", file = mnt + "/file";
  pid_t in_cwd = Child([&] { return ::chdir(dir.c_str()) == 0; });
  pid_t with_fd = Child([&] { return ::open(file.c_str(), O_RDONLY) >= 0; });
  pid_t with_map = Child([&] {
    int fd = ::open(file.c_str(), O_RDONLY);
    if (fd < 0) return false;
    void* map = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    return map != MAP_FAILED;
  });
  // Found by device, not mount id: its namespace has no mount of the volume left.
  pid_t detached = Child([&] {
    return ::unshare(CLONE_NEWNS) == 0 &&
           ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
           ::open(file.c_str(), O_RDONLY) >= 0 && ::umount2(mnt.c_str(), MNT_DETACH) == 0;
  });

  ASSERT_EQ(::kill(server, SIGSTOP), 0);  // every request to it now waits forever
  auto scan = std::async(std::launch::async, [&] { return UsageScanner().Scan({{device, mnt}}); });
  bool finished = scan.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  ::kill(server, SIGCONT);
  ASSERT_TRUE(finished) << "the scan asked the stopped FUSE server something";
  auto result = scan.get();
  std::vector<pid_t> expected = {in_cwd, with_fd, with_map, detached};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(result[device].open_files, expected);
}

struct CgroupCase {
  const char* what;
  std::string cgroup;
  std::string container;
};

class ContainerIdTest : public ::testing::TestWithParam<CgroupCase> {};

const std::string kId(64, 'a');
const std::string kOtherId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST_P(ContainerIdTest, FromCgroup) {
  EXPECT_EQ(ContainerIdFromCgroup(GetParam().cgroup), GetParam().container) << GetParam().cgroup;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ContainerIdTest,
    ::testing::Values(
        CgroupCase{"docker, systemd driver", "0::/system.slice/docker-" + kId + ".scope\n", kId},
        CgroupCase{"docker, cgroupfs driver", "0::/docker/" + kOtherId + "\n", kOtherId},
        CgroupCase{"podman", "0::/machine.slice/libpod-" + kId + ".scope/container\n", kId},
        CgroupCase{"cgroup v1 lines", "12:pids:/docker/" + kId + "\n11:cpu:/docker/" + kId + "\n",
                   kId},
        CgroupCase{"a host process", "0::/user.slice/user-0.slice/session-1.scope\n", ""},
        CgroupCase{"the docker daemon itself", "0::/system.slice/docker.service\n", ""},
        CgroupCase{"an id too short", "0::/docker/" + kId.substr(1) + "\n", ""},
        CgroupCase{"an id too long", "0::/docker/" + kId + "a\n", ""},
        CgroupCase{"upper-case hex", "0::/docker/" + std::string(64, 'A') + "\n", ""},
        CgroupCase{"empty", "", ""}),
    [](const auto& info) {
      std::string name = info.param.what;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace claimfs::mount
