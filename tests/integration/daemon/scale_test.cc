// 2,000 claims on one claimfsd (issue 10, docs/dataplane.md 8): libfuse 3.14's pthread key per
// session capped a single process near 1,000 volumes.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

constexpr int kClaims = 2000;

class Scale : public DaemonTest {};

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
  ASSERT_TRUE(StartDaemon());
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
