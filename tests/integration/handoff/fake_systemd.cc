#include "fake_systemd.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace claimfs::it {
namespace {

constexpr size_t kNotifyBufferMax = 4096;  // systemd's NOTIFY_BUFFER_MAX (PIPE_BUF)
constexpr size_t kNotifyFdMax = 768;       // systemd's NOTIFY_FD_MAX

bool FdNameIsValid(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    if (c < 0x20 || c >= 0x7f || c == ':') return false;
  }
  return true;
}

// Same open file description (what systemd's same_fd() decides with kcmp).
bool SameOpenFile(int a, int b) {
  pid_t self = ::getpid();
  return ::syscall(SYS_kcmp, self, self, KCMP_FILE, a, b) == 0;
}

}  // namespace

std::string FakeSystemd::Notification::Get(const std::string& key) const {
  std::string prefix = key + "=";
  for (const std::string& line : lines) {
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

bool FakeSystemd::Notification::Has(const std::string& line) const {
  for (const std::string& l : lines) {
    if (l == line) return true;
  }
  return false;
}

FakeSystemd::FakeSystemd(Options options) : options_(std::move(options)) {}

FakeSystemd::~FakeSystemd() {
  if (thread_.joinable()) {
    char c = 'q';
    (void)!::write(wake_[1], &c, 1);
    thread_.join();
  }
  if (main_pid_ > 0) {
    ::kill(main_pid_, SIGKILL);
    ::waitpid(main_pid_, nullptr, 0);
  }
  Flush();
  for (int fd : {socket_, wake_[0], wake_[1]}) {
    if (fd >= 0) ::close(fd);
  }
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

bool FakeSystemd::Start(std::string* error) {
  socket_path_ = options_.dir + "/notify.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    *error = "socket path too long: " + socket_path_;
    return false;
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  socket_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  ::unlink(socket_path_.c_str());
  if (socket_ < 0 || ::bind(socket_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::setsockopt(socket_, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
      ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    *error = std::string("notify socket: ") + std::strerror(errno);
    return false;
  }
  thread_ = std::thread([this] { Loop(); });
  return true;
}

void FakeSystemd::Loop() {
  while (true) {
    std::vector<pollfd> fds = {{socket_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    uint64_t sync_target;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sync_target = sync_requested_;
      for (const Stored& s : store_) {
        if (s.poll) fds.push_back({s.fd, 0, 0});  // POLLHUP and POLLERR are always reported
      }
    }
    bool pending_sync;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_sync = sync_done_ < sync_target;
    }
    if (::poll(fds.data(), fds.size(), pending_sync ? 0 : -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents & POLLIN) {
      char buf[16];
      ssize_t n = ::read(wake_[0], buf, sizeof(buf));
      if (n > 0 && std::memchr(buf, 'q', static_cast<size_t>(n)) != nullptr) return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 2; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLHUP | POLLERR))) continue;
        for (auto it = store_.begin(); it != store_.end(); ++it) {
          if (it->fd == fds[i].fd) {
            ::close(it->fd);
            store_.erase(it);
            break;
          }
        }
      }
    }
    Receive();  // non-blocking: drains whatever is queued
    {
      std::lock_guard<std::mutex> lock(mu_);
      sync_done_ = sync_target;
    }
    changed_.notify_all();
  }
}

void FakeSystemd::Receive() {
  while (true) {
    char buf[kNotifyBufferMax + 1];
    iovec iov{buf, sizeof(buf)};
    alignas(
        cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * kNotifyFdMax)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(socket_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return;  // EAGAIN: drained
    Notification note;
    std::vector<int> fds;
    bool have_credentials = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds.push_back(fd);
        }
      } else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(ucred))) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
        note.pid = cred.pid;
        note.uid = cred.uid;
        note.gid = cred.gid;
        have_credentials = cred.pid > 0;
      }
    }
    note.fds = fds.size();
    size_t len = static_cast<size_t>(n);
    bool well_formed = have_credentials && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
                       len <= kNotifyBufferMax && std::memchr(buf, '\0', len) == nullptr;
    if (well_formed) {
      std::string text(buf, len);
      size_t start = 0;
      while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) note.lines.push_back(text.substr(start, end - start));
        start = end + 1;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      note.accepted = well_formed && (options_.notify_access == NotifyAccess::kAll ||
                                      (main_pid_ > 0 && note.pid == main_pid_));
      if (note.accepted) Handle(note, fds);
      notifications_.push_back(note);
    }
    for (int fd : fds) ::close(fd);  // whatever Handle did not keep
  }
}

// Called with mu_ held. Takes the fds it keeps out of `fds`.
void FakeSystemd::Handle(Notification& n, std::vector<int>& fds) {
  std::string main_pid = n.Get("MAINPID");
  if (!main_pid.empty()) {
    char* end = nullptr;
    long pid = std::strtol(main_pid.c_str(), &end, 10);
    if (end != main_pid.c_str() && *end == '\0' && pid > 0) main_pid_ = static_cast<pid_t>(pid);
  }
  if (n.Has("READY=1")) ready_ = true;
  if (n.Has("RELOADING=1") || n.Has("STOPPING=1")) ready_ = false;
  for (const std::string& line : n.lines) {
    if (line.rfind("STATUS=", 0) == 0) status_ = line.substr(7);
  }
  bool has_name = false;
  std::string name;
  for (const std::string& line : n.lines) {
    if (line.rfind("FDNAME=", 0) == 0) {
      has_name = true;
      name = line.substr(7);
      break;
    }
  }
  bool name_valid = has_name && FdNameIsValid(name);
  if (n.Has("FDSTORE=1")) {
    bool poll = !n.Has("FDPOLL=0");
    std::vector<int> rest;
    for (int fd : fds) {
      if (store_.size() >= options_.fd_store_max) {
        rest.push_back(fd);  // "Cannot store more fds than FileDescriptorStoreMax="
        continue;
      }
      bool duplicate = false;
      for (const Stored& s : store_) duplicate = duplicate || SameOpenFile(s.fd, fd);
      if (duplicate) {
        rest.push_back(fd);
        continue;
      }
      store_.insert(store_.begin(), Stored{name_valid ? name : "stored", fd, poll});
    }
    fds = std::move(rest);
    char c = 'r';  // re-read the poll set
    (void)!::write(wake_[1], &c, 1);
  }
  if (n.Has("FDSTOREREMOVE=1") && name_valid) {
    for (auto it = store_.begin(); it != store_.end();) {
      if (it->name == name) {
        ::close(it->fd);
        it = store_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void FakeSystemd::Sync() {
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    target = ++sync_requested_;
  }
  char c = 'r';
  (void)!::write(wake_[1], &c, 1);
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return sync_done_ >= target; });
}

void FakeSystemd::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Stored& s : store_) ::close(s.fd);
  store_.clear();
}

pid_t FakeSystemd::StartMain(const std::vector<std::string>& argv,
                             const std::vector<std::string>& env, int stdout_fd) {
  std::vector<int> fds;
  std::string names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Stored& s : store_) {
      fds.push_back(s.fd);
      if (!names.empty()) names += ':';
      names += s.name;
    }
  }
  // Everything the child needs is made before fork: the test process has threads.
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (entry.rfind("NOTIFY_SOCKET=", 0) == 0 || entry.rfind("LISTEN_", 0) == 0) continue;
    environment.push_back(entry);
  }
  for (const std::string& e : env) environment.push_back(e);
  environment.push_back("NOTIFY_SOCKET=" + socket_path_);
  size_t listen_pid_index = environment.size();
  if (!fds.empty()) {
    environment.push_back("LISTEN_PID=" + std::string(20, '\0'));
    environment.push_back("LISTEN_FDS=" + std::to_string(fds.size()));
    environment.push_back("LISTEN_FDNAMES=" + names);
  }
  std::vector<char*> envp;
  for (std::string& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  char* listen_pid = fds.empty() ? nullptr : environment[listen_pid_index].data() + 11;
  constexpr int kHighFd = 1000;

  // Held across fork so that no message of the child is judged before main_pid_ is set.
  std::lock_guard<std::mutex> lock(mu_);
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    // Async-signal-safe only.
    if (stdout_fd >= 0) ::dup2(stdout_fd, STDOUT_FILENO);
    std::vector<int>& moved = fds;  // reused in place: no allocation
    for (size_t i = 0; i < moved.size(); ++i) {
      moved[i] = ::fcntl(moved[i], F_DUPFD, kHighFd);
      if (moved[i] < 0) ::_exit(126);
    }
    for (size_t i = 0; i < moved.size(); ++i) {
      if (::dup2(moved[i], 3 + static_cast<int>(i)) < 0) ::_exit(126);
    }
    ::syscall(SYS_close_range, 3 + moved.size(), ~0U, 0);
    if (listen_pid != nullptr) {
      char digits[20];
      int len = 0;
      for (pid_t p = ::getpid(); p > 0; p /= 10) digits[len++] = static_cast<char>('0' + p % 10);
      for (int i = 0; i < len; ++i) listen_pid[i] = digits[len - 1 - i];
      listen_pid[len] = '\0';
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  main_pid_ = pid;
  ready_ = false;
  return pid;
}

int FakeSystemd::StopMain(Exit how, std::chrono::milliseconds grace) {
  pid_t pid = main_pid();
  int status = -1;
  if (pid > 0) {
    ::kill(pid, how == Exit::kCrashRestarted ? SIGKILL : SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (true) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid || (r < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      ::usleep(5000);
    }
  }
  MainExited(how);
  return status;
}

void FakeSystemd::MainExited(Exit how) {
  // Messages the process sent before it died count, as systemd reads the notify socket
  // before it handles SIGCHLD.
  Sync();
  {
    std::lock_guard<std::mutex> lock(mu_);
    main_pid_ = 0;
    ready_ = false;
  }
  if (how != Exit::kCrashRestarted && !options_.preserve_store) Flush();
  char c = 'r';
  (void)!::write(wake_[1], &c, 1);
}

pid_t FakeSystemd::main_pid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return main_pid_;
}

std::vector<FakeSystemd::Notification> FakeSystemd::Notifications() const {
  std::lock_guard<std::mutex> lock(mu_);
  return notifications_;
}

bool FakeSystemd::WaitForNotification(const std::function<bool(const Notification&)>& match,
                                      std::chrono::milliseconds timeout, size_t skip) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout, [&] {
    for (size_t i = skip; i < notifications_.size(); ++i) {
      if (match(notifications_[i])) return true;
    }
    return false;
  });
}

bool FakeSystemd::WaitForStore(const std::function<bool(const std::vector<std::string>&)>& done,
                               std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout, [&] {
    std::vector<std::string> names;
    for (const Stored& s : store_) names.push_back(s.name);
    return done(names);
  });
}

std::vector<std::string> FakeSystemd::StoredNames() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (const Stored& s : store_) names.push_back(s.name);
  return names;
}

int FakeSystemd::DupStored(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Stored& s : store_) {
    if (s.name == name) return ::fcntl(s.fd, F_DUPFD_CLOEXEC, 3);
  }
  return -1;
}

bool FakeSystemd::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

std::string FakeSystemd::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

}  // namespace claimfs::it
