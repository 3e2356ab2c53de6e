#include "fs/process_util.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

extern char** environ;

namespace claimfs::it {
namespace {

using Clock = std::chrono::steady_clock;

// Reads everything from `fd` until EOF or `deadline`; returns false on deadline.
bool DrainUntil(int fd, Clock::time_point deadline, std::string* out) {
  char buf[65536];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int rv = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rv < 0 && errno == EINTR) continue;
    if (rv <= 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

void KillGroupAndReap(pid_t pid) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::vector<std::string> MergedEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& x : extra) {
      if (x.substr(0, x.find('=')) == name) overridden = true;
    }
    if (!overridden) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

}  // namespace

bool BecomeUser(const Credentials& creds) {
  if (setgroups(creds.groups.size(), creds.groups.data()) != 0) return false;
  if (setresgid(creds.gid, creds.gid, creds.gid) != 0) return false;
  if (setresuid(creds.uid, creds.uid, creds.uid) != 0) return false;
  return true;
}

bool RunResult::Exited() const { return !timed_out && wait_status >= 0 && WIFEXITED(wait_status); }

int RunResult::ExitCode() const { return Exited() ? WEXITSTATUS(wait_status) : -1; }

std::string RunResult::Describe() const {
  std::string head;
  if (wait_status < 0) {
    head = "could not start";
  } else if (timed_out) {
    head = "timed out (killed)";
  } else if (WIFEXITED(wait_status)) {
    head = "exit " + std::to_string(WEXITSTATUS(wait_status));
  } else if (WIFSIGNALED(wait_status)) {
    head = "killed by signal " + std::to_string(WTERMSIG(wait_status));
  } else {
    head = "status " + std::to_string(wait_status);
  }
  return head + ", output: [" + output + "]";
}

RunResult Run(const std::vector<std::string>& argv, const RunOptions& options) {
  RunResult result;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    result.output = std::string("pipe: ") + strerror(errno);
    return result;
  }
  std::vector<std::string> env = MergedEnvironment(options.env);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  // PATH lookup must see the overridden PATH, so resolve it here.
  std::string path_env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) path_env = e.substr(5);
  }

  pid_t pid = fork();
  if (pid < 0) {
    result.output = std::string("fork: ") + strerror(errno);
    close(pipefd[0]);
    close(pipefd[1]);
    return result;
  }
  if (pid == 0) {
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    if (options.nofile) {
      rlimit rl{*options.nofile, *options.nofile};
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (options.creds && !BecomeUser(*options.creds)) {
      dprintf(2, "cannot become uid %u: %s\n", options.creds->uid, strerror(errno));
      _exit(126);
    }
    if (argv[0].find('/') != std::string::npos) {
      execve(argp[0], argp.data(), envp.data());
    } else {
      size_t start = 0;
      while (start <= path_env.size()) {
        size_t end = path_env.find(':', start);
        if (end == std::string::npos) end = path_env.size();
        std::string candidate = path_env.substr(start, end - start) + "/" + argv[0];
        execve(candidate.c_str(), argp.data(), envp.data());
        start = end + 1;
      }
    }
    dprintf(2, "cannot exec %s: %s\n", argv[0].c_str(), strerror(errno));
    _exit(127);
  }
  close(pipefd[1]);
  Clock::time_point deadline = Clock::now() + options.timeout;
  bool drained = DrainUntil(pipefd[0], deadline, &result.output);
  close(pipefd[0]);
  if (!drained) {
    result.timed_out = true;
    KillGroupAndReap(pid);
    result.wait_status = 0;
    return result;
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  std::optional<int> status = WaitForExit(pid, std::max(left, std::chrono::milliseconds(100)));
  if (!status) {
    result.timed_out = true;
    KillGroupAndReap(pid);
    result.wait_status = 0;
    return result;
  }
  result.wait_status = *status;
  return result;
}

RunResult RunShell(const std::string& script, const RunOptions& options) {
  return Run({"/bin/sh", "-c", script}, options);
}

ChildResult RunInChild(const std::function<std::string()>& fn,
                       const std::optional<Credentials>& creds, std::chrono::milliseconds timeout) {
  ChildResult result;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    result.problem = std::string("pipe: ") + strerror(errno);
    return result;
  }
  pid_t pid = fork();
  if (pid < 0) {
    result.problem = std::string("fork: ") + strerror(errno);
    close(pipefd[0]);
    close(pipefd[1]);
    return result;
  }
  if (pid == 0) {
    close(pipefd[0]);
    setpgid(0, 0);
    if (creds && !BecomeUser(*creds)) {
      dprintf(pipefd[1], "cannot become uid %u: %s", creds->uid, strerror(errno));
      _exit(126);
    }
    std::string out = fn();
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = write(pipefd[1], out.data() + off, out.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) _exit(125);
      off += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(pipefd[1]);
  Clock::time_point deadline = Clock::now() + timeout;
  bool drained = DrainUntil(pipefd[0], deadline, &result.output);
  close(pipefd[0]);
  std::optional<int> status;
  if (drained) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    status = WaitForExit(pid, std::max(left, std::chrono::milliseconds(100)));
  }
  if (!status) {
    KillGroupAndReap(pid);
    result.problem = "child timed out after " + std::to_string(timeout.count()) + " ms";
    return result;
  }
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) {
    result.ok = true;
  } else if (WIFEXITED(*status)) {
    result.problem = "child exited " + std::to_string(WEXITSTATUS(*status)) + ": " + result.output;
  } else {
    result.problem = "child killed by signal " + std::to_string(WTERMSIG(*status));
  }
  return result;
}

std::optional<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t rv = waitpid(pid, &status, WNOHANG);
    if (rv == pid) return status;
    if (rv < 0 && errno != EINTR) return std::nullopt;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string ReadFileOrEmpty(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "errno" + std::to_string(err);
}

}  // namespace claimfs::it
