#include "claimfs/handoff/holder_client.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "claimfs/handoff/bundle_name.h"
#include "claimfs/handoff/holder_protocol.h"

extern char** environ;

namespace claimfs::handoff {
namespace {

using Clock = std::chrono::steady_clock;

Status ReplyStatus(Op op, std::string_view name, const Message& reply) {
  if (reply.result == 0) return Status::Ok();
  std::string text = "holder: " + std::string(OpName(op)) +
                     (name.empty() ? "" : " " + std::string(name)) + ": " + reply.name;
  switch (reply.result) {
    case ENOENT:
      return Status::NotFound(std::move(text));
    case EEXIST:
      return Status::AlreadyExists(std::move(text));
    case EINVAL:
    case EBADMSG:
    case EMSGSIZE:
    case ETOOMANYREFS:
      return Status::Invalid(std::move(text));
    case EPROTO:
      return Status::Unavailable(std::move(text));
    default:
      return Status::IOError(std::move(text));
  }
}

}  // namespace

Status CheckRunDirectory(const std::string& run_dir) {
  struct stat st;
  if (::lstat(run_dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::FromErrno("cannot stat run directory " + run_dir, errno);
    if (::mkdir(run_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::FromErrno("cannot create run directory " + run_dir, errno);
    }
    if (::lstat(run_dir.c_str(), &st) != 0) {
      return Status::FromErrno("cannot stat run directory " + run_dir, errno);
    }
  }
  if (!S_ISDIR(st.st_mode))
    return Status::Invalid("run directory " + run_dir + " is not a directory");
  if (st.st_uid != ::geteuid()) {
    return Status::Forbidden("run directory " + run_dir + " is owned by uid " +
                             std::to_string(st.st_uid) + ", not by us");
  }
  if (st.st_mode & 022) {
    return Status::Forbidden("run directory " + run_dir + " is writable by others");
  }
  return Status::Ok();
}

Result<UniqueFd> OpenLockFile(const std::string& path) {
  // O_NONBLOCK: a fifo planted at the path must not block the open.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
  if (!fd.valid()) return Status::FromErrno("cannot open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("cannot stat " + path, errno);
  // Someone else's file (or a second name of one) would let its owner hold the lock forever.
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || st.st_nlink != 1) {
    return Status::Forbidden("lock file " + path + " is not a regular file of ours (uid " +
                             std::to_string(st.st_uid) + ", " + std::to_string(st.st_nlink) +
                             " link(s)); remove it");
  }
  return fd;
}

std::string HolderSocketPath(std::string_view run_dir) {
  return std::string(run_dir) + "/hold.sock";
}

struct HolderClient::Reply {
  Message message;
};

Result<HolderClient> HolderClient::Connect(std::string_view run_dir, std::string_view build_id) {
  std::string path = HolderSocketPath(run_dir);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::Invalid("socket path " + path + " is too long for a Unix socket");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // Non-blocking while connecting: a listener that never accepts (an impostor's) would keep a
  // blocking connect waiting for ever once its backlog is full.
  UniqueFd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket.valid()) return Status::FromErrno("cannot create a socket", errno);
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return Status::Unavailable("no holder answers on " + path);
    }
    if (err == EAGAIN) {
      return Status::Unavailable("nobody accepts connections on " + path);
    }
    return Status::FromErrno("cannot connect to " + path, err);
  }
  int flags = ::fcntl(socket.get(), F_GETFL);
  if (flags < 0 || ::fcntl(socket.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return Status::FromErrno("cannot make the connection to " + path + " blocking", errno);
  }
  auto peer = GetPeerCredentials(socket.get());
  if (!peer.ok()) return peer.status();
  if (!TrustedPeer(*peer)) {
    return Status::Forbidden("the process on " + path + " runs as uid " +
                             std::to_string(peer->uid) + ", neither root nor us");
  }
  HolderClient client(std::move(socket));
  Reply reply;
  Status s = client.Call(static_cast<int>(Op::kHello), build_id, -1, &reply);
  if (!s.ok()) return s;
  client.hello_.version = reply.message.version;
  client.hello_.build_id = reply.message.name;
  client.hello_.pid = peer->pid;
  return client;
}

Status HolderClient::Call(int op, std::string_view name, int fd, Reply* reply) {
  if (!socket_.valid()) return Status::Unavailable("holder connection is closed");
  Message request;
  request.op = static_cast<Op>(op);
  request.name = std::string(name);
  std::vector<int> fds;
  if (fd >= 0) fds.push_back(fd);
  int rv = SendMessage(socket_.get(), request, fds);
  if (rv == -EPIPE || rv == -ECONNRESET) {
    socket_.reset();
    return Status::Unavailable("the holder closed the connection");
  }
  if (rv < 0) {
    socket_.reset();
    return Status::FromErrno("cannot send " + std::string(OpName(request.op)) + " to the holder",
                             -rv);
  }
  std::string problem;
  rv = ReceiveMessage(socket_.get(), &reply->message, &problem);
  if (rv < 0) {
    socket_.reset();
    if (rv == -ECONNRESET) return Status::Unavailable("the holder closed the connection");
    return Status::IOError("bad reply from the holder: " +
                           (problem.empty() ? std::string(std::strerror(-rv)) : problem));
  }
  if (reply->message.op != Op::kReply) {
    socket_.reset();
    return Status::IOError("the holder sent something that is not a reply");
  }
  return ReplyStatus(request.op, name, reply->message);
}

Status HolderClient::Put(std::string_view name, int fd) {
  Status s = CheckFdMatchesName(name, fd);
  if (!s.ok()) return s;
  Reply reply;
  return Call(static_cast<int>(Op::kPut), name, fd, &reply);
}

Result<UniqueFd> HolderClient::Take(std::string_view name) {
  Reply reply;
  Status s = Call(static_cast<int>(Op::kTake), name, -1, &reply);
  if (!s.ok()) return s;
  if (reply.message.fds.size() != 1) {
    return Status::IOError("holder: TAKE " + std::string(name) + " came back without an fd");
  }
  return std::move(reply.message.fds[0]);
}

Status HolderClient::Drop(std::string_view name) {
  Reply reply;
  return Call(static_cast<int>(Op::kDrop), name, -1, &reply);
}

Result<size_t> HolderClient::DropPrefix(std::string_view prefix) {
  Reply reply;
  Status s = Call(static_cast<int>(Op::kDropPrefix), prefix, -1, &reply);
  if (!s.ok()) return s;
  size_t count = 0;
  const std::string& body = reply.message.name;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), count);
  if (ec != std::errc() || end != body.data() + body.size()) {
    return Status::IOError("holder: DROP_PREFIX answered " + body);
  }
  return count;
}

Result<std::vector<std::string>> HolderClient::List() {
  std::vector<std::string> names;
  std::string cursor;
  while (true) {
    Reply reply;
    Status s = Call(static_cast<int>(Op::kList), cursor, -1, &reply);
    if (!s.ok()) return s;
    const std::string& body = reply.message.name;
    if (body.empty()) return names;
    size_t start = 0;
    while (start < body.size()) {
      size_t end = body.find('\n', start);
      if (end == std::string::npos) return Status::IOError("holder: LIST page not newline-ended");
      std::string name = body.substr(start, end - start);
      if (name <= cursor) {
        return Status::IOError("holder: LIST went backwards at " + name);
      }
      cursor = name;
      names.push_back(std::move(name));
      start = end + 1;
    }
  }
}

Status HolderClient::Shutdown() {
  Reply reply;
  Status s = Call(static_cast<int>(Op::kShutdown), "", -1, &reply);
  socket_.reset();
  return s;
}

namespace {

// Starts `<binary> hold --run-dir D` as a grandchild in its own session. Returns when the
// exec happened (or failed: the error then).
Status SpawnHolder(const std::string& run_dir, const HolderLaunch& launch) {
  std::vector<std::string> args = {"claimfsd", "hold", "--run-dir", run_dir};
  if (launch.idle_exit.count() > 0) {
    args.push_back("--idle-exit-ms");
    args.push_back(std::to_string(launch.idle_exit.count()));
  }
  if (!launch.build_id.empty()) {
    args.push_back("--build-id");
    args.push_back(launch.build_id);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const char* path = launch.binary_path.c_str();
  if (launch.binary_fd < 0 && launch.binary_path.empty()) {
    return Status::Invalid("no holder binary given");
  }
  // The grandchild reports a failed exec through this pipe; close-on-exec makes EOF success.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  UniqueFd read_end(report[0]);
  UniqueFd write_end(report[1]);
  pid_t child = ::fork();
  if (child < 0) return Status::FromErrno("cannot fork the holder", errno);
  if (child == 0) {
    // Only async-signal-safe calls from here on.
    ::setsid();
    pid_t grandchild = ::fork();
    if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // The holder must keep nothing of ours but what it is given: a stray /dev/fuse fd would
    // keep a connection alive unseen. Marked, not closed: the report pipe and binary_fd are
    // still needed up to the exec.
    ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0 && null != STDIN_FILENO) {
      ::dup2(null, STDIN_FILENO);
      ::close(null);
    }
    if (launch.binary_fd >= 0) {
      ::syscall(SYS_execveat, launch.binary_fd, "", argv.data(), environ, AT_EMPTY_PATH);
    } else {
      ::execve(path, argv.data(), environ);
    }
    int err = errno;
    (void)!::write(report[1], &err, sizeof(err));
    ::_exit(127);
  }
  write_end.reset();
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  int err = 0;
  ssize_t n;
  do {
    n = ::read(read_end.get(), &err, sizeof(err));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(err)) {
    return Status::FromErrno("cannot run the holder " + launch.binary_path, err);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::IOError("cannot start the holder: the intermediate process failed");
  }
  return Status::Ok();
}

}  // namespace

Result<HolderClient> EnsureHolder(std::string_view run_dir_view, const HolderLaunch& launch) {
  std::string run_dir(run_dir_view);
  // In a run directory of ours (checked below) a socket whose process runs as another user is
  // an impostor's, planted while the directory was open: a holder we start replaces it.
  auto answered = [](const Result<HolderClient>& c) {
    return c.ok() || (c.status().code() != StatusCode::kUnavailable &&
                      c.status().code() != StatusCode::kForbidden);
  };
  auto client = HolderClient::Connect(run_dir, launch.build_id);
  if (answered(client)) return client;

  // The holder would refuse this directory too, but only after we waited for it to answer.
  Status checked = CheckRunDirectory(run_dir);
  if (!checked.ok()) return checked;
  std::string lock_path = run_dir + "/spawn.lock";
  auto opened = OpenLockFile(lock_path);
  if (!opened.ok()) return opened.status();
  UniqueFd lock = std::move(*opened);
  auto deadline = Clock::now() + launch.start_timeout;
  while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return Status::FromErrno("cannot lock " + lock_path, errno);
    }
    if (Clock::now() > deadline) return Status::Unavailable("timed out waiting for " + lock_path);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Whoever had the lock may have started one.
  client = HolderClient::Connect(run_dir, launch.build_id);
  if (answered(client)) return client;
  Status s = SpawnHolder(run_dir, launch);
  if (!s.ok()) return s;
  while (true) {
    client = HolderClient::Connect(run_dir, launch.build_id);
    if (answered(client)) return client;
    if (Clock::now() > deadline) {
      return Status::Unavailable("the holder started for " + run_dir + " did not answer within " +
                                 std::to_string(launch.start_timeout.count()) +
                                 " ms; last: " + client.status().message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace claimfs::handoff
