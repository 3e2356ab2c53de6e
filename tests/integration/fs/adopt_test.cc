// Volumes whose FUSE connection a new process adopts (docs/dataplane.md 5-7): a server process
// mounts a volume and hands its bundle to the test, which keeps the fds; the server is killed
// with SIGKILL while clients use the volume through open descriptors, and a new server process
// adopts the kept connection. The clients must not notice.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
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

std::string HelperBinary() { return ADOPT_SERVER_BINARY; }

// A server process and the socket the test talks to it over.
struct Server {
  pid_t pid = -1;
  int sock = -1;
};

// Reads one message from `sock` (at most `timeout`), with up to two fds.
bool Receive(int sock, std::string* text, std::vector<int>* fds, std::chrono::milliseconds timeout) {
  pollfd p{sock, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  char buf[4096];
  iovec iov{buf, sizeof buf};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return false;
  text->assign(buf, static_cast<size_t>(n));
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      std::vector<int> got(count);
      std::memcpy(got.data(), CMSG_DATA(c), count * sizeof(int));
      fds->insert(fds->end(), got.begin(), got.end());
    }
  }
  return true;
}

// An orphan (a file unlinked while open) as the helper's keeper handed it over, or a forgery.
struct KeptOrphan {
  uint32_t slot = 0;
  uint32_t generation = 0;
  int fd = -1;
};

// Starts the helper: `mode` mount (no fds) or adopt (the kept connection and arena, inherited
// as fds 10 and 11, and the orphans' fds as 13, 14, ...). The socket is fd 12 in the child.
Server Spawn(const std::string& mode, const std::string& source, const std::string& mountpoint,
             int conn_fd, int arena_fd, const std::string& crash_at = "",
             const std::string& capacity = "", const std::vector<KeptOrphan>& orphans = {},
             const std::string& stop_at = "") {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return {};
  std::vector<std::string> args = {HelperBinary(), mode, source, mountpoint, "12"};
  if (mode == "adopt") {
    args.push_back("10");
    args.push_back("11");
    for (size_t i = 0; i < orphans.size(); ++i) {
      args.push_back("--orphan=" + std::to_string(orphans[i].slot) + ":" +
                     std::to_string(orphans[i].generation) + ":" + std::to_string(13 + i));
    }
  }
  if (!capacity.empty()) args.push_back(capacity);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "CLAIMFS_CRASH_AT=", 17) != 0 &&
        std::strncmp(*e, "CLAIMFS_STOP_AT=", 16) != 0) {
      env_strings.emplace_back(*e);
    }
  }
  if (!crash_at.empty()) env_strings.push_back("CLAIMFS_CRASH_AT=" + crash_at);
  if (!stop_at.empty()) env_strings.push_back("CLAIMFS_STOP_AT=" + stop_at);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<int> source_slots(orphans.size() + 3);
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec: the test has threads.
    // Every source first goes above the targets, so that no dup2 overwrites a later source.
    int* sources = source_slots.data();
    int n = 0;
    if (mode == "adopt") {
      sources[n++] = fcntl(conn_fd, F_DUPFD, 100);
      sources[n++] = fcntl(arena_fd, F_DUPFD, 100);
    }
    sources[n++] = fcntl(pair[1], F_DUPFD, 100);
    for (const KeptOrphan& o : orphans) sources[n++] = fcntl(o.fd, F_DUPFD, 100);
    int i = 0;
    if (mode == "adopt") {
      dup2(sources[i++], 10);
      dup2(sources[i++], 11);
    }
    dup2(sources[i++], 12);
    for (size_t k = 0; k < orphans.size(); ++k) dup2(sources[i++], static_cast<int>(13 + k));
    for (int k = 0; k < n; ++k) close(sources[k]);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(pair[1]);
  return Server{pid, pair[0]};
}

void Kill(Server* s) {
  if (s->pid > 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, nullptr, 0);
  }
  if (s->sock >= 0) close(s->sock);
  *s = Server{};
}

// Ends a server the way a stop does: its socket closes, it calls Stop() (which detaches an
// adopted volume's mount) and exits.
void Finish(Server* s) {
  if (s->sock >= 0) close(s->sock);
  s->sock = -1;
  if (s->pid > 0 && !WaitForExit(s->pid, 10s)) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, nullptr, 0);
  }
  s->pid = -1;
}

class AdoptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "/dev/fuse is not usable here";
    char tmpl[] = "/tmp/claimfs-adopt-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    source_ = base_ + "/src";
    mnt_ = base_ + "/mnt";
    ASSERT_EQ(mkdir(source_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
  }

  void TearDown() override {
    Finish(&server_);
    for (int fd : kept_) close(fd);
    kept_.clear();
    for (const KeptOrphan& o : orphans_) close(o.fd);
    orphans_.clear();
    if (!base_.empty()) {
      ForceUnmount(mnt_);
      if (btrfs_mounted_) {
        RunShell("umount '" + base_ + "/btrfs' || umount -l '" + base_ + "/btrfs'");
      }
      RunShell("rm -rf '" + base_ + "'");
    }
  }

  // Mounts through a fresh server and keeps its bundle.
  // `crash_at`: the server kills itself there (CLAIMFS_CRASH_AT, see ops_internal.h).
  // `stop_at`: the server stops itself there (CLAIMFS_STOP_AT).
  ::testing::AssertionResult MountFresh(const std::string& crash_at = "",
                                        const std::string& stop_at = "") {
    server_ = Spawn("mount", source_, mnt_, -1, -1, crash_at, capacity_, {}, stop_at);
    std::string text;
    std::vector<int> fds;
    if (!ReceiveReply(&text, &fds, 15s)) {
      return ::testing::AssertionFailure() << "the mounting server did not answer";
    }
    if (text != "M" || fds.size() != 2) {
      return ::testing::AssertionFailure() << "mount failed: " << text;
    }
    kept_ = fds;
    // A forked child closes its copies of the test's FUSE files at exec, and each close sends
    // FLUSH and waits for it: with the server killed and its successor the child itself, that
    // would deadlock. One FLUSH answered ENOSYS stops the kernel sending any on the connection.
    // (Made in the source and opened through the mount: no CREATE, which a crash point may
    // be waiting for.)
    std::string probe = "/.flush-probe";
    close(open((source_ + probe).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    int fd = open((mnt_ + probe).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return ::testing::AssertionFailure() << "cannot open " << mnt_ + probe;
    close(fd);
    unlink((source_ + probe).c_str());
    return ::testing::AssertionSuccess();
  }

  // SIGKILLs the serving process and has a new one adopt the kept bundle.
  // The orphans the helper kept are passed to its successor (`orphans`: instead of them).
  ::testing::AssertionResult KillAndAdopt(const std::optional<std::vector<KeptOrphan>>& orphans = {}) {
    TakeKeeperMessages();
    Kill(&server_);
    return Adopt(orphans);
  }

  ::testing::AssertionResult Adopt(const std::optional<std::vector<KeptOrphan>>& orphans = {}) {
    server_ = Spawn("adopt", source_, mnt_, kept_[0], kept_[1], "", capacity_,
                    orphans ? *orphans : orphans_);
    std::string text;
    std::vector<int> fds;
    if (!ReceiveReply(&text, &fds, 15s)) {
      return ::testing::AssertionFailure() << "the adopting server did not answer";
    }
    if (text != "A") return ::testing::AssertionFailure() << "adoption failed: " << text;
    return ::testing::AssertionSuccess();
  }

  // Runs `change` (a syscall on the volume, returning 0 or errno) in a thread while the server
  // dies between doing it and replying; a new server adopts, the kernel resends the request.
  // The caller must see success, once.
  void ExpectDoneOnceAcrossACrashBeforeTheReply(const std::string& op,
                                                const std::function<int()>& change) {
    ExpectAnsweredAcrossACrash("reply." + op, 0, nullptr, change);
  }

  // As above, but the server dies at `crash_at` (reply.<op>: after the change, before the reply;
  // journal.<op>: after the syscall, before its journal record says done), `setup` runs on the
  // fresh mount first, and the caller must see `expected` (0 or an errno): what the server
  // would have answered had it not died.
  void ExpectAnsweredAcrossACrash(const std::string& crash_at, int expected,
                                  const std::function<void()>& setup,
                                  const std::function<int()>& change) {
    ExpectAnsweredAcrossACrash(crash_at, expected, setup, nullptr, change);
  }

  // `behind`: with the request arrived at the server (after the kernel's own lookup of the
  // name) and the server stopped, changes the source behind the kernel's back.
  void ExpectAnsweredAcrossACrash(const std::string& crash_at, int expected,
                                  const std::function<void()>& setup,
                                  const std::function<void()>& behind,
                                  const std::function<int()>& change) {
    std::string op = crash_at;
    std::string stop_at = behind ? "request." + op.substr(op.find('.') + 1) : "";
    ASSERT_TRUE(MountFresh(crash_at, stop_at));
    if (setup) setup();
    std::atomic<int> result{-1};
    std::thread caller([&] { result = change(); });
    if (behind) {
      int status = 0;
      pid_t stopped = waitpid(server_.pid, &status, WUNTRACED);
      if (stopped != server_.pid || !WIFSTOPPED(status)) {
        kill(server_.pid, SIGKILL);
        caller.join();
        FAIL() << "the server did not stop at " << stop_at;
      }
      behind();
      kill(server_.pid, SIGCONT);
    }
    std::optional<int> status = WaitForExit(server_.pid, 10s);
    ASSERT_TRUE(status.has_value()) << "the server did not crash at " << op;
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
    server_.pid = -1;
    close(server_.sock);
    server_.sock = -1;
    EXPECT_EQ(result.load(), -1) << "answered before the adoption";
    ASSERT_TRUE(Adopt());
    caller.join();
    EXPECT_EQ(result.load(), expected)
        << op << ": " << ErrnoName(result.load()) << ", expected " << ErrnoName(expected);
  }

  // A name made in the source behind the kernel's back, between the kernel's lookup (which
  // found it missing) and the request: the name existed before the request.
  void MakeBehindTheKernel(const std::string& name, bool directory = false) {
    std::string path = source_ + "/" + name;
    if (directory) {
      ASSERT_EQ(mkdir(path.c_str(), 0755), 0);
    } else {
      ASSERT_EQ(close(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
    }
  }

  // A file in the source with user.k = "v1".
  void MakeFileWithAttribute(const std::string& path) {
    ASSERT_EQ(close(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
    ASSERT_EQ(setxattr(path.c_str(), "user.k", "v1", 2, 0), 0) << ErrnoName(errno);
  }

  // A name the kernel knows (a cached entry) removed behind its back in the source.
  void RemoveBehindTheKernel(const std::string& name, bool directory = false) {
    std::string path = source_ + "/" + name;
    if (directory) {
      ASSERT_EQ(mkdir(path.c_str(), 0755), 0);
    } else {
      ASSERT_EQ(close(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
    }
    struct stat st;
    ASSERT_EQ(stat((mnt_ + "/" + name).c_str(), &st), 0);
    ASSERT_EQ(directory ? rmdir(path.c_str()) : unlink(path.c_str()), 0);
  }

  // Applies a keeper message ('O' "SLOT GEN" with an fd, 'F' "SLOT GEN"); false for others.
  bool ApplyKeeperMessage(const std::string& text, std::vector<int>* fds) {
    if (text.empty() || (text[0] != 'O' && text[0] != 'F')) return false;
    KeptOrphan o;
    if (std::sscanf(text.c_str() + 1, "%u %u", &o.slot, &o.generation) != 2) return false;
    for (auto it = orphans_.begin(); it != orphans_.end(); ++it) {
      if (it->slot == o.slot && it->generation == o.generation) {
        close(it->fd);
        orphans_.erase(it);
        break;
      }
    }
    if (text[0] == 'O' && fds->size() == 1) {
      o.fd = (*fds)[0];
      orphans_.push_back(o);
    } else {
      for (int fd : *fds) close(fd);
    }
    fds->clear();
    return true;
  }

  // The server's next reply, applying the keeper messages that come before it.
  bool ReceiveReply(std::string* text, std::vector<int>* fds, std::chrono::milliseconds timeout) {
    while (Receive(server_.sock, text, fds, timeout)) {
      if (!ApplyKeeperMessage(*text, fds)) return true;
    }
    return false;
  }

  // Applies the keeper messages already sent (a keeper's message is sent before the request
  // that caused it is answered).
  void TakeKeeperMessages() {
    std::string text;
    std::vector<int> fds;
    while (server_.sock >= 0 && Receive(server_.sock, &text, &fds, 0ms)) {
      if (!ApplyKeeperMessage(text, &fds)) {
        ADD_FAILURE() << "unexpected message from the server: " << text;
        for (int fd : fds) close(fd);
        fds.clear();
      }
    }
  }

  // Waits (at most 10 s) until the keeper keeps no orphan: RELEASE is sent after close returns.
  bool WaitUntilNoOrphanIsKept() {
    TakeKeeperMessages();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    std::string text;
    std::vector<int> fds;
    while (!orphans_.empty() && std::chrono::steady_clock::now() < deadline &&
           Receive(server_.sock, &text, &fds, 100ms)) {
      if (!ApplyKeeperMessage(text, &fds)) ADD_FAILURE() << "unexpected message: " << text;
    }
    return orphans_.empty();
  }

  std::string base_, source_, mnt_;
  std::string capacity_;  // bytes, for the helper; empty: none
  bool btrfs_mounted_ = false;
  Server server_;
  std::vector<int> kept_;  // connection, arena
  std::vector<KeptOrphan> orphans_;  // what the helper's keeper keeps
};

// A record: sequence number, writer, payload and a checksum over them.
struct Record {
  uint64_t seq;
  uint64_t writer;
  char payload[40];
  uint64_t sum;
};
static_assert(sizeof(Record) == 64);

uint64_t Checksum(const Record& r) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ULL;
  };
  mix(&r.seq, sizeof r.seq);
  mix(&r.writer, sizeof r.writer);
  mix(r.payload, sizeof r.payload);
  return h;
}

TEST_F(AdoptTest, Kill9OfTheServingProcessLosesNoFsyncedRecordAndNoCallerSeesAnError) {
  ASSERT_TRUE(MountFresh());
  constexpr int kWriters = 3;
  constexpr int kKills = 12;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  std::mutex problems_mu;
  std::vector<std::string> problems;
  std::vector<uint64_t> fsynced(kWriters, 0);
  auto fail = [&](const std::string& what) {
    errors.fetch_add(1);
    std::lock_guard lock(problems_mu);
    if (problems.size() < 20) problems.push_back(what);
  };
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::string path = mnt_ + "/log" + std::to_string(w);
      int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
      int rfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || rfd < 0) {
        fail("open " + path + ": " + ErrnoName(errno));
        return;
      }
      for (uint64_t seq = 0; !stop.load(); ++seq) {
        Record r{};
        r.seq = seq;
        r.writer = static_cast<uint64_t>(w);
        std::snprintf(r.payload, sizeof r.payload, "writer %d record %llu", w,
                      static_cast<unsigned long long>(seq));
        r.sum = Checksum(r);
        if (write(fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
          fail("write " + path + ": " + ErrnoName(errno));
          break;
        }
        if (fsync(fd) != 0) {
          fail("fsync " + path + ": " + ErrnoName(errno));
          break;
        }
        fsynced[w] = seq + 1;
        Record back{};
        if (pread(rfd, &back, sizeof back, static_cast<off_t>(seq * sizeof back)) !=
                static_cast<ssize_t>(sizeof back) ||
            back.seq != seq || back.sum != Checksum(back)) {
          fail("read back " + path + " record " + std::to_string(seq) + ": " + ErrnoName(errno));
          break;
        }
      }
      close(fd);
      close(rfd);
    });
  }
  std::mt19937 rng(12345);
  for (int i = 0; i < kKills && errors.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 250));
    ASSERT_TRUE(KillAndAdopt()) << "kill " << i;
  }
  std::this_thread::sleep_for(200ms);
  stop = true;
  for (auto& t : writers) t.join();
  EXPECT_EQ(errors.load(), 0u) << ::testing::PrintToString(problems);

  // Every fsync'd record is back, in order, intact, exactly once.
  for (int w = 0; w < kWriters; ++w) {
    std::string data = ReadFileOrEmpty(source_ + "/log" + std::to_string(w));
    ASSERT_EQ(data.size() % sizeof(Record), 0u) << "writer " << w;
    uint64_t count = data.size() / sizeof(Record);
    EXPECT_GE(count, fsynced[w]) << "writer " << w;
    EXPECT_GT(count, 0u);
    for (uint64_t i = 0; i < count; ++i) {
      Record r;
      std::memcpy(&r, data.data() + i * sizeof r, sizeof r);
      ASSERT_EQ(r.seq, i) << "writer " << w << ": a record lost or written twice";
      ASSERT_EQ(r.sum, Checksum(r)) << "writer " << w << " record " << i;
    }
  }
}

std::set<std::string> List(int dir_fd) {
  std::set<std::string> names;
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return names;
  DIR* d = fdopendir(fd);
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.insert(e->d_name);
  }
  closedir(d);
  return names;
}

TEST_F(AdoptTest, NodesKnownBeforeTheKillAreTheSameNodesAfterAdoption) {
  ASSERT_TRUE(MountFresh());
  ASSERT_EQ(RunShell("mkdir -p '" + mnt_ + "/t/a/b' && echo one > '" + mnt_ + "/t/a/b/f' && "
                     "echo two > '" + mnt_ + "/t/g' && ln -s b '" + mnt_ + "/t/a/l'")
                .Describe(),
            RunShell("true").Describe());
  // The kernel keeps these nodes (and their ids) across the kill: a directory held open, a
  // working directory-relative path, stat results.
  int dir = open((mnt_ + "/t/a").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  struct stat before_f, before_dir;
  ASSERT_EQ(fstatat(dir, "b/f", &before_f, 0), 0);
  ASSERT_EQ(fstat(dir, &before_dir), 0);
  std::set<std::string> listing = List(dir);

  ASSERT_TRUE(KillAndAdopt());
  ASSERT_TRUE(KillAndAdopt());  // twice: the second adopter reads what the first one kept

  struct stat after_f, after_dir;
  ASSERT_EQ(fstatat(dir, "b/f", &after_f, 0), 0) << ErrnoName(errno);
  ASSERT_EQ(fstat(dir, &after_dir), 0) << ErrnoName(errno);
  EXPECT_EQ(after_f.st_ino, before_f.st_ino);
  EXPECT_EQ(after_dir.st_ino, before_dir.st_ino);
  EXPECT_EQ(List(dir), listing);
  // Opens of known nodes go to the adopter with the old node ids.
  int f = openat(dir, "b/f", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(f, 0) << ErrnoName(errno);
  char buf[16] = {};
  EXPECT_EQ(read(f, buf, sizeof buf), 4);
  EXPECT_STREQ(buf, "one\n");
  close(f);
  char target[16] = {};
  EXPECT_EQ(readlinkat(dir, "l", target, sizeof target), 1);
  // New names under a known directory work, and show in the backing directory.
  int n = openat(dir, "new", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(n, 0) << ErrnoName(errno);
  EXPECT_EQ(write(n, "x", 1), 1);
  close(n);
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/t/a/new"), "x");
  EXPECT_EQ(ReadFileOrEmpty(mnt_ + "/t/g"), "two\n");
  close(dir);
}

TEST_F(AdoptTest, OpenFilesKeepTheirOffsetsModesAndDataAcrossAKill) {
  ASSERT_TRUE(MountFresh());
  std::string path = mnt_ + "/f";
  int rw = open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  int ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(rw, 0);
  ASSERT_GE(ro, 0);
  ASSERT_EQ(write(rw, "hello ", 6), 6);
  ASSERT_TRUE(KillAndAdopt());
  EXPECT_EQ(write(rw, "world", 5), 5) << ErrnoName(errno);
  EXPECT_EQ(fsync(rw), 0) << ErrnoName(errno);
  char buf[32] = {};
  EXPECT_EQ(pread(ro, buf, sizeof buf, 0), 11) << ErrnoName(errno);
  EXPECT_STREQ(buf, "hello world");
  // A read-only open stays read-only.
  EXPECT_EQ(write(ro, "x", 1), -1);
  EXPECT_EQ(errno, EBADF);
  close(rw);
  close(ro);
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/f"), "hello world");
}

// A file unlinked while open lives on in the kept orphan fd: after a kill -9 of its server
// the program keeps reading, writing, stat'ing and truncating it through its descriptor (issue
// 10: a kill costs programs no error), across two kills, and its last close drops the kept fd.
TEST_F(AdoptTest, UnlinkedOpenFileKeepsWorkingAcrossAKill) {
  ASSERT_TRUE(MountFresh());
  int gone = open((mnt_ + "/gone").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(gone, 0);
  int reader = open((mnt_ + "/gone").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  ASSERT_EQ(write(gone, "secret", 6), 6);
  ASSERT_EQ(unlink((mnt_ + "/gone").c_str()), 0);
  int kept = open((mnt_ + "/kept").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(kept, 0);
  ASSERT_TRUE(KillAndAdopt());
  EXPECT_EQ(orphans_.size(), 1u);
  char buf[32] = {};
  EXPECT_EQ(pread(gone, buf, sizeof buf, 0), 6) << ErrnoName(errno);
  EXPECT_STREQ(buf, "secret");
  EXPECT_EQ(write(gone, " kept", 5), 5) << ErrnoName(errno);  // at the descriptor's offset
  EXPECT_EQ(fsync(gone), 0) << ErrnoName(errno);
  struct stat st;
  ASSERT_EQ(fstat(gone, &st), 0) << ErrnoName(errno);
  EXPECT_EQ(st.st_size, 11);
  EXPECT_EQ(st.st_nlink, 0u);
  std::memset(buf, 0, sizeof buf);
  EXPECT_EQ(pread(reader, buf, sizeof buf, 0), 11) << ErrnoName(errno);
  EXPECT_STREQ(buf, "secret kept");
  EXPECT_EQ(write(reader, "x", 1), -1);  // a read-only open stays read-only
  EXPECT_EQ(errno, EBADF);

  ASSERT_TRUE(KillAndAdopt());  // a second kill: the kept fd is passed on again
  EXPECT_EQ(ftruncate(gone, 3), 0) << ErrnoName(errno);
  ASSERT_EQ(fstat(gone, &st), 0) << ErrnoName(errno);
  EXPECT_EQ(st.st_size, 3);
  std::memset(buf, 0, sizeof buf);
  EXPECT_EQ(pread(reader, buf, sizeof buf, 0), 3) << ErrnoName(errno);
  EXPECT_STREQ(buf, "sec");
  EXPECT_EQ(write(kept, "ok", 2), 2) << ErrnoName(errno);
  close(reader);
  TakeKeeperMessages();
  EXPECT_EQ(orphans_.size(), 1u) << "dropped while a file is still open";
  close(gone);  // the last close: the keeper forgets it
  close(kept);
  EXPECT_EQ(ReadFileOrEmpty(mnt_ + "/kept"), "ok");
  EXPECT_TRUE(WaitUntilNoOrphanIsKept()) << "the keeper still keeps the closed orphan";
  EXPECT_EQ(access((source_ + "/gone").c_str(), F_OK), -1);  // it never got a name back
}

// A rename over an open file removes its last name too; a file with another hard link left
// is no orphan (it is reopened by handle as before).
TEST_F(AdoptTest, FileReplacedByARenameKeepsWorkingAcrossAKillAndAHardLinkedOneIsNoOrphan) {
  ASSERT_TRUE(MountFresh());
  int replaced = open((mnt_ + "/db").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(replaced, 0);
  ASSERT_EQ(write(replaced, "old version", 11), 11);
  ASSERT_TRUE(WriteFile(mnt_ + "/db.new", "new version"));
  ASSERT_EQ(rename((mnt_ + "/db.new").c_str(), (mnt_ + "/db").c_str()), 0);
  int linked = open((mnt_ + "/a").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(linked, 0);
  ASSERT_EQ(write(linked, "linked", 6), 6);
  ASSERT_EQ(link((mnt_ + "/a").c_str(), (mnt_ + "/b").c_str()), 0);
  ASSERT_EQ(unlink((mnt_ + "/a").c_str()), 0);
  TakeKeeperMessages();
  EXPECT_EQ(orphans_.size(), 1u) << "only the replaced file is an orphan";
  ASSERT_TRUE(KillAndAdopt());
  char buf[32] = {};
  EXPECT_EQ(pread(replaced, buf, sizeof buf, 0), 11) << ErrnoName(errno);
  EXPECT_STREQ(buf, "old version");
  EXPECT_EQ(pwrite(replaced, "OLD", 3, 0), 3) << ErrnoName(errno);
  EXPECT_EQ(pwrite(linked, "LINKED", 6, 0), 6) << ErrnoName(errno);
  close(replaced);
  close(linked);
  EXPECT_EQ(ReadFileOrEmpty(mnt_ + "/db"), "new version");
  EXPECT_EQ(ReadFileOrEmpty(mnt_ + "/b"), "LINKED");
  EXPECT_TRUE(WaitUntilNoOrphanIsKept());
}

// An unlinked open file still counts against the capacity after the kill (the rescan walks
// names and finds none), and its space is freed at its last close.
TEST_F(AdoptTest, UnlinkedOpenFileStillCountsAgainstTheCapacityAfterAKillUntilItsLastClose) {
  capacity_ = std::to_string(64 << 20);
  ASSERT_TRUE(MountFresh());
  int gone = open((mnt_ + "/gone").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(gone, 0);
  std::string block(1 << 20, 'z');
  for (int i = 0; i < 8; ++i) ASSERT_EQ(write(gone, block.data(), block.size()), 1 << 20);
  ASSERT_EQ(fsync(gone), 0);
  ASSERT_EQ(unlink((mnt_ + "/gone").c_str()), 0);
  auto used = [&] {
    struct statvfs sv;
    if (statvfs(mnt_.c_str(), &sv) != 0) return uint64_t{0};
    return static_cast<uint64_t>(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
  };
  uint64_t before = used();
  EXPECT_GE(before, uint64_t{8} << 20);
  ASSERT_TRUE(KillAndAdopt());
  uint64_t after = used();
  EXPECT_GE(after, uint64_t{8} << 20) << "the orphan's blocks are no longer counted";
  EXPECT_LE(after, before + (1 << 20));
  close(gone);
  EXPECT_TRUE(WaitUntilNoOrphanIsKept());
  // The keeper is told before the usage drops: wait for both.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (used() >= (uint64_t{1} << 20) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_LT(used(), uint64_t{1} << 20) << "the orphan's blocks still count after its last close";
}

// Orphans that are not what the arena says are never served: a kept fd of another file under
// a real orphan's name, a name of a node that is not an orphan (the root), and a stale
// generation. The unlinked file then fails as without a keeper (ESTALE or EIO), the other file
// is neither read nor written through it, and the rest of the volume works.
TEST_F(AdoptTest, ForgedOrStaleOrphanNeverReachesAnotherFile) {
  ASSERT_TRUE(MountFresh());
  ASSERT_TRUE(WriteFile(source_ + "/other", "other data"));
  int gone = open((mnt_ + "/gone").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(gone, 0);
  ASSERT_EQ(write(gone, "secret", 6), 6);
  ASSERT_EQ(unlink((mnt_ + "/gone").c_str()), 0);
  int kept = open((mnt_ + "/kept").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(kept, 0);
  TakeKeeperMessages();
  ASSERT_EQ(orphans_.size(), 1u);
  const KeptOrphan real = orphans_[0];
  int other = open((source_ + "/other").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(other, 0);
  std::vector<KeptOrphan> forged = {
      {real.slot, real.generation, other},      // another file under the orphan's name
      {1, 0, other},                            // the root: not an orphan
      {real.slot, real.generation + 1, real.fd},  // a generation the node does not have
  };
  ASSERT_TRUE(KillAndAdopt(forged));
  close(other);
  char buf[16] = {};
  ssize_t n = pread(gone, buf, sizeof buf, 0);
  EXPECT_EQ(n, -1) << "served: " << std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  EXPECT_TRUE(errno == ESTALE || errno == EIO) << ErrnoName(errno);
  EXPECT_EQ(pwrite(gone, "XX", 2, 0), -1);
  EXPECT_EQ(write(kept, "ok", 2), 2) << ErrnoName(errno);
  close(gone);  // its RELEASE is answered
  close(kept);
  EXPECT_EQ(ReadFileOrEmpty(mnt_ + "/kept"), "ok");
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/other"), "other data");
  EXPECT_EQ(ReadFileOrEmpty(mnt_ + "/other"), "other data");
}

TEST_F(AdoptTest, CleanHandoffReleaseThenAdoptWithFilesOpen) {
  ASSERT_TRUE(MountFresh());
  int fd = open((mnt_ + "/h").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "before", 6), 6);
  ASSERT_EQ(write(server_.sock, "R", 1), 1);
  std::string text;
  std::vector<int> fds;
  ASSERT_TRUE(Receive(server_.sock, &text, &fds, 15s));
  EXPECT_EQ(text, "r");
  int status = 0;
  ASSERT_TRUE(WaitForExit(server_.pid, 10s).has_value());
  server_.pid = -1;
  close(server_.sock);
  server_.sock = -1;
  (void)status;
  // Released, not unmounted: the mount is still there, its requests wait for a server.
  EXPECT_TRUE(FindMount(mnt_).has_value());
  ASSERT_TRUE(Adopt());
  EXPECT_EQ(write(fd, " after", 6), 6) << ErrnoName(errno);
  char buf[32] = {};
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 12) << ErrnoName(errno);
  EXPECT_STREQ(buf, "before after");
  close(fd);
  // Stopping the adopter unmounts the volume.
  Finish(&server_);
  EXPECT_TRUE(WaitForMountState(mnt_, false, 5s));
}

// docs/dataplane.md 7.3: a directory change the dead server made but did not answer is resent
// and must not fail (EEXIST, ENOENT) the second time.
TEST_F(AdoptTest, MkdirDoneBeforeTheCrashSucceedsOnce) {
  std::string dir = mnt_ + "/d";
  ExpectDoneOnceAcrossACrashBeforeTheReply("mkdir", [&] {
    return mkdir(dir.c_str(), 0755) == 0 ? 0 : errno;
  });
  struct stat st;
  EXPECT_EQ(stat((source_ + "/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(AdoptTest, ExclusiveCreateDoneBeforeTheCrashSucceedsOnce) {
  std::string path = mnt_ + "/c";
  int fd = -1;
  ExpectDoneOnceAcrossACrashBeforeTheReply("create", [&] {
    fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    return fd >= 0 ? 0 : errno;
  });
  ASSERT_GE(fd, 0);
  EXPECT_EQ(write(fd, "data", 4), 4) << ErrnoName(errno);
  close(fd);
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/c"), "data");
}

TEST_F(AdoptTest, UnlinkDoneBeforeTheCrashSucceedsOnce) {
  ASSERT_EQ(close(open((source_ + "/u").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  std::string path = mnt_ + "/u";
  ExpectDoneOnceAcrossACrashBeforeTheReply("unlink", [&] {
    return unlink(path.c_str()) == 0 ? 0 : errno;
  });
  EXPECT_NE(access((source_ + "/u").c_str(), F_OK), 0);
}

TEST_F(AdoptTest, RenameDoneBeforeTheCrashSucceedsOnce) {
  ASSERT_EQ(close(open((source_ + "/from").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  ExpectDoneOnceAcrossACrashBeforeTheReply("rename", [&] {
    return rename((mnt_ + "/from").c_str(), (mnt_ + "/to").c_str()) == 0 ? 0 : errno;
  });
  EXPECT_EQ(access((source_ + "/to").c_str(), F_OK), 0);
  EXPECT_NE(access((source_ + "/from").c_str(), F_OK), 0);
}

// docs/dataplane.md 7.3, the in-flight journal: a resent request is answered as the dead server
// would have answered it. Without the journal, a name that existed (or was missing) before
// the request read the same as one the dead server made (or removed): success.
TEST_F(AdoptTest, ExclusiveCreateOfANameThatExistedBeforeTheCrashFailsEexist) {
  int fd = -1;
  ExpectAnsweredAcrossACrash(
      "reply.create", EEXIST, nullptr, [&] { MakeBehindTheKernel("c"); },
      [&] {
        fd = open((mnt_ + "/c").c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        return fd >= 0 ? 0 : errno;
      });
  if (fd >= 0) close(fd);
}

TEST_F(AdoptTest, MkdirOfANameThatExistedBeforeTheCrashFailsEexist) {
  ExpectAnsweredAcrossACrash(
      "reply.mkdir", EEXIST, nullptr, [&] { MakeBehindTheKernel("d", true); },
      [&] { return mkdir((mnt_ + "/d").c_str(), 0755) == 0 ? 0 : errno; });
}

TEST_F(AdoptTest, MknodOfANameThatExistedBeforeTheCrashFailsEexist) {
  ExpectAnsweredAcrossACrash(
      "reply.mknod", EEXIST, nullptr, [&] { MakeBehindTheKernel("p"); },
      [&] { return mkfifo((mnt_ + "/p").c_str(), 0644) == 0 ? 0 : errno; });
}

TEST_F(AdoptTest, SymlinkOfANameThatExistedBeforeTheCrashFailsEexist) {
  ExpectAnsweredAcrossACrash(
      "reply.symlink", EEXIST, nullptr, [&] { MakeBehindTheKernel("s"); },
      [&] { return symlink("target", (mnt_ + "/s").c_str()) == 0 ? 0 : errno; });
}

TEST_F(AdoptTest, LinkOfANameThatExistedBeforeTheCrashFailsEexist) {
  ASSERT_EQ(close(open((source_ + "/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  ExpectAnsweredAcrossACrash(
      "reply.link", EEXIST, nullptr, [&] { MakeBehindTheKernel("l"); },
      [&] { return link((mnt_ + "/f").c_str(), (mnt_ + "/l").c_str()) == 0 ? 0 : errno; });
}

TEST_F(AdoptTest, LinkDoneBeforeTheCrashSucceedsOnce) {
  ASSERT_EQ(close(open((source_ + "/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  ExpectDoneOnceAcrossACrashBeforeTheReply(
      "link", [&] { return link((mnt_ + "/f").c_str(), (mnt_ + "/l").c_str()) == 0 ? 0 : errno; });
  struct stat st;
  ASSERT_EQ(stat((source_ + "/l").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
}

TEST_F(AdoptTest, UnlinkOfANameAlreadyMissingBeforeTheCrashFailsEnoent) {
  ExpectAnsweredAcrossACrash(
      "reply.unlink", ENOENT, [&] { RemoveBehindTheKernel("u"); },
      [&] { return unlink((mnt_ + "/u").c_str()) == 0 ? 0 : errno; });
}

TEST_F(AdoptTest, RmdirOfANameAlreadyMissingBeforeTheCrashFailsEnoent) {
  ExpectAnsweredAcrossACrash(
      "reply.rmdir", ENOENT, [&] { RemoveBehindTheKernel("r", true); },
      [&] { return rmdir((mnt_ + "/r").c_str()) == 0 ? 0 : errno; });
}

// The dead server died after the syscall but before its record said done: the record's
// pre-state (the name was missing) decides.
TEST_F(AdoptTest, MkdirStartedButNotMarkedDoneBeforeTheCrashSucceedsOnce) {
  ExpectAnsweredAcrossACrash("journal.mkdir", 0, nullptr,
                             [&] { return mkdir((mnt_ + "/d").c_str(), 0755) == 0 ? 0 : errno; });
  struct stat st;
  EXPECT_EQ(stat((source_ + "/d").c_str(), &st), 0);
}

TEST_F(AdoptTest, MkdirOfAnExistingNameStartedButNotMarkedDoneFailsEexist) {
  ExpectAnsweredAcrossACrash(
      "journal.mkdir", EEXIST, nullptr, [&] { MakeBehindTheKernel("d", true); },
      [&] { return mkdir((mnt_ + "/d").c_str(), 0755) == 0 ? 0 : errno; });
}

TEST_F(AdoptTest, UnlinkStartedButNotMarkedDoneBeforeTheCrashSucceedsOnce) {
  ASSERT_EQ(close(open((source_ + "/u").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  ExpectAnsweredAcrossACrash("journal.unlink", 0, nullptr,
                             [&] { return unlink((mnt_ + "/u").c_str()) == 0 ? 0 : errno; });
  EXPECT_NE(access((source_ + "/u").c_str(), F_OK), 0);
}

TEST_F(AdoptTest, ExclusiveCreateStartedButNotMarkedDoneSucceedsOnce) {
  int fd = -1;
  ExpectAnsweredAcrossACrash("journal.create", 0, nullptr, [&] {
    fd = open((mnt_ + "/c").c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    return fd >= 0 ? 0 : errno;
  });
  ASSERT_GE(fd, 0);
  EXPECT_EQ(write(fd, "data", 4), 4) << ErrnoName(errno);
  close(fd);
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/c"), "data");
}

TEST_F(AdoptTest, SetxattrCreateDoneBeforeTheCrashSucceedsOnce) {
  ASSERT_EQ(close(open((source_ + "/x").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  ExpectDoneOnceAcrossACrashBeforeTheReply("setxattr", [&] {
    return setxattr((mnt_ + "/x").c_str(), "user.k", "v1", 2, XATTR_CREATE) == 0 ? 0 : errno;
  });
  char value[8] = {};
  EXPECT_EQ(getxattr((source_ + "/x").c_str(), "user.k", value, sizeof value), 2);
  EXPECT_STREQ(value, "v1");
}

TEST_F(AdoptTest, SetxattrReplaceDoneBeforeTheCrashSucceedsOnce) {
  std::string path = source_ + "/x";
  ASSERT_NO_FATAL_FAILURE(MakeFileWithAttribute(path));
  ExpectDoneOnceAcrossACrashBeforeTheReply("setxattr", [&] {
    return setxattr((mnt_ + "/x").c_str(), "user.k", "v2", 2, XATTR_REPLACE) == 0 ? 0 : errno;
  });
  char value[8] = {};
  EXPECT_EQ(getxattr(path.c_str(), "user.k", value, sizeof value), 2);
  EXPECT_STREQ(value, "v2");
}

TEST_F(AdoptTest, SetxattrCreateOfAnExistingAttributeFailsEexistAcrossACrash) {
  std::string path = source_ + "/x";
  ASSERT_NO_FATAL_FAILURE(MakeFileWithAttribute(path));
  ExpectAnsweredAcrossACrash("journal.setxattr", EEXIST, nullptr, [&] {
    return setxattr((mnt_ + "/x").c_str(), "user.k", "v2", 2, XATTR_CREATE) == 0 ? 0 : errno;
  });
  char value[8] = {};
  EXPECT_EQ(getxattr(path.c_str(), "user.k", value, sizeof value), 2);
  EXPECT_STREQ(value, "v1");
}

TEST_F(AdoptTest, RemovexattrDoneBeforeTheCrashSucceedsOnce) {
  std::string path = source_ + "/x";
  ASSERT_NO_FATAL_FAILURE(MakeFileWithAttribute(path));
  ExpectDoneOnceAcrossACrashBeforeTheReply(
      "removexattr", [&] { return removexattr((mnt_ + "/x").c_str(), "user.k") == 0 ? 0 : errno; });
  EXPECT_LT(getxattr(path.c_str(), "user.k", nullptr, 0), 0);
}

TEST_F(AdoptTest, RemovexattrStartedButNotMarkedDoneSucceedsOnce) {
  std::string path = source_ + "/x";
  ASSERT_NO_FATAL_FAILURE(MakeFileWithAttribute(path));
  ExpectAnsweredAcrossACrash("journal.removexattr", 0, nullptr, [&] {
    return removexattr((mnt_ + "/x").c_str(), "user.k") == 0 ? 0 : errno;
  });
}

TEST_F(AdoptTest, RenameOfASourceAlreadyMissingBeforeTheCrashFailsEnoent) {
  ASSERT_EQ(close(open((source_ + "/to").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
  ExpectAnsweredAcrossACrash(
      "reply.rename", ENOENT, [&] { RemoveBehindTheKernel("from"); },
      [&] { return rename((mnt_ + "/from").c_str(), (mnt_ + "/to").c_str()) == 0 ? 0 : errno; });
  EXPECT_EQ(access((source_ + "/to").c_str(), F_OK), 0);
}

// Redone, an exchange would swap the names back and answer success.
TEST_F(AdoptTest, RenameExchangeDoneBeforeTheCrashSwapsOnce) {
  ASSERT_TRUE(WriteFile(source_ + "/a", "A"));
  ASSERT_TRUE(WriteFile(source_ + "/b", "B"));
  ExpectDoneOnceAcrossACrashBeforeTheReply("rename", [&] {
    return renameat2(AT_FDCWD, (mnt_ + "/a").c_str(), AT_FDCWD, (mnt_ + "/b").c_str(),
                     RENAME_EXCHANGE) == 0
               ? 0
               : errno;
  });
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/a"), "B");
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/b"), "A");
}

TEST_F(AdoptTest, RenameExchangeStartedButNotMarkedDoneSwapsOnce) {
  ASSERT_TRUE(WriteFile(source_ + "/a", "A"));
  ASSERT_TRUE(WriteFile(source_ + "/b", "B"));
  ExpectAnsweredAcrossACrash("journal.rename", 0, nullptr, [&] {
    return renameat2(AT_FDCWD, (mnt_ + "/a").c_str(), AT_FDCWD, (mnt_ + "/b").c_str(),
                     RENAME_EXCHANGE) == 0
               ? 0
               : errno;
  });
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/a"), "B");
  EXPECT_EQ(ReadFileOrEmpty(source_ + "/b"), "A");
}

// FALLOCATE collapse/insert range would move data twice if redone, but the kernel refuses
// both modes on a FUSE file before sending anything (fuse_file_fallocate: EOPNOTSUPP), so no
// resend can carry one. Should a kernel ever send them, MoveRange journals the file's size.
TEST_F(AdoptTest, CollapseRangeNeverReachesTheServer) {
  ASSERT_TRUE(MountFresh());
  std::string path = mnt_ + "/f";
  ASSERT_TRUE(WriteFile(path, std::string(3 * 4096, 'a')));
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_NE(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), 0);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_NE(fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096), 0);
  EXPECT_EQ(errno, EOPNOTSUPP);
  close(fd);
}

// Kernel mode (docs/dataplane.md 9.3): backing ids belong to the connection and survive the
// server; the adopter must reuse them (a second BACKING_OPEN for the node would make every
// later open of it fail EIO).
TEST_F(AdoptTest, KernelModeBackingIdSurvivesServerKill) {
  if (access("/dev/loop-control", F_OK) != 0) GTEST_SKIP() << "no loop devices here";
  std::string btrfs = base_ + "/btrfs";
  ASSERT_EQ(mkdir(btrfs.c_str(), 0755), 0);
  RunResult r = RunShell("truncate -s 1G '" + base_ + "/image' && mkfs.btrfs -q '" + base_ +
                         "/image' && mount -o loop '" + base_ + "/image' '" + btrfs + "'");
  if (!r.Succeeded()) GTEST_SKIP() << "cannot make a btrfs here: " << r.Describe();
  btrfs_mounted_ = true;
  r = RunShell("btrfs quota enable '" + btrfs + "' && btrfs quota rescan -w '" + btrfs +
               "' && btrfs -q subvolume create '" + btrfs + "/vol'");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  source_ = btrfs + "/vol";
  capacity_ = std::to_string(64ull << 20);
  ASSERT_TRUE(MountFresh());
  std::string path = mnt_ + "/p";
  int fd = open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "one ", 4), 4);
  ASSERT_TRUE(KillAndAdopt());
  ASSERT_TRUE(KillAndAdopt());
  EXPECT_EQ(write(fd, "two", 3), 3) << ErrnoName(errno);
  // A second open of the node while the first is alive: the same backing id, or EIO.
  int again = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(again, 0) << ErrnoName(errno);
  char buf[16] = {};
  EXPECT_EQ(pread(again, buf, sizeof buf, 0), 7) << ErrnoName(errno);
  EXPECT_STREQ(buf, "one two");
  close(again);
  close(fd);
  // All closed: the id is released; a new open gets a new one.
  int later = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(later, 0) << ErrnoName(errno);
  EXPECT_EQ(pread(later, buf, sizeof buf, 0), 7) << ErrnoName(errno);
  close(later);
  Finish(&server_);
}

TEST_F(AdoptTest, AdoptionRefusesAnArenaOfAnotherSource) {
  ASSERT_TRUE(MountFresh());
  std::string other = base_ + "/other";
  ASSERT_EQ(mkdir(other.c_str(), 0755), 0);
  fs::VolumeOptions o;
  o.source = other;
  o.mountpoint = mnt_;
  fs::VolumeBundle b;
  b.connection_fd = fcntl(kept_[0], F_DUPFD_CLOEXEC, 0);
  b.arena_fd = fcntl(kept_[1], F_DUPFD_CLOEXEC, 0);
  auto v = fs::Volume::Adopt(o, b);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("root"), std::string::npos) << v.status().ToString();
  // The rightful server still serves.
  EXPECT_EQ(RunShell("echo x > '" + mnt_ + "/still'").Describe(), RunShell("true").Describe());
}

}  // namespace
}  // namespace claimfs::it
