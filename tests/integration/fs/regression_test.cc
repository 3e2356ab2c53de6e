// Regression tests, each named after what broke. Most bite hardest under the sanitizer build.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

class RegressionTest : public VolumeTest {};

// Handlers replied while still holding a reference to the inode's cached fd. Once answered,
// the kernel may forget the inode and another worker frees it, so dropping the reference after
// the reply touched freed memory (ASan: heap-use-after-free in FdRef::Reset from Getxattr).
// Threads that query and remove the same few short-lived files make a forget (after another
// thread's unlink) race the reply to a query.
TEST_F(RegressionTest, ReplyingWhileHoldingAnInodeReferenceRacedForget) {
  ASSERT_NO_FATAL_FAILURE(MountVolume("capacity=64Mi"));
  std::atomic<bool> stop{false};
  std::atomic<long> rounds{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      char value[16];
      struct stat st;
      for (long i = 0; !stop; ++i) {
        std::string name = P("f" + std::to_string((i + t) % 4));
        int fd = open(name.c_str(), O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
        getxattr(name.c_str(), "user.missing", value, sizeof value);
        listxattr(name.c_str(), value, sizeof value);
        stat(name.c_str(), &st);
        char target[64];
        readlink(name.c_str(), target, sizeof target);
        chmod(name.c_str(), 0600);
        unlink(name.c_str());
        ++rounds;
      }
    });
  }
  std::this_thread::sleep_for(3s);
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(rounds, 100) << "the race barely ran";
  struct stat st;
  EXPECT_EQ(stat(root().c_str(), &st), 0) << "the volume's server died: " << strerror(errno);
}

}  // namespace
}  // namespace claimfs::it
