// The holder role of the real claimfsd binary (`claimfsd hold`), through the real client.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <future>
#include <thread>
#include <vector>

#include "claimfs/handoff/bundle_name.h"
#include "claimfs/handoff/holder_client.h"
#include "claimfs/handoff/holder_protocol.h"

namespace claimfs::handoff {
namespace {

using namespace std::chrono_literals;

// Open fds of `pid` other than sockets (clients come and go; what is held must not).
int CountFds(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    char target[64] = {};
    std::string link = path + "/" + entry->d_name;
    ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n > 0 && std::strncmp(target, "socket:", 7) == 0) continue;
    ++count;
  }
  ::closedir(dir);
  return pid == ::getpid() ? count - 1 : count;
}

// CountFds(pid) once it equals `expected`, or after 5 s: a closed connection is handled by the
// holder after the close returns here.
int FdsOnceSettledAt(pid_t pid, int expected) {
  int count = CountFds(pid);
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       count != expected && std::chrono::steady_clock::now() < deadline; count = CountFds(pid)) {
    std::this_thread::sleep_for(10ms);
  }
  return count;
}

std::string ReadProc(pid_t pid, const char* what) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + what, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The field after the command in /proc/PID/stat: index 0 is the state.
std::vector<std::string> StatFields(pid_t pid) {
  std::string stat = ReadProc(pid, "stat");
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

UniqueFd MemfdWith(const std::string& text) {
  UniqueFd fd(::memfd_create("claimfs-arena", MFD_CLOEXEC));
  EXPECT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  return fd;
}

std::string ReadAllAt0(int fd) {
  char buf[256];
  ssize_t n = ::pread(fd, buf, sizeof(buf), 0);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

class HolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/claimfs-holder-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    base_ = dir;
    run_dir_ = base_ + "/run";
    launch_.binary_path = CLAIMFSD_BINARY;
    launch_.build_id = "test-build";
  }
  void TearDown() override {
    // Every holder this test started ends here, by its pid.
    for (const UniqueFd& pidfd : pidfds_) {
      ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
    }
    for (const UniqueFd& pidfd : pidfds_) WaitForExit(pidfd.get(), 5s);
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }

  HolderClient Ensure() {
    auto client = EnsureHolder(run_dir_, launch_);
    EXPECT_TRUE(client.ok()) << client.status().message();
    if (!client.ok()) std::abort();
    Track(client->hello().pid);
    return std::move(client).value();
  }
  // Watches `pid` with a pidfd (it is not our child: the double fork made it init's).
  int Track(pid_t pid) {
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] == pid) return pidfds_[i].get();
    }
    pids_.push_back(pid);
    pidfds_.emplace_back(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    EXPECT_TRUE(pidfds_.back().valid()) << std::strerror(errno);
    return pidfds_.back().get();
  }
  static bool WaitForExit(int pidfd, std::chrono::milliseconds timeout) {
    pollfd pfd{pidfd, POLLIN, 0};
    return ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1;
  }
  bool Exited(pid_t pid, std::chrono::milliseconds timeout) {
    return WaitForExit(Track(pid), timeout);
  }

  std::string base_;
  std::string run_dir_;
  HolderLaunch launch_;
  std::vector<pid_t> pids_;
  std::vector<UniqueFd> pidfds_;
};

TEST_F(HolderTest, EnsureHolderStartsADetachedHolderThatSaysItsRole) {
  // An fd the caller forgot to mark close-on-exec does not reach the holder.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd leaky_r(p[0]), leaky_w(p[1]);
  char leaky[64] = {};
  ASSERT_GT(::readlink(("/proc/self/fd/" + std::to_string(p[0])).c_str(), leaky, 63), 0);
  HolderClient client = Ensure();
  pid_t pid = client.hello().pid;
  EXPECT_EQ(client.hello().build_id, "test-build");
  EXPECT_EQ(client.hello().version, kHolderProtocolVersion);
  std::string cmdline = ReadProc(pid, "cmdline");
  while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
  EXPECT_EQ(cmdline, "claimfsd: hold");
  EXPECT_EQ(ReadProc(pid, "comm"), "claimfsd-hold\n");
  auto stat = StatFields(pid);
  ASSERT_GE(stat.size(), 4u);
  EXPECT_NE(std::stoi(stat[1]), ::getpid()) << "the holder is our child";
  EXPECT_EQ(std::stoi(stat[3]), pid) << "the holder leads no session of its own";
  struct stat st;
  ASSERT_EQ(::stat(HolderSocketPath(run_dir_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(run_dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // A second EnsureHolder finds the same one.
  EXPECT_EQ(Ensure().hello().pid, pid);
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    EXPECT_NE(std::filesystem::read_symlink(entry.path(), ec).string(), std::string(leaky))
        << "the holder inherited " << entry.path();
  }
}

TEST_F(HolderTest, EnsureHolderRunsTheBinaryFdItWasGiven) {
  UniqueFd binary(::open(CLAIMFSD_BINARY, O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(binary.valid());
  launch_.binary_fd = binary.get();
  launch_.binary_path = base_ + "/not-there";  // for messages only
  HolderClient client = Ensure();
  std::string cmdline = ReadProc(client.hello().pid, "cmdline");
  EXPECT_EQ(cmdline.substr(0, 14), "claimfsd: hold");
  // And a path that cannot run is reported as such.
  launch_.binary_fd = -1;
  std::string other_run = base_ + "/run2";
  auto failed = EnsureHolder(other_run, launch_);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("not-there"), std::string::npos)
      << failed.status().message();
}

TEST_F(HolderTest, FdsOutliveAKill9OfTheClientThatPutThem) {
  HolderClient first = Ensure();
  pid_t holder = first.hello().pid;
  int holder_fds = CountFds(holder);
  // The client that puts them is a separate process, killed -9 after its PUTs.
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto client = HolderClient::Connect(run_dir_);
    if (!client.ok()) ::_exit(2);
    UniqueFd arena = MemfdWith("records 1..100");
    UniqueFd conn(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
    if (!client->Put("claimfs.1.pvc-a.arena", arena.get()).ok()) ::_exit(3);
    if (conn.valid() && !client->Put("claimfs.1.pvc-a.conn", conn.get()).ok()) ::_exit(4);
    (void)!::write(ready[1], "k", 1);
    while (true) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the putting child failed";
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);

  auto second = HolderClient::Connect(run_dir_);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->hello().pid, holder);
  auto arena = second->Take("claimfs.1.pvc-a.arena");
  ASSERT_TRUE(arena.ok()) << arena.status().message();
  EXPECT_EQ(ReadAllAt0(arena->get()), "records 1..100");
  if (::access("/dev/fuse", R_OK | W_OK) == 0) {
    auto conn = second->Take("claimfs.1.pvc-a.conn");
    ASSERT_TRUE(conn.ok()) << conn.status().message();
    struct stat st;
    ASSERT_EQ(::fstat(conn->get(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode) && major(st.st_rdev) == 10 && minor(st.st_rdev) == 229);
  }
  // TAKE hands out a dup: the holder still has its own, and a second TAKE works.
  arena->reset();
  auto again = second->Take("claimfs.1.pvc-a.arena");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ReadAllAt0(again->get()), "records 1..100");
  auto names = second->List();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->front(), "claimfs.1.pvc-a.arena");
  auto dropped = second->DropPrefix("claimfs.1.pvc-a.");
  ASSERT_TRUE(dropped.ok()) << dropped.status().message();
  EXPECT_EQ(*dropped, names->size());
  EXPECT_EQ(CountFds(holder), holder_fds);
}

TEST_F(HolderTest, SurvivesTermIntHupAndEndsOnShutdown) {
  HolderClient client = Ensure();
  pid_t holder = client.hello().pid;
  UniqueFd arena = MemfdWith("kept");
  ASSERT_TRUE(client.Put("claimfs.1.pv.arena", arena.get()).ok());
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) {
    ASSERT_EQ(::kill(holder, sig), 0);
  }
  EXPECT_FALSE(Exited(holder, 300ms));
  auto taken = client.Take("claimfs.1.pv.arena");
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  EXPECT_EQ(ReadAllAt0(taken->get()), "kept");
  ASSERT_TRUE(client.Shutdown().ok());
  EXPECT_TRUE(Exited(holder, 5s));
  EXPECT_FALSE(std::filesystem::exists(HolderSocketPath(run_dir_)));
  // The holder closed its copy: ours is the last.
  EXPECT_EQ(ReadAllAt0(taken->get()), "kept");
}

TEST_F(HolderTest, ExitsWhenIdleButNotWhileItHoldsSomething) {
  launch_.idle_exit = 300ms;
  pid_t holder;
  {
    HolderClient client = Ensure();
    holder = client.hello().pid;
    UniqueFd arena = MemfdWith("x");
    ASSERT_TRUE(client.Put("claimfs.1.pv.arena", arena.get()).ok());
  }
  EXPECT_FALSE(Exited(holder, 1s)) << "exited while holding an fd";
  {
    auto client = HolderClient::Connect(run_dir_);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(client->Drop("claimfs.1.pv.arena").ok());
    EXPECT_FALSE(Exited(holder, 700ms)) << "exited while a client was connected";
  }
  EXPECT_TRUE(Exited(holder, 5s));
  // The next EnsureHolder starts a new one.
  EXPECT_NE(Ensure().hello().pid, holder);
}

TEST_F(HolderTest, ConcurrentEnsureHolderCallsEndWithOneHolder) {
  constexpr int kCallers = 6;
  std::vector<pid_t> seen(kCallers, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      auto client = EnsureHolder(run_dir_, launch_);
      if (client.ok()) seen[i] = client->hello().pid;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_NE(seen[i], 0);
    Track(seen[i]);
    EXPECT_EQ(seen[i], seen[0]);
  }
  // A holder started by hand for the same run dir refuses to run beside it.
  pid_t extra = ::fork();
  ASSERT_GE(extra, 0);
  if (extra == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDERR_FILENO);
    ::execl(CLAIMFSD_BINARY, "claimfsd", "hold", "--run-dir", run_dir_.c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(extra, &status, 0), extra);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status;
}

TEST_F(HolderTest, ListPagesThroughThousandsOfNamesAndFdCountsStayFlat) {
  HolderClient client = Ensure();
  pid_t holder = client.hello().pid;
  int holder_fds = CountFds(holder);
  int our_fds = CountFds(::getpid());
  UniqueFd arena = MemfdWith("a");
  constexpr int kVolumes = 3000;  // about 170 KB of names: three LIST pages
  std::vector<std::string> expected;
  for (int i = 0; i < kVolumes; ++i) {
    std::string pv = "pvc-" + std::to_string(100000 + i) + "-0123456789abcdef0123456789abcdef";
    expected.push_back(*ArenaName(pv));
    ASSERT_TRUE(client.Put(expected.back(), arena.get()).ok()) << i;
  }
  std::sort(expected.begin(), expected.end());
  auto names = client.List();
  ASSERT_TRUE(names.ok()) << names.status().message();
  EXPECT_EQ(*names, expected);
  EXPECT_EQ(CountFds(holder), holder_fds + kVolumes);
  for (int i = 0; i < kVolumes; i += 2) {
    auto taken = client.Take(expected[i]);
    ASSERT_TRUE(taken.ok());
  }
  for (const std::string& name : expected) ASSERT_TRUE(client.Drop(name).ok());
  EXPECT_EQ(CountFds(holder), holder_fds);
  arena.reset();
  EXPECT_EQ(CountFds(::getpid()), our_fds);
}

// Hostile requests on a raw connection: each gets an error that says what is wrong, no fd
// is kept or leaked, and the holder goes on serving.
TEST_F(HolderTest, RefusesHostileRequestsWithClearErrorsAndLeaksNoFd) {
  HolderClient client = Ensure();
  pid_t holder = client.hello().pid;
  UniqueFd good_arena = MemfdWith("good");
  ASSERT_TRUE(client.Put("claimfs.1.pv.arena", good_arena.get()).ok());
  int holder_fds = CountFds(holder);

  UniqueFd raw(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, HolderSocketPath(run_dir_).c_str());
  ASSERT_EQ(::connect(raw.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int sndbuf = 1 << 20;
  ::setsockopt(raw.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd pipe_r(p[0]), pipe_w(p[1]);
  UniqueFd memfd = MemfdWith("m");
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  auto header = [](uint16_t version, uint16_t op, uint32_t len, uint32_t reserved = 0) {
    WireHeader h{version, op, len, 0, reserved};
    return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
  };
  auto msg = [&](Op op, const std::string& name) {
    return header(1, static_cast<uint16_t>(op), static_cast<uint32_t>(name.size())) + name;
  };
  struct Case {
    const char* what;
    std::string bytes;
    std::vector<int> fds;
    int expected_errno;
    const char* says;
  };
  std::vector<Case> cases = {
      {"short message", "abc", {}, EBADMSG, "short message"},
      {"short with an fd", "abc", {memfd.get()}, EBADMSG, "short message"},
      {"name_len lies", header(1, 3, 40) + "claimfs.1.pv.arena", {}, EBADMSG, "header says"},
      {"oversized", header(1, 3, 70000) + std::string(70000, 'a'), {memfd.get()}, EMSGSIZE, "over"},
      {"reserved bits", header(1, 3, 1, 1) + "a", {}, EBADMSG, "reserved"},
      {"unknown op", header(1, 99, 0), {}, EBADMSG, "unknown op"},
      {"a reply sent as a request", header(1, 0x8000, 0), {}, EINVAL, "unknown op"},
      {"wrong version", header(2, 6, 0), {}, EPROTO, "speaks 1"},
      {"wrong version with an fd",
       header(0, 2, 18) + "claimfs.1.pv.arena",
       {memfd.get()},
       EPROTO,
       "version 0"},
      {"name with a slash",
       msg(Op::kTake, "claimfs.1.pv/../x.arena"),
       {},
       EINVAL,
       "not a DNS subdomain"},
      {"name with a NUL",
       msg(Op::kTake, std::string("claimfs.1.pv\0.arena", 19)),
       {},
       EBADMSG,
       "NUL"},
      {"name too long",
       msg(Op::kTake, "claimfs.1." + std::string(300, 'a') + ".conn"),
       {},
       EINVAL,
       "at most 255"},
      {"not a bundle name", msg(Op::kDrop, "hold.sock"), {}, EINVAL, "does not start with"},
      {"PUT without an fd", msg(Op::kPut, "claimfs.1.pv2.arena"), {}, EINVAL, "exactly one fd"},
      {"PUT with two fds",
       msg(Op::kPut, "claimfs.1.pv2.arena"),
       {memfd.get(), memfd.get()},
       ETOOMANYREFS,
       "more than 1"},
      {"PUT with 200 fds", msg(Op::kPut, "claimfs.1.pv2.arena"), std::vector<int>(200, memfd.get()),
       ETOOMANYREFS, "more than 1"},
      {"PUT a pipe as a connection",
       msg(Op::kPut, "claimfs.1.pv2.conn"),
       {pipe_r.get()},
       EINVAL,
       "not a /dev/fuse connection"},
      {"PUT /dev/null as a connection",
       msg(Op::kPut, "claimfs.1.pv2.conn"),
       {null.get()},
       EINVAL,
       "not a /dev/fuse connection"},
      {"PUT a pipe as an arena",
       msg(Op::kPut, "claimfs.1.pv2.arena"),
       {pipe_w.get()},
       EINVAL,
       "not a memfd"},
      {"PUT a held name",
       msg(Op::kPut, "claimfs.1.pv.arena"),
       {memfd.get()},
       EEXIST,
       "already held"},
      {"TAKE with an fd",
       msg(Op::kTake, "claimfs.1.pv.arena"),
       {memfd.get()},
       EINVAL,
       "carries no fds"},
      {"HELLO with an fd", msg(Op::kHello, "x"), {memfd.get()}, EINVAL, "carries no fds"},
      {"TAKE what is not held", msg(Op::kTake, "claimfs.1.nope.conn"), {}, ENOENT, "not held"},
      {"DROP what is not held", msg(Op::kDrop, "claimfs.1.nope.conn"), {}, ENOENT, "not held"},
      {"DROP_PREFIX of everything", msg(Op::kDropPrefix, ""), {}, EINVAL, "empty"},
      {"DROP_PREFIX claimfs.1.",
       msg(Op::kDropPrefix, "claimfs.1."),
       {},
       EINVAL,
       "is not claimfs.1.<pv>."},
      {"DROP_PREFIX claimfs.1.p",
       msg(Op::kDropPrefix, "claimfs.1.p"),
       {},
       EINVAL,
       "is not claimfs.1.<pv>."},
      {"LIST from a bad cursor", msg(Op::kList, "a:b"), {}, EINVAL, "systemd does not allow"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Message request;
    std::vector<int> fds = c.fds;
    iovec iov{const_cast<char*>(c.bytes.data()), c.bytes.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (!fds.empty()) {
      m.msg_control = control.data();
      m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* cm = CMSG_FIRSTHDR(&m);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
    }
    ASSERT_GE(::sendmsg(raw.get(), &m, MSG_NOSIGNAL), 0) << std::strerror(errno);
    Message reply;
    std::string problem;
    ASSERT_EQ(ReceiveMessage(raw.get(), &reply, &problem), 0) << problem;
    EXPECT_EQ(reply.op, Op::kReply);
    EXPECT_EQ(reply.result, c.expected_errno) << reply.name;
    EXPECT_NE(reply.name.find(c.says), std::string::npos) << reply.name;
    EXPECT_TRUE(reply.fds.empty());
    EXPECT_EQ(CountFds(holder), holder_fds);
  }
  // Still serving, on the same connection and on the client's.
  Message list;
  list.op = Op::kList;
  ASSERT_EQ(SendMessage(raw.get(), list), 0);
  Message reply;
  ASSERT_EQ(ReceiveMessage(raw.get(), &reply), 0);
  EXPECT_EQ(reply.name, "claimfs.1.pv.arena\n");
  auto taken = client.Take("claimfs.1.pv.arena");
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(ReadAllAt0(taken->get()), "good");

  // The client refuses to send what the holder would refuse.
  Status s = client.Put("claimfs.1.pv3.conn", pipe_r.get());
  EXPECT_EQ(s.code(), StatusCode::kInvalid) << s.message();
  // A peer that closes mid-conversation costs nothing, once the holder has seen it go.
  raw.reset();
  EXPECT_EQ(FdsOnceSettledAt(holder, holder_fds), holder_fds);
}

// PV names are DNS subdomains, so "a" and "a.b" are both PVs, and "claimfs.1.a." is a prefix of
// a.b's names too: deleting (or mounting again) PV a must not close a.b's connection.
TEST_F(HolderTest, DropPrefixOfAPvLeavesAPvWhoseNameItPrefixes) {
  HolderClient client = Ensure();
  UniqueFd memfd = MemfdWith("x");
  char orphan_template[] = "/tmp/claimfs-orphan-XXXXXX";
  UniqueFd orphan(::mkstemp(orphan_template));
  ASSERT_TRUE(orphan.valid());
  ::unlink(orphan_template);
  for (const char* name : {"claimfs.1.a.arena", "claimfs.1.a.orphan.1.1", "claimfs.1.a.b.arena",
                           "claimfs.1.a.b.orphan.2.3", "claimfs.1.a.orphan.arena",
                           "claimfs.1.a.b.c.arena", "claimfs.1.a-b.arena", "claimfs.1.ab.arena"}) {
    std::string_view n = name;
    int fd = n.find(".orphan.") != std::string_view::npos && !n.ends_with(".arena") ? orphan.get()
                                                                                    : memfd.get();
    ASSERT_TRUE(client.Put(name, fd).ok()) << name;
  }
  auto dropped = client.DropPrefix("claimfs.1.a.");
  ASSERT_TRUE(dropped.ok()) << dropped.status().message();
  EXPECT_EQ(*dropped, 2u);
  auto names = client.List();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"claimfs.1.a-b.arena", "claimfs.1.a.b.arena",
                                              "claimfs.1.a.b.c.arena", "claimfs.1.a.b.orphan.2.3",
                                              "claimfs.1.a.orphan.arena", "claimfs.1.ab.arena"}));
  dropped = client.DropPrefix("claimfs.1.a.b.");
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 2u);
  names = client.List();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"claimfs.1.a-b.arena", "claimfs.1.a.b.c.arena",
                                              "claimfs.1.a.orphan.arena", "claimfs.1.ab.arena"}));
}

// A run directory made by another user: EnsureHolder says so at once, rather than start a
// holder that refuses the directory and wait out start_timeout for it.
TEST_F(HolderTest, EnsureHolderRefusesARunDirectoryOfAnotherUserAtOnce) {
  ASSERT_EQ(::mkdir(run_dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chown(run_dir_.c_str(), 4242, 4242), 0);
  HolderLaunch quick = launch_;
  quick.start_timeout = 3s;
  auto started = std::chrono::steady_clock::now();
  auto client = EnsureHolder(run_dir_, quick);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kForbidden) << client.status().message();
  EXPECT_NE(client.status().message().find("owned by uid 4242"), std::string::npos)
      << client.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
}

// spawn.lock or hold.lock planted by another user (while the run directory was open to them)
// would let them hold the lock, so that no holder ever starts: refused by name. A fifo or a
// symlink there is refused too, never followed or blocked on.
TEST_F(HolderTest, LockFilesThatAreNotOursAreRefused) {
  ASSERT_EQ(::mkdir(run_dir_.c_str(), 0700), 0);
  const std::string spawn_lock = run_dir_ + "/spawn.lock";
  const std::string hold_lock = run_dir_ + "/hold.lock";
  HolderLaunch quick = launch_;
  quick.start_timeout = 3s;

  auto plant = [](const std::string& path, const char* kind) {
    std::string what = kind;
    if (what == "foreign") {
      UniqueFd fd(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
      ASSERT_TRUE(fd.valid());
      ASSERT_EQ(::fchown(fd.get(), 4242, 4242), 0);
    } else if (what == "fifo") {
      ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    } else if (what == "hardlink") {
      std::string other = path + ".other";
      UniqueFd fd(::open(other.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
      ASSERT_TRUE(fd.valid());
      ASSERT_EQ(::link(other.c_str(), path.c_str()), 0);
    } else {
      ASSERT_EQ(::symlink("/tmp/claimfs-attack-target", path.c_str()), 0);
    }
  };
  for (const char* kind : {"foreign", "fifo", "hardlink", "symlink"}) {
    SCOPED_TRACE(kind);
    plant(spawn_lock, kind);
    auto client = EnsureHolder(run_dir_, quick);
    ASSERT_FALSE(client.ok());
    EXPECT_NE(client.status().message().find("spawn.lock"), std::string::npos)
        << client.status().message();
    EXPECT_NE(client.status().code(), StatusCode::kUnavailable) << client.status().message();
    ASSERT_EQ(::unlink(spawn_lock.c_str()), 0);
    ::unlink((spawn_lock + ".other").c_str());
    EXPECT_NE(::access("/tmp/claimfs-attack-target", F_OK), 0);

    // The holder itself, run as claimfsd runs it: it must not start on that hold.lock.
    plant(hold_lock, kind);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDERR_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::execl(CLAIMFSD_BINARY, "claimfsd", "hold", "--run-dir", run_dir_.c_str(), "--idle-exit-ms",
              "300", nullptr);
      ::_exit(127);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1) << "the holder ran on a hold.lock that is not its own";
    ASSERT_EQ(::unlink(hold_lock.c_str()), 0);
    ::unlink((hold_lock + ".other").c_str());
    EXPECT_NE(::access("/tmp/claimfs-attack-target", F_OK), 0);
  }
  // With the planted files gone, a holder starts as usual.
  HolderClient client = Ensure();
  EXPECT_TRUE(client.Shutdown().ok());
}

// Another user's process listening on hold.sock (planted while the run directory was open to
// them): the client refuses to talk to it, and EnsureHolder starts a real holder over it
// rather than leave every volume without one.
TEST_F(HolderTest, EnsureHolderReplacesAnImpostorOnHoldSock) {
  ASSERT_EQ(::mkdir(run_dir_.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(run_dir_.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(base_.c_str(), 0711), 0);
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  pid_t impostor = ::fork();
  ASSERT_GE(impostor, 0);
  if (impostor == 0) {
    if (::setgid(4242) != 0 || ::setuid(4242) != 0) ::_exit(10);
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, HolderSocketPath(run_dir_).c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 8) != 0)
      ::_exit(11);
    (void)!::write(ready[1], "r", 1);
    while (true) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the impostor could not listen";
  ::close(ready[0]);
  ASSERT_EQ(::chmod(run_dir_.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(base_.c_str(), 0700), 0);

  auto direct = HolderClient::Connect(run_dir_);
  EXPECT_EQ(direct.status().code(), StatusCode::kForbidden) << direct.status().message();
  HolderLaunch quick = launch_;
  quick.start_timeout = 3s;
  auto client = EnsureHolder(run_dir_, quick);
  ::kill(impostor, SIGKILL);
  ::waitpid(impostor, nullptr, 0);
  ASSERT_TRUE(client.ok()) << client.status().message();
  Track(client->hello().pid);
  EXPECT_NE(client->hello().pid, impostor);
  EXPECT_EQ(client->hello().build_id, "test-build");
  EXPECT_TRUE(client->Shutdown().ok());
}

// An impostor that listens and never accepts: once its backlog is full, a blocking connect
// would wait for ever, and EnsureHolder with it (seen under the sanitizers, where the holder
// took long enough to start for the retries to fill the backlog).
TEST_F(HolderTest, AListenerThatNeverAcceptsDoesNotHoldUpAConnect) {
  ASSERT_EQ(::mkdir(run_dir_.c_str(), 0700), 0);
  UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, HolderSocketPath(run_dir_).c_str());
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener.get(), 0), 0);
  std::vector<UniqueFd> queued;  // fill the backlog
  for (int i = 0; i < 4; ++i) {
    UniqueFd c(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      queued.push_back(std::move(c));
    }
  }
  ASSERT_FALSE(queued.empty());
  auto connecting = std::async(std::launch::async, [&] { return HolderClient::Connect(run_dir_); });
  if (connecting.wait_for(10s) != std::future_status::ready) {
    listener.reset();  // wakes the blocked connect
    ADD_FAILURE() << "Connect waits for a listener that never accepts";
  }
  auto client = connecting.get();
  EXPECT_EQ(client.status().code(), StatusCode::kUnavailable) << client.status().message();
}

TEST_F(HolderTest, RefusesAPeerOfAnotherUid) {
  HolderClient client = Ensure();
  pid_t holder = client.hello().pid;
  // Open the path for the test; SO_PEERCRED is what must refuse the stranger.
  ASSERT_EQ(::chmod(base_.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(run_dir_.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(HolderSocketPath(run_dir_).c_str(), 0666), 0);
  int holder_fds = CountFds(holder);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    auto stranger = HolderClient::Connect(run_dir_);
    if (stranger.ok()) ::_exit(1);
    ::_exit(stranger.status().code() == StatusCode::kUnavailable ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_NE(WEXITSTATUS(status), 10) << "cannot become nobody";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a stranger was served";
  EXPECT_EQ(CountFds(holder), holder_fds);
  // The holder refuses a run directory others may write to.
  ASSERT_TRUE(client.Shutdown().ok());
  ASSERT_TRUE(Exited(holder, 5s));
  ASSERT_EQ(::chmod(run_dir_.c_str(), 0777), 0);
  auto refused = EnsureHolder(run_dir_, [&] {
    HolderLaunch quick = launch_;
    quick.start_timeout = 2s;
    return quick;
  }());
  EXPECT_FALSE(refused.ok());
}

}  // namespace
}  // namespace claimfs::handoff
