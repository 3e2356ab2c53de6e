// Issue 10's trust boundaries attacked through the real daemon: the holder's and the serving
// processes' sockets in <stateDir>/run, the run directory itself, and the holder's per-PV names.
// Whoever takes a volume's /dev/fuse connection answers the kernel for it: reads and forges
// every file of the claim.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "claimfs/handoff/fd_store.h"
#include "claimfs/handoff/holder_client.h"
#include "claimfs/handoff/holder_protocol.h"
#include "daemon/as_user.h"
#include "daemon/daemon_fixture.h"
#include "daemon/systemd_main.h"
#include "fs/mount_fixture.h"
#include "handoff/fake_systemd.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

constexpr Identity kStranger{4242, 4242, {}};

class AttackHandoff : public DaemonTest {
 protected:
  std::string run_dir() const { return data_dir() + "/state/run"; }
  std::vector<std::string> Sockets() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(run_dir(), ec)) {
      std::string name = e.path().filename().string();
      if (name == "hold.sock" || (name.starts_with("serve-") && name.ends_with(".sock"))) {
        out.push_back(e.path().string());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> HeldNames() {
    auto holder = handoff::HolderClient::Connect(run_dir());
    if (!holder.ok()) return {"(no holder: " + holder.status().message() + ")"};
    auto names = holder->List();
    if (!names.ok()) return {"(no list: " + names.status().message() + ")"};
    return *names;
  }
  // Fills a fake systemd's store with hostile fds, starts claimfsd under it, checks that none
  // was adopted or kept, creates a claim, stops; the daemon's log in *log_text.
  void StartUnderAHostileStore(std::string* log_text);
};

// Connects to a SOCK_SEQPACKET socket; "ok" or the errno name.
std::string ConnectTo(const std::string& path, int* out) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int rv = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  std::string result = Errno(rv);
  if (rv != 0 || out == nullptr) {
    close(fd);
  } else {
    *out = fd;
  }
  return result;
}

// What a peer answered to `request` ("closed", "fd!" if an fd came with it, or the bytes).
std::string Ask(int fd, const std::string& request) {
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
    return std::string("send: ") + (errno == EPIPE || errno == ECONNRESET ? "closed" : "error");
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[4096];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  iovec iov{buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) return "closed";
  if (n < 0) return std::string("recv: ") + strerror(errno);
  if (CMSG_FIRSTHDR(&msg) != nullptr) return "fd!";
  return "answered: " + std::string(buf, static_cast<size_t>(n));
}

std::string HolderRequest(handoff::Op op, const std::string& name) {
  handoff::Message m;
  m.op = op;
  m.name = name;
  return *handoff::EncodeMessage(m);
}

// A non-root user on the machine must not reach the holder or a serving process: the run
// directory is root's 0700 and the sockets 0600, and behind them SO_PEERCRED refuses anyway.
TEST_F(AttackHandoff, NonRootUserCannotConnectOrTalkToTheHolderOrAServer) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("victim", "16Mi"));
  const std::string pv = VolumeOf("victim");
  ASSERT_TRUE(WriteFile(MountPath("victim") + "/secret", "s3cret"));

  struct stat st;
  ASSERT_EQ(lstat(run_dir().c_str(), &st), 0) << strerror(errno);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  std::vector<std::string> sockets = Sockets();
  ASSERT_GE(sockets.size(), 2u) << "expected hold.sock and serve-<n>.sock in " << run_dir();
  for (const std::string& s : sockets) {
    ASSERT_EQ(lstat(s.c_str(), &st), 0) << s;
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << s;
    EXPECT_EQ(st.st_uid, 0u) << s;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << s;
    std::string r = RunAs(kStranger, [&] { return ConnectTo(s, nullptr); });
    EXPECT_EQ(r, "EACCES") << s;
  }

  // Now as if the modes had been opened up: the processes themselves must refuse.
  auto holders = HolderProcesses();
  auto servers = ServerProcesses();
  for (std::string dir = run_dir(); dir.size() >= base().size();
       dir = std::filesystem::path(dir).parent_path().string()) {
    ASSERT_EQ(chmod(dir.c_str(), 0711), 0) << dir;
  }
  for (const std::string& s : sockets) ASSERT_EQ(chmod(s.c_str(), 0666), 0) << s;
  for (const std::string& s : sockets) {
    SCOPED_TRACE(s);
    bool holder = s.ends_with("/hold.sock");
    std::vector<std::string> requests;
    if (holder) {
      requests = {HolderRequest(handoff::Op::kTake, "claimfs.1." + pv + ".conn"),
                  HolderRequest(handoff::Op::kList, ""),
                  HolderRequest(handoff::Op::kDropPrefix, "claimfs.1." + pv + "."),
                  HolderRequest(handoff::Op::kShutdown, "")};
    } else {
      requests = {R"({"op":"LIST"})", R"({"op":"UNMOUNT","volume":")" + pv + R"("})",
                  R"({"op":"RELEASE","volume":")" + pv + R"("})", R"({"op":"SHUTDOWN"})"};
    }
    for (const std::string& request : requests) {
      std::string r = RunAs(kStranger, [&] {
        int fd = -1;
        std::string connected = ConnectTo(s, &fd);
        if (connected != "ok") return "connect: " + connected;
        std::string answer = Ask(fd, request);
        close(fd);
        return answer;
      });
      EXPECT_TRUE(r == "closed" || r == "send: closed" || r.starts_with("connect: "))
          << "a stranger was answered: " << r;
    }
  }
  for (std::string dir = run_dir(); dir.size() >= base().size();
       dir = std::filesystem::path(dir).parent_path().string()) {
    ASSERT_EQ(chmod(dir.c_str(), 0700), 0) << dir;
  }
  // Nothing the stranger sent had an effect.
  EXPECT_EQ(HolderProcesses(), holders);
  EXPECT_EQ(ServerProcesses(), servers);
  EXPECT_EQ(ReadFile(MountPath("victim") + "/secret"), "s3cret");
  auto held = HeldNames();
  EXPECT_NE(std::find(held.begin(), held.end(), "claimfs.1." + pv + ".conn"), held.end())
      << ::testing::PrintToString(held);
}

// Root is trusted with the serve protocol, but a malformed request (a field of the wrong type, a
// truncated or deeply nested document) must cost at most its own connection, never the serving
// process and every volume it serves.
TEST_F(AttackHandoff, MalformedServeRequestsDoNotKillTheServingProcess) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("victim", "16Mi"));
  const std::string pv = VolumeOf("victim");
  ASSERT_TRUE(WriteFile(MountPath("victim") + "/f", "data"));
  auto servers = ServerProcesses();
  ASSERT_EQ(servers.size(), 1u);
  std::string serve_socket;
  for (const std::string& s : Sockets()) {
    if (!s.ends_with("/hold.sock")) serve_socket = s;
  }
  ASSERT_FALSE(serve_socket.empty());
  const std::vector<std::string> requests = {
      R"({"op":5})",
      R"({"op":null})",
      R"({"op":"UNMOUNT","volume":7})",
      R"({"op":"RELEASE","volume":["x"]})",
      R"({"op":"SET_CAPACITY","volume":")" + pv + R"(","bytes":-1})",
      R"({"op":"SET_CAPACITY","volume":")" + pv + R"(","bytes":"1Gi"})",
      R"({"op":"LIST","after":{}})",
      R"({"op":"LIST","only":1.5})",
      R"({"op":"MOUNT","request":7})",
      R"({"op":"ADOPT","request":{"volume":1}})",
      R"({"op":"MOUNT")",
      "[]",
      std::string(100000, '[') + std::string(100000, ']'),
      R"({"op":"LIST","after":")" + std::string(150000, 'a') + R"("})",
  };
  for (const std::string& request : requests) {
    SCOPED_TRACE(request.substr(0, 80));
    int fd = -1;
    ASSERT_EQ(ConnectTo(serve_socket, &fd), "ok");
    int sndbuf = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    std::string answer = Ask(fd, request);
    close(fd);
    EXPECT_EQ(ServerProcesses(), servers) << "the serving process died of: " << answer;
    if (ServerProcesses() != servers) break;
  }
  EXPECT_EQ(ReadFile(MountPath("victim") + "/f"), "data");
}

// A run directory another user made (before claimfsd's first start) could hold their sockets
// and lock files: the daemon refuses to start on it, saying which directory and why.
TEST_F(AttackHandoff, RunDirectoryOfAnotherUserStopsTheStartWithAClearError) {
  std::filesystem::create_directories(run_dir());
  ASSERT_EQ(chmod(data_dir().c_str(), 0700), 0);
  ASSERT_EQ(chmod((data_dir() + "/state").c_str(), 0700), 0);
  ASSERT_EQ(chown(run_dir().c_str(), kStranger.uid, kStranger.gid), 0);
  ASSERT_EQ(chmod(run_dir().c_str(), 0777), 0);
  EXPECT_FALSE(StartDaemon());
  std::string log = DaemonLog();
  EXPECT_NE(log.find("the run directory " + run_dir() + " is not a directory of ours"),
            std::string::npos)
      << log;
  EXPECT_TRUE(HolderProcesses().empty());
  EXPECT_TRUE(ServerProcesses().empty());
}

// What a crash (or someone with root) leaves at the socket and lock paths: a symlink is
// replaced, never followed; a fifo and a dead socket are replaced.
TEST_F(AttackHandoff, PlantedSocketPathsAreReplacedNeverFollowed) {
  std::filesystem::create_directories(run_dir());
  for (const std::string& d : {data_dir(), data_dir() + "/state", run_dir()}) {
    ASSERT_EQ(chmod(d.c_str(), 0700), 0);
  }
  const std::string target = base() + "/target";
  ASSERT_TRUE(WriteFile(target, "keep"));
  ASSERT_EQ(symlink(target.c_str(), (run_dir() + "/hold.sock").c_str()), 0);
  ASSERT_EQ(mkfifo((run_dir() + "/serve-0.sock").c_str(), 0600), 0);
  {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string dead = run_dir() + "/serve-1.sock";
    std::strncpy(addr.sun_path, dead.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(fd);
  }
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("one", "16Mi"));
  ASSERT_TRUE(WriteFile(MountPath("one") + "/f", "data"));
  EXPECT_EQ(ReadFile(MountPath("one") + "/f"), "data");
  struct stat st;
  ASSERT_EQ(lstat(target.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ReadFile(target), "keep");
  ASSERT_EQ(lstat((run_dir() + "/hold.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  ASSERT_EQ(lstat((run_dir() + "/serve-0.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_FALSE(HolderProcesses().empty());
}

// PV names are DNS subdomains: "a" and "a.b" are both PVs, and "claimfs.1.a." starts the names
// of both. Releasing a must leave a.b's connection and arena with the holder.
TEST_F(AttackHandoff, ReleasingPvADoesNotDropTheConnectionOfPvAB) {
  ASSERT_TRUE(StartDaemon());
  std::string yaml;
  for (const std::string& pv : {std::string("a"), std::string("a.b")}) {
    std::string claim = pv == "a" ? "claim-a" : "claim-ab";
    yaml += "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: " + pv +
            "\nspec:\n  storageClassName: manual\n  capacity:\n    storage: 16Mi\n"
            "  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n"
            "  hostPath:\n    path: " +
            base() + "/hp-" + claim +
            "\n---\n"
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: " +
            claim + "\nspec:\n  storageClassName: manual\n  volumeName: " + pv +
            "\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n"
            "      storage: 16Mi\n---\n";
  }
  CommandResult r = Apply(yaml);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  for (const char* claim : {"claim-a", "claim-ab"}) {
    ASSERT_TRUE(WaitFor([&] { return MountAt(MountPath(claim)).has_value(); }, 10s))
        << claim << ": " << ClaimPhase(claim) << "\n"
        << DescribeEvents("PersistentVolumeClaim", claim);
  }
  ASSERT_TRUE(WriteFile(MountPath("claim-ab") + "/f", "ab"));
  auto held = HeldNames();
  for (const char* name : {"claimfs.1.a.conn", "claimfs.1.a.b.conn", "claimfs.1.a.b.arena"}) {
    ASSERT_NE(std::find(held.begin(), held.end(), name), held.end())
        << name << " not in " << ::testing::PrintToString(held);
  }

  r = Claimctl({"delete", "pvc", "claim-a"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitFor([&] { return !MountAt(MountPath("claim-a")).has_value(); }, 10s));
  EXPECT_TRUE(WaitFor(
      [&] {
        held = HeldNames();
        return std::find(held.begin(), held.end(), "claimfs.1.a.conn") == held.end();
      },
      10s))
      << ::testing::PrintToString(held);
  held = HeldNames();
  for (const char* name : {"claimfs.1.a.b.conn", "claimfs.1.a.b.arena"}) {
    EXPECT_NE(std::find(held.begin(), held.end(), name), held.end())
        << name << " was dropped with PV a: " << ::testing::PrintToString(held);
  }
  EXPECT_EQ(ReadFile(MountPath("claim-ab") + "/f"), "ab");
}

// A PV name goes into fd names, the holder's protocol and the logs: one with a space, a newline,
// a slash, a colon or 254 characters never gets that far.
TEST_F(AttackHandoff, PvNamesThatWouldBreakFdNamesOrLogLinesAreRefused) {
  ASSERT_TRUE(StartDaemon());
  for (const std::string& name :
       {std::string("a b"), std::string("a\nclaimfsd: serve 9 volumes"), std::string("a/../b"),
        std::string("a:b"), std::string(".."), std::string(254, 'a')}) {
    SCOPED_TRACE(name);
    nlohmann::json pv = {{"apiVersion", "v1"},
                         {"kind", "PersistentVolume"},
                         {"metadata", {{"name", name}}},
                         {"spec",
                          {{"accessModes", {"ReadWriteOnce"}},
                           {"capacity", {{"storage", "16Mi"}}},
                           {"hostPath", {{"path", base() + "/never"}}}}}};
    HttpResult h = Http("POST", "/api/v1/persistentvolumes", pv.dump());
    EXPECT_GE(h.status, 400) << h.Describe();
    EXPECT_LT(h.status, 500) << h.Describe();
  }
  EXPECT_EQ(DaemonLog().find("serve 9 volumes"), std::string::npos) << DaemonLog();
}

// fds that come back from systemd's store under our names but are not what the names say, under
// names that are not ours, or twice under one name: none is adopted as a connection, none stays
// open in main, and each is said in the log.
void AttackHandoff::StartUnderAHostileStore(std::string* log_text) {
  const std::string dir = base() + "/systemd";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0) << strerror(errno);
  FakeSystemd systemd({.dir = dir, .notify_access = FakeSystemd::NotifyAccess::kAll});
  std::string error;
  ASSERT_TRUE(systemd.Start(&error)) << error;
  // A placeholder main; this test process fills the store (NotifyAccess=all).
  ASSERT_GT(systemd.StartMain({"/bin/sleep", "60"}), 0);
  ASSERT_EQ(setenv("NOTIFY_SOCKET", systemd.socket_path().c_str(), 1), 0);
  int fake_conn = memfd_create("claimfs-attack", MFD_CLOEXEC);
  int arena1 = memfd_create("claimfs-attack", MFD_CLOEXEC);
  int arena2 = memfd_create("claimfs-attack", MFD_CLOEXEC);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  // Not a pipe: systemd drops a stored fd that reports POLLHUP, as a pipe does once its writer
  // is gone, and the daemon would never see it.
  int foreign = memfd_create("claimfs-attack", MFD_CLOEXEC);
  EXPECT_TRUE(handoff::FdStorePush("claimfs.1.x.conn", fake_conn).ok());
  EXPECT_TRUE(handoff::FdStorePush("claimfs.1.y.conn", null).ok());
  EXPECT_TRUE(handoff::FdStorePush("not-ours", foreign).ok());
  EXPECT_TRUE(handoff::FdStorePush("claimfs.1.x.arena", arena1).ok());
  EXPECT_TRUE(handoff::FdStorePush("claimfs.1.x.arena", arena2).ok());
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(systemd.WaitForStore([](const std::vector<std::string>& names) {
    return names.size() == 5;
  })) << ::testing::PrintToString(systemd.StoredNames());
  for (int fd : {fake_conn, arena1, arena2, null, foreign}) close(fd);
  systemd.StopMain(FakeSystemd::Exit::kCrashRestarted);

  SystemdMain unit(&systemd, ClaimfsdBinary(), data_dir(), dir + "/claimfsd.log");
  ASSERT_TRUE(unit.Start()) << unit.Log();
  pid_t main_pid = systemd.main_pid();

  // Nothing of what systemd passed is left open in main.
  std::error_code ec;
  std::vector<std::string> kept;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(main_pid) + "/fd", ec)) {
    if (std::stoi(e.path().filename().string()) < 3) continue;
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (target.find("claimfs-attack") != std::string::npos || target.starts_with("pipe:") ||
        target == "/dev/null") {
      kept.push_back(e.path().filename().string() + " -> " + target);
    }
  }
  EXPECT_TRUE(kept.empty()) << ::testing::PrintToString(kept);
  auto held = HeldNames();
  for (const char* name : {"claimfs.1.x.conn", "claimfs.1.y.conn", "not-ours"}) {
    EXPECT_EQ(std::find(held.begin(), held.end(), name), held.end())
        << name << " adopted: " << ::testing::PrintToString(held);
  }
  std::string text = unit.Log();
  EXPECT_NE(text.find("claimfs.1.x.conn"), std::string::npos) << text;
  EXPECT_NE(text.find("claimfs.1.y.conn"), std::string::npos) << text;
  // A claim still mounts and serves.
  ASSERT_TRUE(CreateDynamicClaim("after", "16Mi")) << text;
  systemd.StopMain(FakeSystemd::Exit::kManualStop, 30s);
  *log_text = text;
}

TEST_F(AttackHandoff, HostileFdsFromSystemdsStoreAreNeverAdoptedNorKept) {
  std::string log;
  StartUnderAHostileStore(&log);
}

// An fd systemd hands back under a name that is not ours is closed, and the log says so.
TEST_F(AttackHandoff, FdsFromSystemdsStoreUnderForeignNamesAreLogged) {
  std::string log;
  StartUnderAHostileStore(&log);
  EXPECT_NE(log.find("not-ours"), std::string::npos) << log;
}

}  // namespace
}  // namespace claimfs::it
