// The fd store client (src/handoff/fd_store.*) against the notify-socket double, and the
// double's own rules: what a crash restart keeps, what a manual restart flushes on 252.
#include "handoff/fake_systemd.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using Exit = FakeSystemd::Exit;

int CountOpenFds() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;
}

class FakeSystemdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/claimfs-fake-systemd-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    systemd_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  FakeSystemd& Systemd(FakeSystemd::Options options = {}) {
    options.dir = dir_;
    systemd_ = std::make_unique<FakeSystemd>(options);
    std::string error;
    EXPECT_TRUE(systemd_->Start(&error)) << error;
    return *systemd_;
  }

  // Starts the child program as main; waits for its "done" line (its messages are sent).
  pid_t StartChild(const std::vector<std::string>& args) {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    std::vector<std::string> argv = {FD_STORE_CHILD};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_t pid = systemd_->StartMain(argv, {}, p[1]);
    ::close(p[1]);
    output_ = ReadAll(p[0]);
    ::close(p[0]);
    return pid;
  }

  // Runs the child in "read" mode to its end; returns its output.
  std::string ReadBack() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    pid_t pid = systemd_->StartMain({FD_STORE_CHILD, "read"}, {}, p[1]);
    ::close(p[1]);
    std::string out = ReadAll(p[0]);
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    systemd_->MainExited(Exit::kCrashRestarted);  // keeps the store for the next check
    return out;
  }

  // Until "done\n" or EOF, at most 10 s.
  static std::string ReadAll(int fd) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char buf[512];
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
      if (out.ends_with("done\n")) break;
    }
    return out;
  }

  std::string dir_;
  std::unique_ptr<FakeSystemd> systemd_;
  std::string output_;
};

// Runs fd_store_child read-fds with `count` memfds at fd 3.. and `env` as LISTEN_* (where
// "PID" in a value is the child's pid); its output.
std::string ReadFdsWith(int count, const std::vector<std::string>& env) {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], STDOUT_FILENO);
    std::vector<int> memfds;
    for (int i = 0; i < count; ++i) {
      int fd = ::memfd_create("listen-fd", MFD_CLOEXEC);
      memfds.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
    }
    for (int i = 0; i < count; ++i) ::dup2(memfds[i], 3 + i);  // not close-on-exec
    for (int fd = 3 + count; fd < 16; ++fd) ::close(fd);
    for (const std::string& e : env) {
      std::string entry = e;
      if (size_t at = entry.find("PID", entry.find('=')); at != std::string::npos) {
        entry.replace(at, 3, std::to_string(::getpid()));
      }
      ::putenv(::strdup(entry.c_str()));
    }
    ::execl(FD_STORE_CHILD, FD_STORE_CHILD, "read-fds", nullptr);
    ::_exit(127);
  }
  ::close(p[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

// LISTEN_FDNAMES that does not name every fd (or names more) makes sd_listen_fds_with_names
// fail: the fds systemd passed must then be closed, not left open unnamed in main forever.
TEST(ListenFds, HostileNamesAreRefusedAndTheirFdsClosed) {
  struct Case {
    const char* what;
    int count;
    std::vector<std::string> env;
    bool refused;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"names match",
       2,
       {"LISTEN_PID=PID", "LISTEN_FDS=2", "LISTEN_FDNAMES=claimfs.1.a.conn:claimfs.1.a.arena"},
       false,
       "claimfs.1.a.conn claimfs.1.a.arena | open: 3 4\n"},
      {"more fds than names",
       3,
       {"LISTEN_PID=PID", "LISTEN_FDS=3", "LISTEN_FDNAMES=claimfs.1.a.conn"},
       true,
       "| open:\n"},
      {"more names than fds",
       1,
       {"LISTEN_PID=PID", "LISTEN_FDS=1", "LISTEN_FDNAMES=a:b:c"},
       true,
       "| open:\n"},
      // Not ours: left as they are (another process's business), never taken.
      {"another process's LISTEN_PID",
       2,
       {"LISTEN_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=claimfs.1.a.conn:claimfs.1.a.arena"},
       false,
       "| open: 3 4\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::string out = ReadFdsWith(c.count, c.env);
    EXPECT_TRUE(out.ends_with(c.expected)) << out;
    EXPECT_EQ(out.starts_with("error: "), c.refused) << out;
  }
}

TEST_F(FakeSystemdTest, StoredMemfdComesBackByNameAfterACrashRestart) {
  int fds_before = CountOpenFds();
  FakeSystemd& systemd = Systemd();
  pid_t first = StartChild({"store", "claimfs.1.pvc-1.arena", "arena bytes"});
  ASSERT_EQ(output_, "done\n");
  ASSERT_TRUE(systemd.WaitForStore([](auto& names) { return names.size() == 1; }));
  // The message came with the sender's credentials, from the main pid.
  auto notes = systemd.Notifications();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].pid, first);
  EXPECT_EQ(notes[0].uid, ::getuid());
  EXPECT_TRUE(notes[0].accepted);
  EXPECT_EQ(notes[0].fds, 1u);
  EXPECT_EQ(notes[0].Get("FDNAME"), "claimfs.1.pvc-1.arena");

  systemd.StopMain(Exit::kCrashRestarted);  // kill -9, Restart=on-failure
  EXPECT_EQ(systemd.StoredNames(), std::vector<std::string>{"claimfs.1.pvc-1.arena"});
  EXPECT_EQ(ReadBack(), "claimfs.1.pvc-1.arena=arena bytes\nenv=unset\n");
  systemd_.reset();
  EXPECT_EQ(CountOpenFds(), fds_before);
}

TEST_F(FakeSystemdTest, PipeWithBothEndsStoredKeepsItsData) {
  FakeSystemd& systemd = Systemd();
  StartChild({"pipe", "p", "through a pipe"});
  ASSERT_TRUE(systemd.WaitForStore([](auto& names) { return names.size() == 2; }));
  systemd.StopMain(Exit::kCrashRestarted);
  std::string out = ReadBack();
  EXPECT_NE(out.find("p.r=through a pipe\n"), std::string::npos) << out;
  EXPECT_NE(out.find("p.w=\n"), std::string::npos) << out;
  // Newest first, as systemd passes them.
  EXPECT_EQ(systemd.StoredNames(), (std::vector<std::string>{"p.w", "p.r"}));
}

// systemd polls stored fds: a pipe end whose peer is gone hangs up and is dropped.
TEST_F(FakeSystemdTest, StoredFdThatHangsUpIsDropped) {
  FakeSystemd& systemd = Systemd();
  StartChild({"pipe-read", "lonely"});
  EXPECT_TRUE(systemd.WaitForStore([](auto& names) { return names.empty(); }, 5s))
      << "still stored: " << systemd.StoredNames().size();
}

TEST_F(FakeSystemdTest, ManualRestartFlushesTheStoreOn252AndPreserveKeepsIt) {
  {
    FakeSystemd& systemd = Systemd();
    StartChild({"store", "a", "x"});
    ASSERT_TRUE(systemd.WaitForStore([](auto& names) { return names.size() == 1; }));
    systemd.StopMain(Exit::kManualRestart);
    EXPECT_TRUE(systemd.StoredNames().empty());
    EXPECT_EQ(ReadBack(), "env=unset\n");
  }
  for (Exit how : {Exit::kManualRestart, Exit::kManualStop}) {
    FakeSystemd::Options preserve;
    preserve.preserve_store = true;
    FakeSystemd& systemd = Systemd(preserve);
    StartChild({"store", "a", "x"});
    ASSERT_TRUE(systemd.WaitForStore([](auto& names) { return names.size() == 1; }));
    systemd.StopMain(how);
    EXPECT_EQ(ReadBack(), "a=x\nenv=unset\n");
  }
}

TEST_F(FakeSystemdTest, RemoveByNameClosesTheStoredFd) {
  FakeSystemd& systemd = Systemd();
  StartChild({"store", "claimfs.1.pv.conn", "x"});
  ASSERT_TRUE(systemd.WaitForStore([](auto& names) { return names.size() == 1; }));
  int dup = systemd.DupStored("claimfs.1.pv.conn");
  ASSERT_GE(dup, 0);
  systemd.StopMain(Exit::kCrashRestarted);
  StartChild({"remove", "claimfs.1.pv.conn"});
  EXPECT_TRUE(systemd.WaitForStore([](auto& names) { return names.empty(); }));
  ::close(dup);
}

// The datagram protocol itself, sent by hand: what systemd accepts and what it ignores.
class RawNotify : public FakeSystemdTest {
 protected:
  // Sends `text` with `fds` to the notify socket from this process (or a forked child).
  void Send(const std::string& text, const std::vector<int>& fds = {}) {
    int s = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, systemd_->socket_path().c_str());
    iovec iov{const_cast<char*>(text.data()), text.size()};
    msghdr msg{};
    msg.msg_name = &addr;
    msg.msg_namelen = sizeof(addr);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
    if (!fds.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    EXPECT_GE(::sendmsg(s, &msg, 0), 0) << std::strerror(errno);
    ::close(s);
  }
  size_t Settle() {
    // One marker message; once it is seen, everything before it was handled.
    size_t before = systemd_->Notifications().size();
    Send("X_MARKER=" + std::to_string(before));
    std::string marker = "X_MARKER=" + std::to_string(before);
    EXPECT_TRUE(systemd_->WaitForNotification([&](auto& n) { return n.Has(marker); }));
    return systemd_->Notifications().size();
  }
};

TEST_F(RawNotify, StateLinesAndNameRules) {
  FakeSystemd::Options options;
  options.notify_access = FakeSystemd::NotifyAccess::kAll;  // this test process sends
  options.fd_store_max = 3;
  FakeSystemd& systemd = Systemd(options);
  int fds_before = CountOpenFds();
  int m1 = ::memfd_create("m1", MFD_CLOEXEC);
  int m2 = ::memfd_create("m2", MFD_CLOEXEC);
  int m3 = ::memfd_create("m3", MFD_CLOEXEC);
  int m4 = ::memfd_create("m4", MFD_CLOEXEC);

  Send("READY=1\nSTATUS=serving 3 volumes");
  Settle();
  EXPECT_TRUE(systemd.ready());
  EXPECT_EQ(systemd.status(), "serving 3 volumes");
  Send("RELOADING=1");
  Settle();
  EXPECT_FALSE(systemd.ready());

  Send("FDSTORE=1\nFDNAME=bad:name", {m1});  // invalid name: stored as "stored"
  Send("FDSTORE=1", {m2});                   // no name: "stored"
  Send("FDSTORE=1\nFDNAME=" + std::string(256, 'n'), {m3});
  Send("FDSTORE=1\nFDNAME=dup", {m1});   // the same open file as a stored one: dropped
  Send("FDNAME=no-store", {m4});         // fds without FDSTORE=1: closed
  Send("FDSTORE=1\nFDNAME=over", {m4});  // past FileDescriptorStoreMax=3: closed
  Settle();
  EXPECT_EQ(systemd.StoredNames(), (std::vector<std::string>{"stored", "stored", "stored"}));
  Send("FDSTOREREMOVE=1\nFDNAME=bad:name");  // invalid: nothing removed
  Send("FDSTOREREMOVE=1");                   // no name: nothing removed
  Settle();
  EXPECT_EQ(systemd.StoredNames().size(), 3u);
  Send("FDSTOREREMOVE=1\nFDNAME=stored");
  Settle();
  EXPECT_TRUE(systemd.StoredNames().empty());
  // A NUL byte makes the message void, its fds closed.
  Send(std::string("FDSTORE=1\nFDNAME=a\0b", 21), {m2});
  Settle();
  EXPECT_TRUE(systemd.StoredNames().empty());
  for (int fd : {m1, m2, m3, m4}) ::close(fd);
  EXPECT_EQ(CountOpenFds(), fds_before);
  auto notes = systemd.Notifications();
  bool nul_refused = false;
  for (auto& n : notes) nul_refused = nul_refused || (n.fds == 1 && !n.accepted);
  EXPECT_TRUE(nul_refused);
}

TEST_F(RawNotify, OnlyTheMainPidIsHeardUnlessNotifyAccessAll) {
  FakeSystemd& systemd = Systemd();  // NotifyAccess=main
  int fds_before = CountOpenFds();
  int m = ::memfd_create("m", MFD_CLOEXEC);
  Send("FDSTORE=1\nFDNAME=from-a-stranger\nSTATUS=hijacked", {m});  // main pid is not us
  ::close(m);
  Send("X_SYNC=1");
  ASSERT_TRUE(systemd.WaitForNotification([](auto& n) { return n.Has("X_SYNC=1"); }));
  EXPECT_TRUE(systemd.StoredNames().empty());
  EXPECT_EQ(systemd.status(), "");
  for (auto& n : systemd.Notifications()) EXPECT_FALSE(n.accepted);
  EXPECT_EQ(CountOpenFds(), fds_before);
  // The main process is heard.
  pid_t pid = StartChild({"store", "x", "y"});
  ASSERT_TRUE(systemd.WaitForStore([](auto& names) { return names.size() == 1; }));
  EXPECT_EQ(systemd.main_pid(), pid);
}

TEST_F(RawNotify, OversizedMessageIsIgnored) {
  FakeSystemd::Options options;
  options.notify_access = FakeSystemd::NotifyAccess::kAll;
  FakeSystemd& systemd = Systemd(options);
  int m = ::memfd_create("m", MFD_CLOEXEC);
  Send("FDSTORE=1\nFDNAME=big\nSTATUS=" + std::string(5000, 's'), {m});
  ::close(m);
  Settle();
  EXPECT_TRUE(systemd.StoredNames().empty());
}

}  // namespace
}  // namespace claimfs::it
