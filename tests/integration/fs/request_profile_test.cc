// Round trips a volume saves (issue 11, "fewer round trips for metadata"), read from the server
// pool's own per-operation counters, and the semantics each saving must keep: listings that see
// every change, directory offsets that stay valid across requests, set-id bits cleared by the
// server now that the kernel leaves that to it (FUSE_HANDLE_KILLPRIV_V2).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/fs/server_pool.h"
#include "claimfs/fs/volume.h"
#include "fs/mount_fixture.h"
#include "fs/process_util.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using claimfs::fs::ServerPool;
using claimfs::fs::Volume;
using claimfs::fs::VolumeOptions;

constexpr uid_t kOtherUser = 4242;
constexpr gid_t kOtherGroup = 4242;

// One accounted volume served by a pool of its own, so the pool's counters are the volume's.
class RequestProfile : public ::testing::Test {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "counts the requests a claimfs volume receives";
    base_ = MakeTempDir("claimfs-it-profile");
    ASSERT_FALSE(base_.empty());
    watchdog_ = std::make_unique<Watchdog>(100s, [this] {
      fprintf(stderr, "watchdog: test hung; detaching the mount and aborting\n");
      umount2(mnt_.c_str(), MNT_DETACH);
      abort();
    });
    auto pool = ServerPool::Create(4);
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    pool_ = std::move(*pool);
    VolumeOptions o;
    o.source = base_ + "/src";
    o.mountpoint = mnt_ = base_ + "/mnt";
    native_ = base_ + "/native";
    for (const std::string& d : {o.source, o.mountpoint, native_}) {
      ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d;
    }
    ASSERT_EQ(chmod(o.source.c_str(), 0777), 0);
    ASSERT_EQ(chmod(native_.c_str(), 0777), 0);
    o.capacity_bytes = uint64_t{1} << 30;
    o.allow_other = true;  // the set-id tests write as another user
    auto v = Volume::Mount(o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    volume_ = std::move(*v);
    Status s = volume_->Start(pool_.get());
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void TearDown() override {
    if (volume_) volume_->Stop();
    volume_.reset();
    pool_.reset();
    watchdog_.reset();
    if (!mnt_.empty()) {
      EXPECT_EQ(ForceUnmount(mnt_), "");
    }
    if (!base_.empty()) {
      EXPECT_EQ(RemoveTree(base_), "");
    }
  }

  uint64_t Count(const std::string& operation) const {
    pool_->WaitUntilNoRequestInProgress();
    for (const fs::OperationStats& s : pool_->Stats()) {
      if (s.operation == operation) return s.count;
    }
    return 0;
  }

  std::string M(const std::string& rel) const { return mnt_ + "/" + rel; }

  std::string base_, mnt_, native_;
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<ServerPool> pool_;
  std::unique_ptr<Volume> volume_;
};

// Every name of a directory, in the order readdir gives them, "." and ".." left out.
std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    ADD_FAILURE() << "opendir " << dir << ": " << ErrnoName(errno);
    return names;
  }
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  EXPECT_EQ(errno, 0) << "readdir " << dir << ": " << ErrnoName(errno);
  closedir(d);
  return names;
}

std::set<std::string> ListSet(const std::string& dir) {
  std::vector<std::string> names = List(dir);
  return {names.begin(), names.end()};
}

bool Touch(const std::string& path) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  close(fd);
  return true;
}

void DropCaches() {
  sync();
  if (FILE* f = fopen("/proc/sys/vm/drop_caches", "w")) {
    fputs("3\n", f);
    fclose(f);
  }
}

TEST_F(RequestProfile, FindSendsNoOpendir) {
  // 40 directories, 3 levels deep, with a file each.
  int expected = 1;  // the root
  for (int i = 0; i < 4; ++i) {
    std::string a = "d" + std::to_string(i);
    ASSERT_EQ(mkdir(M(a).c_str(), 0755), 0);
    ASSERT_TRUE(Touch(M(a + "/f")));
    expected += 2;
    for (int j = 0; j < 9; ++j) {
      std::string b = a + "/e" + std::to_string(j);
      ASSERT_EQ(mkdir(M(b).c_str(), 0755), 0);
      ASSERT_TRUE(Touch(M(b + "/f")));
      expected += 2;
    }
  }
  uint64_t opendir_before = Count("opendir");
  uint64_t releasedir_before = Count("releasedir");
  for (int round = 0; round < 3; ++round) {
    RunResult r = claimfs::it::Run({"find", mnt_});
    ASSERT_TRUE(r.Succeeded()) << r.Describe();
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), expected) << r.output;
    if (round == 1) DropCaches();  // the third find lists from the server again
  }
  // The first OPENDIR of the connection is answered ENOSYS; the kernel sends none after it.
  EXPECT_LE(Count("opendir") - opendir_before, 1u);
  EXPECT_EQ(Count("releasedir") - releasedir_before, 0u);
  EXPECT_GT(Count("readdirplus") + Count("readdir"), 0u);
}

// tar chmods every directory it extracts, and the kernel then stops trusting that directory's
// dentry (fuse_setattr). A listing whose later chunks came as plain READDIR left those
// subdirectories so, and find then sent a LOOKUP for each one it went into (0.7 per directory
// on /usr/include/linux), du one for each file (11.8 per directory). Every chunk is READDIRPLUS
// now, which renews the dentries it names.
TEST_F(RequestProfile, ListingAfterTarLikeChmodsNeedsNoLookups) {
  ASSERT_EQ(mkdir(M("big").c_str(), 0755), 0);
  // Long names: the listing takes several requests of 32 KiB.
  const std::string pad(120, 'n');
  for (int i = 0; i < 600; ++i) {
    std::string name = "big/" + std::to_string(i) + pad;
    if (i % 10 == 0) {
      ASSERT_EQ(mkdir(M(name).c_str(), 0700), 0);
      ASSERT_TRUE(Touch(M(name + "/f")));
      ASSERT_EQ(chmod(M(name).c_str(), 0755), 0);
    } else {
      ASSERT_TRUE(Touch(M(name)));
    }
  }
  RunResult listed = claimfs::it::Run({"ls", "-f", M("big")});  // the listing, from the server
  ASSERT_TRUE(listed.Succeeded()) << listed.Describe();
  uint64_t lookups_before = Count("lookup");
  RunResult found = claimfs::it::Run({"find", M("big")});
  ASSERT_TRUE(found.Succeeded()) << found.Describe();
  EXPECT_EQ(std::count(found.output.begin(), found.output.end(), '\n'), 1 + 600 + 60);
  RunResult du = claimfs::it::Run({"du", "-s", M("big")});
  ASSERT_TRUE(du.Succeeded()) << du.Describe();
  // Plain READDIR chunks cost 50 here. The dcache is still a cache: memory reclaim may prune an
  // unused dentry between the listing and the walk (CI fills the page cache with two builds),
  // and each one pruned costs a LOOKUP that no listing could have saved.
  EXPECT_LE(Count("lookup") - lookups_before, 2u);
}

TEST_F(RequestProfile, RandomWriteSendsNoGetxattr) {
  std::string path = M("rand");
  int fd = open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);  // cached, as fio opens
  ASSERT_GE(fd, 0) << ErrnoName(errno);
  std::string block(4096, 'r');
  for (int i = 0; i < 256; ++i) {
    ASSERT_EQ(pwrite(fd, block.data(), block.size(), static_cast<off_t>(i) * 4096), 4096);
  }
  uint64_t getxattr_before = Count("getxattr");
  uint64_t write_before = Count("write");
  std::mt19937 random(11);
  for (int i = 0; i < 200; ++i) {
    off_t off = static_cast<off_t>(random() % 256) * 4096;
    ASSERT_EQ(pwrite(fd, block.data(), block.size(), off), 4096) << ErrnoName(errno);
  }
  close(fd);
  EXPECT_GE(Count("write") - write_before, 200u);
  // Without FUSE_HANDLE_KILLPRIV_V2 the kernel asks for security.capability before each write.
  EXPECT_LE(Count("getxattr") - getxattr_before, 2u);
}

// The kernel's rule (should_remove_suid): a write or truncate by a caller without CAP_FSETID
// clears set-uid, and set-gid where group-execute is set. Checked against the native disk.
TEST_F(RequestProfile, SetIdBitsClearedOnWriteByNonOwner) {
  struct Case {
    const char* name;
    mode_t mode;
    gid_t group;  // of the writer; the files are root's, group 0
    bool as_root;
    int (*act)(const std::string& path);
  };
  auto write_one = +[](const std::string& path) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = write(fd, "x", 1) == 1 ? 0 : errno;
    close(fd);
    return err;
  };
  auto write_rdwr = +[](const std::string& path) {
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = pwrite(fd, "x", 1, 100) == 1 ? 0 : errno;
    close(fd);
    return err;
  };
  auto ftruncate_one = +[](const std::string& path) {
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = ftruncate(fd, 10) == 0 ? 0 : errno;
    close(fd);
    return err;
  };
  auto truncate_one =
      +[](const std::string& path) { return truncate(path.c_str(), 20) == 0 ? 0 : errno; };
  auto open_trunc = +[](const std::string& path) {
    int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return errno;
    close(fd);
    return 0;
  };
  auto copy_range = +[](const std::string& path) {
    int in = open((path + "-from").c_str(), O_RDONLY | O_CLOEXEC);
    int out = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    int err = in < 0 || out < 0 ? errno : 0;
    if (err == 0 && copy_file_range(in, nullptr, out, nullptr, 10, 0) != 10) err = errno;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return err;
  };
  auto fallocate_one = +[](const std::string& path) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = fallocate(fd, 0, 0, 8192) == 0 ? 0 : errno;
    close(fd);
    return err;
  };
  auto chown_one = +[](const std::string& path) {
    return chown(path.c_str(), kOtherUser, static_cast<gid_t>(-1)) == 0 ? 0 : errno;
  };
  const Case cases[] = {
      {"write_only", 06777, kOtherGroup, false, write_one},
      {"read_write", 06777, kOtherGroup, false, write_rdwr},
      {"ftruncate", 06777, kOtherGroup, false, ftruncate_one},
      {"truncate", 06777, kOtherGroup, false, truncate_one},
      {"open_trunc", 06777, kOtherGroup, false, open_trunc},
      {"setgid_no_group_exec", 02666, kOtherGroup, false, write_rdwr},
      {"setgid_no_group_exec_in_group", 02666, 0, false, write_rdwr},
      {"setuid_only", 04766, 0, false, write_rdwr},
      {"root_keeps_bits", 06777, 0, true, write_rdwr},
      {"copy_file_range", 06777, kOtherGroup, false, copy_range},
      {"fallocate", 06777, kOtherGroup, false, fallocate_one},
      {"chown_by_root", 06777, 0, true, chown_one},
      {"chown_by_root_setgid_no_group_exec", 02666, 0, true, chown_one},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::map<std::string, mode_t> after;
    for (const std::string& dir : {mnt_, native_}) {
      std::string path = dir + "/" + c.name;
      ASSERT_TRUE(WriteFile(path, std::string(200, 'a')));
      ASSERT_TRUE(WriteFile(path + "-from", std::string(200, 'b')));
      ASSERT_EQ(chmod(path.c_str(), c.mode), 0) << ErrnoName(errno);
      std::optional<Credentials> creds;
      if (!c.as_root) creds = Credentials{kOtherUser, c.group, {}};
      ChildResult r = RunInChild(
          [&] {
            int err = c.act(path);
            return err == 0 ? std::string() : ErrnoName(err);
          },
          creds);
      ASSERT_TRUE(r.ok) << r.problem;
      ASSERT_EQ(r.output, "") << dir;
      struct stat st;
      ASSERT_EQ(stat(path.c_str(), &st), 0);
      after[dir] = st.st_mode & 07777;
    }
    EXPECT_EQ(after[mnt_], after[native_])
        << std::oct << "volume 0" << after[mnt_] << ", native disk 0" << after[native_];
  }
  // The first case on its own, in plain words.
  struct stat st;
  ASSERT_EQ(stat(M("write_only").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & (S_ISUID | S_ISGID), 0u) << std::oct << st.st_mode;
}

TEST_F(RequestProfile, ListingOfAChangedDirectoryIsFresh) {
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  ASSERT_TRUE(Touch(M("d/a")));
  EXPECT_EQ(ListSet(M("d")), (std::set<std::string>{"a"}));  // now cached by the kernel

  ASSERT_TRUE(Touch(M("d/b")));
  EXPECT_EQ(ListSet(M("d")), (std::set<std::string>{"a", "b"}));
  ASSERT_EQ(rename(M("d/a").c_str(), M("d/c").c_str()), 0);
  EXPECT_EQ(ListSet(M("d")), (std::set<std::string>{"b", "c"}));
  ASSERT_EQ(unlink(M("d/b").c_str()), 0);
  ASSERT_EQ(mkdir(M("d/sub").c_str(), 0755), 0);
  ASSERT_EQ(symlink("c", M("d/link").c_str()), 0);
  ASSERT_EQ(link(M("d/c").c_str(), M("d/hard").c_str()), 0);
  EXPECT_EQ(ListSet(M("d")), (std::set<std::string>{"c", "sub", "link", "hard"}));
  // A rename between directories changes both listings.
  ASSERT_EQ(rename(M("d/hard").c_str(), M("d/sub/moved").c_str()), 0);
  EXPECT_EQ(ListSet(M("d")), (std::set<std::string>{"c", "sub", "link"}));
  EXPECT_EQ(ListSet(M("d/sub")), (std::set<std::string>{"moved"}));

  // A stream kept open sees the change after rewinddir, as on a local disk.
  DIR* dir = opendir(M("d").c_str());
  ASSERT_NE(dir, nullptr);
  int seen = 0;
  while (readdir(dir) != nullptr) ++seen;
  EXPECT_EQ(seen, 5);  // . .. c sub link
  ASSERT_TRUE(Touch(M("d/late")));
  rewinddir(dir);
  std::set<std::string> again;
  while (struct dirent* e = readdir(dir)) again.insert(e->d_name);
  EXPECT_TRUE(again.count("late")) << "rewinddir after a create";
  EXPECT_EQ(fsync(dirfd(dir)), 0) << ErrnoName(errno);
  closedir(dir);

  // And the backing directory agrees.
  EXPECT_EQ(ListSet(M("d")), ListSet(base_ + "/src/d"));
}

TEST_F(RequestProfile, SeekdirTelldirAcrossReaddirRequests) {
  // 600 long names: about 40 READDIRPLUS requests of a page each.
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  for (int i = 0; i < 600; ++i) {
    char name[128];
    snprintf(name, sizeof name, "entry-with-a-rather-long-name-to-fill-pages-%04d", i);
    ASSERT_TRUE(Touch(M("d/") + name)) << name;
  }
  // For each position: the cookie telldir gives after reading it, and the name that follows.
  struct Position {
    long cookie;
    std::string next;
  };
  auto read_positions = [&](DIR* dir) {
    std::vector<Position> positions;
    long cookie = telldir(dir);
    while (struct dirent* e = readdir(dir)) {
      positions.push_back({cookie, e->d_name});
      cookie = telldir(dir);
    }
    positions.push_back({cookie, ""});  // the end
    return positions;
  };
  DIR* dir = opendir(M("d").c_str());
  ASSERT_NE(dir, nullptr);
  std::vector<Position> positions = read_positions(dir);
  ASSERT_EQ(positions.size(), 603u);  // 600 + . + .. + the end

  auto check_seeks = [&](DIR* d, const char* when) {
    SCOPED_TRACE(when);
    std::mt19937 random(7);
    for (int i = 0; i < 60; ++i) {
      const Position& p = positions[random() % positions.size()];
      seekdir(d, p.cookie);
      struct dirent* e = readdir(d);
      if (p.next.empty()) {
        EXPECT_EQ(e, nullptr) << "seekdir to the end";
      } else {
        ASSERT_NE(e, nullptr) << "seekdir to the position of " << p.next;
        EXPECT_EQ(e->d_name, p.next);
      }
    }
  };
  check_seeks(dir, "listing cached by the kernel");
  DropCaches();
  check_seeks(dir, "after drop_caches: READDIR from the server at each cookie");
  // Cookies stay valid in another stream, and after a change to the directory.
  ASSERT_TRUE(Touch(M("d/zz-new")));
  ASSERT_EQ(unlink(M("d/zz-new").c_str()), 0);
  DIR* other = opendir(M("d").c_str());
  ASSERT_NE(other, nullptr);
  check_seeks(other, "another stream, after a change");
  closedir(other);
  rewinddir(dir);
  std::vector<Position> again = read_positions(dir);
  ASSERT_EQ(again.size(), positions.size());
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].next, positions[i].next) << i;
  closedir(dir);
}

TEST_F(RequestProfile, TenThousandEntriesListedCompletelyWhileOthersComeAndGo) {
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  const int kKept = 10000;
  for (int i = 0; i < kKept; ++i) {
    char name[32];
    snprintf(name, sizeof name, "keep-%05d", i);
    ASSERT_TRUE(Touch(M("d/") + name)) << name;
  }
  std::atomic<bool> stop{false};
  std::atomic<int> churned{0};
  std::string failure;
  std::thread churn([&] {
    // Each name is used once, so a listing that shows one twice is wrong.
    std::vector<std::string> live;
    for (int n = 0; !stop; ++n) {
      std::string path = M("d/churn-" + std::to_string(n));
      if (!Touch(path)) {
        failure = "create " + path + ": " + ErrnoName(errno);
        return;
      }
      live.push_back(path);
      if (live.size() > 50) {
        if (unlink(live.front().c_str()) != 0) {
          failure = "unlink " + live.front() + ": " + ErrnoName(errno);
          return;
        }
        live.erase(live.begin());
      }
      ++churned;
    }
  });
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("listing " + std::to_string(round));
    std::vector<std::string> names = List(M("d"));
    std::map<std::string, int> seen;
    for (const std::string& n : names) ++seen[n];
    int kept = 0;
    for (const auto& [name, times] : seen) {
      EXPECT_EQ(times, 1) << name << " listed " << times << " times";
      if (name.rfind("keep-", 0) == 0) ++kept;
    }
    EXPECT_EQ(kept, kKept) << "names that did not change must all be listed";
  }
  stop = true;
  churn.join();
  EXPECT_EQ(failure, "");
  EXPECT_GT(churned.load(), 0);
}

}  // namespace
}  // namespace claimfs::it
