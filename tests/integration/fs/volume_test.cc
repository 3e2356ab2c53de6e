// The volume library in-process, as the daemon will host it (issue 2, Semantics: "The quota can
// be changed while mounted: a bigger capacity shows in df at once; a smaller one below usage is
// refused"; and "one FUSE session per volume, many volumes in one process").
#include "claimfs/fs/volume.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using claimfs::fs::Volume;
using claimfs::fs::VolumeOptions;

constexpr uint64_t kMi = 1024 * 1024;

class VolumeLibraryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "tests the volume library itself (native mode)";
    base_ = MakeTempDir("claimfs-it-lib");
    ASSERT_FALSE(base_.empty());
    // An in-process server that hangs cannot be killed separately: detach the mounts and abort,
    // which closes /dev/fuse and fails every blocked call instead of hanging the suite.
    watchdog_ = std::make_unique<Watchdog>(100s, [this] {
      fprintf(stderr, "watchdog: test hung; detaching mounts and aborting\n");
      for (const std::string& m : mount_points_) umount2(m.c_str(), MNT_DETACH);
      abort();
    });
  }

  void TearDown() override {
    for (auto& v : volumes_) v->Stop();
    volumes_.clear();
    pool_.reset();
    watchdog_.reset();
    for (const std::string& m : mount_points_) {
      std::string problem = ForceUnmount(m);
      EXPECT_EQ(problem, "");
    }
    std::string problem = RemoveTree(base_);
    EXPECT_EQ(problem, "");
  }

  // Mounts and starts a volume; returns it (owned by the fixture).
  Volume* Start(const std::string& name, std::optional<uint64_t> capacity,
                std::optional<uint64_t> inodes = std::nullopt,
                fs::ServerPool* pool = nullptr) {
    VolumeOptions o;
    o.source = base_ + "/" + name + "-src";
    o.mountpoint = base_ + "/" + name + "-mnt";
    mkdir(o.source.c_str(), 0755);
    mkdir(o.mountpoint.c_str(), 0755);
    o.capacity_bytes = capacity;
    o.inode_limit = inodes;
    mount_points_.push_back(o.mountpoint);
    auto v = Volume::Mount(o);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (!v.ok()) return nullptr;
    Status s = pool ? (*v)->Start(pool) : (*v)->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    volumes_.push_back(std::move(*v));
    return volumes_.back().get();
  }

  std::string base_;
  std::vector<std::string> mount_points_;
  std::unique_ptr<fs::ServerPool> pool_;  // outlives volumes_: TearDown stops them first
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::unique_ptr<Watchdog> watchdog_;
};

size_t ThreadCount() {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)entry;
    ++n;
  }
  return n;
}

// write() in 256 KiB chunks until `bytes` or an error; bytes written.
uint64_t Fill(const std::string& path, uint64_t bytes, int* err) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    *err = errno;
    return 0;
  }
  std::string chunk(256 * 1024, 'v');
  uint64_t total = 0;
  *err = 0;
  while (total < bytes) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), bytes - total));
    ssize_t rv = write(fd, chunk.data(), n);
    if (rv < 0) {
      *err = errno;
      break;
    }
    total += static_cast<uint64_t>(rv);
  }
  close(fd);
  return total;
}

TEST_F(VolumeLibraryTest, BiggerCapacityShowsInStatfsAtOnce) {
  Volume* v = Start("grow", 8 * kMi);
  ASSERT_NE(v, nullptr);
  const std::string& mnt = v->options().mountpoint;
  EXPECT_EQ(StatFs(mnt).total, 8 * kMi);
  int err = 0;
  uint64_t written = Fill(mnt + "/f", 16 * kMi, &err);
  EXPECT_EQ(err, ENOSPC) << ErrnoName(err);
  EXPECT_LE(written, 8 * kMi);
  uint64_t rejections = v->Usage().quota_rejections;
  EXPECT_GE(rejections, 1u);
  Status s = v->SetCapacity(16 * kMi);
  ASSERT_TRUE(s.ok()) << s.ToString();
  FsUsage u = StatFs(mnt);
  EXPECT_EQ(u.total, 16 * kMi) << "no remount, no delay";
  EXPECT_EQ(u.free, 16 * kMi - u.used());
  EXPECT_EQ(v->Usage().capacity_bytes, std::optional<uint64_t>(16 * kMi));
  // The new space is usable at once.
  uint64_t more = Fill(mnt + "/f", 4 * kMi, &err);
  EXPECT_EQ(more, 4 * kMi) << ErrnoName(err);
}

TEST_F(VolumeLibraryTest, SmallerCapacityBelowUsageIsRefused) {
  Volume* v = Start("shrink", 16 * kMi);
  ASSERT_NE(v, nullptr);
  const std::string& mnt = v->options().mountpoint;
  int err = 0;
  ASSERT_EQ(Fill(mnt + "/f", 6 * kMi, &err), 6 * kMi) << ErrnoName(err);
  uint64_t used = StatFs(mnt).used();
  Status s = v->SetCapacity(4 * kMi);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kForbidden) << s.ToString();
  EXPECT_EQ(StatFs(mnt).total, 16 * kMi) << "a refused change changes nothing";
  EXPECT_EQ(v->Usage().capacity_bytes, std::optional<uint64_t>(16 * kMi));
  // Shrinking to exactly above the usage is fine and enforced at once.
  uint64_t target = (used + 1 * kMi + 4095) / 4096 * 4096;
  s = v->SetCapacity(target);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(StatFs(mnt).total, target);
  uint64_t more = Fill(mnt + "/f", 4 * kMi, &err);
  EXPECT_EQ(err, ENOSPC) << ErrnoName(err);
  EXPECT_LE(more, 1 * kMi);
  EXPECT_LE(StatFs(mnt).used(), target);
}

TEST_F(VolumeLibraryTest, UsageMatchesStatfs) {
  Volume* v = Start("usage", 32 * kMi, 100);
  ASSERT_NE(v, nullptr);
  const std::string& mnt = v->options().mountpoint;
  int err = 0;
  Fill(mnt + "/a", 3 * kMi + 5, &err);
  mkdir((mnt + "/d").c_str(), 0755);
  fs::VolumeUsage usage = v->Usage();
  FsUsage u = StatFs(mnt);
  EXPECT_EQ(usage.used_bytes, u.used());
  EXPECT_EQ(usage.used_inodes, u.files - u.ffree);
  EXPECT_EQ(usage.inode_limit, std::optional<uint64_t>(100));
  std::optional<uint64_t> du = DuBytes(mnt);
  ASSERT_TRUE(du);
  EXPECT_EQ(usage.used_bytes, *du);
}

TEST_F(VolumeLibraryTest, InodeLimitChangesLive) {
  Volume* v = Start("inodes", 32 * kMi, 10);
  ASSERT_NE(v, nullptr);
  const std::string& mnt = v->options().mountpoint;
  EXPECT_EQ(StatFs(mnt).files, 10u);
  ASSERT_TRUE(v->SetInodeLimit(20).ok());
  EXPECT_EQ(StatFs(mnt).files, 20u);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(WriteFile(mnt + "/f" + std::to_string(i), "x"));
  Status s = v->SetInodeLimit(3);
  EXPECT_FALSE(s.ok()) << "an inode limit below the inodes in use";
}

TEST_F(VolumeLibraryTest, ManyVolumesInOneProcess) {
  constexpr int kVolumes = 8;
  std::vector<Volume*> vols;
  for (int i = 0; i < kVolumes; ++i) {
    Volume* v = Start("v" + std::to_string(i), static_cast<uint64_t>(i + 1) * kMi);
    ASSERT_NE(v, nullptr) << "volume " << i;
    vols.push_back(v);
  }
  for (int i = 0; i < kVolumes; ++i) {
    const std::string& mnt = vols[i]->options().mountpoint;
    EXPECT_EQ(StatFs(mnt).total, static_cast<uint64_t>(i + 1) * kMi) << "volume " << i;
    std::optional<MountEntry> m = FindMount(mnt);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->fs_type, "fuse.claimfs");
  }
  // Filling one volume touches no other.
  int err = 0;
  uint64_t written = Fill(vols[3]->options().mountpoint + "/f", 64 * kMi, &err);
  EXPECT_EQ(err, ENOSPC);
  EXPECT_LE(written, 4 * kMi);
  for (int i = 0; i < kVolumes; ++i) {
    if (i == 3) continue;
    EXPECT_LE(vols[i]->Usage().used_bytes, 8192u) << "volume " << i;
    ASSERT_TRUE(WriteFile(vols[i]->options().mountpoint + "/own", "volume " + std::to_string(i)));
  }
  for (int i = 0; i < kVolumes; ++i) {
    if (i == 3) continue;
    EXPECT_EQ(ReadFile(vols[i]->options().source + "/own"), "volume " + std::to_string(i));
  }
  // Stopping one leaves the others serving.
  vols[0]->Stop();
  EXPECT_FALSE(FindMount(vols[0]->options().mountpoint).has_value());
  EXPECT_EQ(ReadFile(vols[1]->options().mountpoint + "/own"), "volume 1");
}

TEST_F(VolumeLibraryTest, StopUnmountsAndIsIdempotent) {
  Volume* v = Start("stop", 8 * kMi);
  ASSERT_NE(v, nullptr);
  std::string mnt = v->options().mountpoint;
  ASSERT_TRUE(FindMount(mnt).has_value());
  v->Stop();
  EXPECT_FALSE(FindMount(mnt).has_value());
  v->Stop();
  EXPECT_FALSE(FindMount(mnt).has_value());
}

TEST_F(VolumeLibraryTest, UnmountFromOutsideEndsServing) {
  Volume* v = Start("outside", 8 * kMi);
  ASSERT_NE(v, nullptr);
  std::string mnt = v->options().mountpoint;
  RunResult r = it::Run({"fusermount3", "-u", mnt}, {.timeout = 10s});
  EXPECT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_FALSE(FindMount(mnt).has_value());
  v->Stop();  // still safe afterwards
}

// The daemon serves every volume with one pool: volumes added to it add no threads, and each
// keeps its own quota while requests of all of them share the pool's threads.
TEST_F(VolumeLibraryTest, PoolServesManyVolumesWithItsOwnThreads) {
  auto pool = fs::ServerPool::Create(2);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  pool_ = std::move(*pool);
  size_t threads_before = ThreadCount();
  constexpr int kVolumes = 8;
  std::vector<Volume*> vols;
  for (int i = 0; i < kVolumes; ++i) {
    Volume* v = Start("p" + std::to_string(i), 4 * kMi, std::nullopt, pool_.get());
    ASSERT_NE(v, nullptr) << "volume " << i;
    vols.push_back(v);
  }
  EXPECT_EQ(ThreadCount(), threads_before);
  std::vector<std::thread> writers;
  std::vector<int> errors(kVolumes, 0);
  std::vector<uint64_t> written(kVolumes, 0);
  for (int i = 0; i < kVolumes; ++i) {
    writers.emplace_back([&, i] {
      written[i] = Fill(vols[i]->options().mountpoint + "/fill", 16 * kMi, &errors[i]);
    });
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(ThreadCount(), threads_before);
  for (int i = 0; i < kVolumes; ++i) {
    EXPECT_EQ(errors[i], ENOSPC) << "volume " << i;
    EXPECT_GT(written[i], 3 * kMi) << "volume " << i;
    EXPECT_LE(written[i], 4 * kMi) << "volume " << i;
    EXPECT_EQ(StatFs(vols[i]->options().mountpoint).total, 4 * kMi);
  }
  bool saw_write = false;
  for (const fs::OperationStats& op : pool_->Stats()) {
    if (op.operation != "write") continue;
    saw_write = true;
    EXPECT_GE(op.count, static_cast<uint64_t>(kVolumes) * 12);
    EXPECT_EQ(op.bucket_counts.size(), fs::LatencyBucketBounds().size());
    EXPECT_GT(op.total_seconds, 0);
  }
  EXPECT_TRUE(saw_write);
  // Stopping one pooled volume leaves the others served.
  vols[0]->Stop();
  EXPECT_FALSE(FindMount(vols[0]->options().mountpoint).has_value());
  ASSERT_EQ(unlink((vols[1]->options().mountpoint + "/fill").c_str()), 0) << strerror(errno);
  ASSERT_TRUE(WriteFile(vols[1]->options().mountpoint + "/after", "still here"));
  EXPECT_EQ(ReadFile(vols[1]->options().source + "/after"), "still here");
}

// What each open fd of this process refers to, sorted; the failure message shows a leak's target.
std::vector<std::string> OpenFds() {
  std::vector<std::string> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::filesystem::path target = std::filesystem::read_symlink(entry.path(), ec);
    fds.push_back(entry.path().filename().string() + " -> " + (ec ? "?" : target.string()));
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}

// Regression: with splice replies, libfuse kept a pipe per pool thread and session that only
// the thread's exit frees; pool threads outlive volumes, so each unmount leaked fds.
TEST_F(VolumeLibraryTest, PooledVolumesLeaveNoFdsBehindWhenStopped) {
  auto pool = fs::ServerPool::Create(4);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  pool_ = std::move(*pool);
  std::vector<std::string> fds_before = OpenFds();
  for (int round = 0; round < 3; ++round) {
    std::vector<Volume*> vols;
    for (int i = 0; i < 4; ++i) {
      Volume* v = Start("fd" + std::to_string(round) + "-" + std::to_string(i), 16 * kMi,
                        std::nullopt, pool_.get());
      ASSERT_NE(v, nullptr);
      vols.push_back(v);
    }
    std::vector<std::thread> readers;
    for (Volume* v : vols) {
      readers.emplace_back([v] {
        int err = 0;
        std::string file = v->options().mountpoint + "/data";
        EXPECT_EQ(Fill(file, 4 * kMi, &err), 4 * kMi);
        EXPECT_EQ(ReadFile(file).size(), 4 * kMi);
      });
    }
    for (std::thread& t : readers) t.join();
    for (Volume* v : vols) v->Stop();
    volumes_.clear();  // a stopped volume still holds its inode table's fds until destroyed
  }
  EXPECT_THAT(OpenFds(), ::testing::ElementsAreArray(fds_before));
}

TEST_F(VolumeLibraryTest, PooledVolumeUnmountedFromOutsideStopsServing) {
  auto pool = fs::ServerPool::Create(2);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  pool_ = std::move(*pool);
  Volume* v = Start("pout", 8 * kMi, std::nullopt, pool_.get());
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->serving());
  std::string mnt = v->options().mountpoint;
  RunResult r = it::Run({"fusermount3", "-u", mnt}, {.timeout = 10s});
  EXPECT_TRUE(r.Succeeded()) << r.Describe();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (v->serving() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_FALSE(v->serving());
  v->Stop();
  EXPECT_FALSE(v->serving());
}

// Removes the nested directories named "a" below `root` (and whatever files they hold)
// without recursion: the tree is deeper than PATH_MAX and than the fd limit.
void RemoveNested(const std::string& root) {
  int top = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0) return;
  while (true) {
    int a = openat(top, "a", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (a < 0) break;
    DIR* dir = fdopendir(dup(a));
    while (struct dirent* e = readdir(dir)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && name != "a") unlinkat(a, name.c_str(), 0);
    }
    closedir(dir);
    bool deeper = renameat(a, "a", top, "b") == 0;
    close(a);
    if (unlinkat(top, "a", AT_REMOVEDIR) != 0) break;
    if (deeper && renameat(top, "b", top, "a") != 0) break;
  }
  close(top);
}

// Issue 9, attack report K1: the mount-time usage scan recursed once per directory level with
// two fds each, so a claim owner's 12,000 nested directories made her claim fail to mount
// (EMFILE) and a deeper tree overflowed claimfsd's stack at every start.
TEST_F(VolumeLibraryTest, DeeplyNestedTreeMountsWithFewFdsAndASmallStack) {
  constexpr int kLevels = 20000;
  VolumeOptions o;
  // On tmpfs when there is one: 20,000 rmdirs at teardown take 90 s on a busy disk.
  char shm_template[] = "/dev/shm/claimfs-it-deep-XXXXXX";
  std::string shm_dir = mkdtemp(shm_template) ? shm_template : "";
  o.source = shm_dir.empty() ? base_ + "/deep-src" : shm_dir + "/src";
  o.mountpoint = base_ + "/deep-mnt";
  ASSERT_EQ(mkdir(o.source.c_str(), 0755), 0);
  struct Cleanup {
    std::string source, shm_dir;
    ~Cleanup() {
      RemoveNested(source);
      unlink((source + "/top").c_str());
      if (!shm_dir.empty()) {
        rmdir(source.c_str());
        rmdir(shm_dir.c_str());
      }
    }
  } cleanup{o.source, shm_dir};
  ASSERT_EQ(mkdir(o.mountpoint.c_str(), 0755), 0);
  o.capacity_bytes = 1024 * kMi;
  mount_points_.push_back(o.mountpoint);

  // What `du` would count: every directory, a file at the top and a hard link to it deep down
  // (counted once), a file at the bottom.
  uint64_t bytes = 0;
  uint64_t inodes = 0;
  auto count = [&](int fd) {
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    ++inodes;
  };
  int fd = open(o.source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteFile(o.source + "/top", std::string(10000, 't')));
  int top_file = open((o.source + "/top").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(top_file, 0);
  for (int level = 0; level < kLevels; ++level) {
    count(fd);
    ASSERT_EQ(mkdirat(fd, "a", 0755), 0) << "level " << level << ": " << strerror(errno);
    int child = openat(fd, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(child, 0);
    close(fd);
    fd = child;
    if (level == kLevels / 2) {
      ASSERT_EQ(linkat(AT_FDCWD, (o.source + "/top").c_str(), fd, "link", 0), 0) << strerror(errno);
    }
  }
  count(fd);
  int bottom = openat(fd, "bottom", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(bottom, 0);
  ASSERT_EQ(write(bottom, "bottom", 6), 6);
  count(bottom);
  close(bottom);
  close(fd);
  count(top_file);
  close(top_file);

  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old_limit), 0);
  struct rlimit low = old_limit;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  struct MountCall {
    VolumeOptions* options;
    Result<std::unique_ptr<Volume>> result = Status::Invalid("not run");
  } call{&o};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  int rc = pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        auto* c = static_cast<MountCall*>(arg);
        c->result = Volume::Mount(*c->options);
        return nullptr;
      },
      &call);
  pthread_attr_destroy(&attr);
  if (rc == 0) pthread_join(thread, nullptr);
  setrlimit(RLIMIT_NOFILE, &old_limit);
  ASSERT_EQ(rc, 0);

  ASSERT_TRUE(call.result.ok()) << call.result.status().ToString().substr(0, 300);
  Status s = (*call.result)->Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  volumes_.push_back(std::move(*call.result));
  fs::VolumeUsage usage = volumes_.back()->Usage();
  EXPECT_EQ(usage.used_bytes, bytes);
  EXPECT_EQ(usage.used_inodes, inodes);
  volumes_.back()->Stop();
}

TEST_F(VolumeLibraryTest, ParseMountOptions) {
  VolumeOptions o;
  Status s = fs::ParseMountOptions("capacity=1.5Gi,inodes=1000,ro,quota_errno=EDQUOT,noatime", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.capacity_bytes, std::optional<uint64_t>(1536 * kMi));
  EXPECT_EQ(o.inode_limit, std::optional<uint64_t>(1000));
  EXPECT_TRUE(o.read_only);
  EXPECT_EQ(o.quota_errno, EDQUOT);
  VolumeOptions bad;
  s = fs::ParseMountOptions("capacity=64Mi,bogus", &bad);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bogus"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace claimfs::it
