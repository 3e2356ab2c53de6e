// Scale (issue 2, Semantics: "a volume of 200,000 files can be created, walked (find, du), and
// removed with the process's RLIMIT_NOFILE at 20000"). The slow test of the suite: labelled
// `slow` in ctest.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

constexpr int kDirs = 200;
constexpr int kFilesPerDir = 1000;
constexpr int kFiles = kDirs * kFilesPerDir;
constexpr rlim_t kNofile = 20000;

class ScaleTest : public VolumeTest {};

size_t CountFds(pid_t pid) {
  size_t n = 0;
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

TEST_F(ScaleTest, TwoHundredThousandFilesCreatedWalkedAndRemovedWithNofile20000) {
  SetWatchdog(std::chrono::seconds(1100));
  ServerOptions server_options;
  server_options.nofile = kNofile;
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=8Gi", server_options));
  uint64_t used_empty = StatFs(root()).used();
  size_t max_fds = 0;
  auto sample_fds = [&] {
    if (server() != nullptr) max_fds = std::max(max_fds, CountFds(server()->pid()));
  };
  auto start = std::chrono::steady_clock::now();
  auto seconds = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  ASSERT_EQ(mkdir(P("tree").c_str(), 0755), 0) << strerror(errno);
  char path[64];
  for (int d = 0; d < kDirs; ++d) {
    snprintf(path, sizeof(path), "/tree/d%03d", d);
    ASSERT_EQ(mkdir((root() + path).c_str(), 0755), 0) << path << ": " << strerror(errno);
    for (int f = 0; f < kFilesPerDir; ++f) {
      snprintf(path, sizeof(path), "/tree/d%03d/file-%04d", d, f);
      int fd = open((root() + path).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0) << path << ": " << strerror(errno) << " (claimfs holds "
                       << (server() ? CountFds(server()->pid()) : 0) << " open fds)";
      if (f % 10 == 0) {
        ASSERT_EQ(write(fd, path, 8), 8) << path << ": " << strerror(errno);
      }
      ASSERT_EQ(close(fd), 0) << path;
    }
    if (d % 20 == 0) sample_fds();
  }
  double t_create = seconds();
  sample_fds();

  RunResult find_all = RunShell("find '" + P("tree") + "' | wc -l", {.timeout = 600s});
  ASSERT_TRUE(find_all.Succeeded()) << find_all.Describe();
  EXPECT_EQ(std::stoll(find_all.output), kFiles + kDirs + 1) << "find saw a different tree";
  RunResult find_files =
      RunShell("find '" + P("tree") + "' -type f -size -1c | wc -l", {.timeout = 600s});
  ASSERT_TRUE(find_files.Succeeded()) << find_files.Describe();
  EXPECT_EQ(std::stoll(find_files.output), kFiles - kFiles / 10) << "find -type f -size -1c";
  double t_find = seconds();
  sample_fds();

  std::optional<uint64_t> du_mount = DuBytes(P("tree"));
  ASSERT_TRUE(du_mount);
  if (mounted()) {
    std::optional<uint64_t> du_source = DuBytes(source() + "/tree");
    ASSERT_TRUE(du_source);
    EXPECT_EQ(*du_mount, *du_source) << "du through the mount vs on the backing directory";
    EXPECT_EQ(StatFs(root()).used(), used_empty + *du_source) << "statfs used vs du";
  }
  double t_du = seconds();
  sample_fds();

  RunResult rm = RunShell("rm -rf '" + P("tree") + "'", {.timeout = 600s});
  EXPECT_TRUE(rm.Succeeded()) << rm.Describe();
  double t_rm = seconds();
  sample_fds();
  struct stat st {};
  EXPECT_NE(lstat(P("tree").c_str(), &st), 0) << "tree still there after rm -rf";
  if (mounted()) {
    EXPECT_TRUE(server()->Running()) << "claimfs died: " << server()->Log();
    EXPECT_EQ(StatFs(root()).used(), used_empty) << "space after removing everything";
    EXPECT_LT(max_fds, static_cast<size_t>(kNofile));
    std::string log = server()->Log();
    EXPECT_EQ(log.find("Too many open files"), std::string::npos) << log.substr(0, 4000);
  }
  printf("200k files: create %.1f s, find %.1f s, du %.1f s, rm %.1f s; max server fds %zu\n",
         t_create, t_find - t_create, t_du - t_find, t_rm - t_du, max_fds);
  RecordProperty("max_server_fds", static_cast<int>(max_fds));
}

}  // namespace
}  // namespace claimfs::it
