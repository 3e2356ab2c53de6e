// 2,000 claims on one claimfsd (issue 10, docs/dataplane.md 8): libfuse 3.14's pthread key per
// session capped a single process near 1,000 volumes.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

constexpr int kClaims = 2000;
// Threads of every claimfsd process together (main, serving processes, holder) with kClaims
// volumes and workerThreads 16 (docs/dataplane.md 8): the FUSE threads share 16 (at least 4 a
// server: 58 in all) and each process adds a few of its own. 71a28d3 gave each of the 5
// servers 16 (106 in all).
constexpr int kMaxTotalThreads = 64;
// How long an emptied serving process is kept here (CLAIMFS_SERVER_IDLE_SECONDS); 60 s by default.
constexpr char kServerIdleSeconds[] = "2";

class Scale : public DaemonTest {};

// Threads: of /proc/<pid>/status; 0 when the process is gone.
int ThreadsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return 0;
}

std::string ClaimName(int i) { return "c" + std::to_string(i); }

size_t BoundClaims(const nlohmann::json& list) {
  size_t bound = 0;
  if (!list.is_object() || !list.contains("items")) return 0;
  for (const nlohmann::json& c : list["items"]) bound += JsonString(c, "/status/phase") == "Bound";
  return bound;
}

TEST_F(Scale, TwoThousandClaimsBoundMountedReachableThenAllDeleted) {
  rlimit limit{20000, 20000};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0) << strerror(errno);
  ASSERT_EQ(setenv("CLAIMFS_SERVER_IDLE_SECONDS", kServerIdleSeconds, 1), 0);
  ASSERT_TRUE(StartDaemon());
  // The loop and API threads start before READY; give any late one a moment.
  std::this_thread::sleep_for(1s);
  const int main_idle = ThreadsOf(daemon_pid());
  ASSERT_GT(main_idle, 0);
  auto total_threads = [&](std::string* detail) {
    int total = ThreadsOf(daemon_pid());
    *detail = "main " + std::to_string(total);
    for (const auto& [pid, title] : ServerProcesses()) {
      total += ThreadsOf(pid);
      *detail += ", server " + std::to_string(pid) + " " + std::to_string(ThreadsOf(pid));
    }
    for (const auto& [pid, title] : HolderProcesses()) {
      total += ThreadsOf(pid);
      *detail += ", holder " + std::to_string(ThreadsOf(pid));
    }
    return total;
  };
  std::string detail;
  std::cerr << "idle: " << total_threads(&detail) << " threads (" << detail << ")\n";
  std::string manifest;
  for (int i = 0; i < kClaims; ++i) {
    manifest +=
        "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: " + ClaimName(i) +
        "\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n"
        "      storage: 1Mi\n";
  }
  const std::string path = WriteManifest("claims.yaml", manifest);
  auto start = std::chrono::steady_clock::now();
  CommandResult r = Claimctl({"apply", "-f", path}, {.timeout = 300s});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();

  const std::string claims_dir = data_dir() + "/claims";
  size_t bound = 0, mounted = 0;
  bool all = WaitFor(
      [&] {
        mounted = VolumeMountsUnder(claims_dir).size();
        if (mounted < kClaims) return false;
        bound =
            BoundClaims(Http("GET", "/api/v1/namespaces/default/persistentvolumeclaims").Json());
        return bound == kClaims;
      },
      600s, 500ms);
  ASSERT_TRUE(all) << bound << " Bound, " << mounted << " mounted\n"
                   << DescribeEvents("PersistentVolumeClaim", ClaimName(kClaims - 1));
  std::cerr << "2000 claims Bound and mounted in "
            << std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                start)
                   .count()
            << " s by " << ServerProcesses().size() << " serving processes\n";
  EXPECT_GE(ServerProcesses().size(), 5u);
  int total = total_threads(&detail);
  std::cerr << kClaims << " volumes: " << total << " threads (" << detail << ")\n";
  EXPECT_LE(total, kMaxTotalThreads) << detail;
  EXPECT_LE(ThreadsOf(daemon_pid()), main_idle + 2)
      << "main's own threads grew with the volumes (" << main_idle << " idle)";

  for (int i = 0; i < kClaims; ++i) {
    std::string file = MountPath(ClaimName(i)) + "/byte";
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << file << ": " << strerror(errno);
    EXPECT_EQ(write(fd, "x", 1), 1) << file << ": " << strerror(errno);
    close(fd);
    struct stat st;
    ASSERT_EQ(stat(file.c_str(), &st), 0) << file << ": " << strerror(errno);
    ASSERT_EQ(st.st_size, 1) << file;
  }

  r = Claimctl({"delete", "pvc", "--all"}, {.timeout = 300s});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  bool gone = WaitFor(
      [&] {
        mounted = VolumeMountsUnder(claims_dir).size();
        return mounted == 0 && ServerProcesses().empty();
      },
      600s, 500ms);
  EXPECT_TRUE(gone) << mounted << " mounts and " << ServerProcesses().size()
                    << " serving processes left";
  int main_now = 0;
  EXPECT_TRUE(WaitFor([&] { return (main_now = ThreadsOf(daemon_pid())) <= main_idle; }, 10s))
      << "main has " << main_now << " threads after every claim went, " << main_idle << " idle";
  std::cerr << "after the delete: " << total_threads(&detail) << " threads (" << detail << ")\n";
  std::error_code ec;
  size_t dirs = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(claims_dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) ++dirs;
  }
  EXPECT_EQ(dirs, 0u) << "directories left under " << claims_dir;
}

}  // namespace
}  // namespace claimfs::it
