// claimctl use CLAIM -- CMD: hold a lease on a claim for the lifetime of a command that runs with
// CLAIMFS_MOUNT set to the claim's mount path.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "claimctl/commands.h"
#include "claimctl/sudo_user.h"

namespace claimfs::claimctl {
namespace {

using nlohmann::json;

// Shared with the signal handler: the child to forward to (0 before it exists) and a signal that
// arrived before it did.
volatile sig_atomic_t g_child_pid = 0;
volatile sig_atomic_t g_pending_signal = 0;

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void ForwardSignal(int sig, siginfo_t* info, void*) {
  // A terminal's Ctrl-C already reached the child (same process group); forward only signals
  // sent to claimctl alone, by kill(2) or sigqueue(3).
  if (info != nullptr && info->si_code == SI_KERNEL) return;
  if (g_child_pid > 0) {
    kill(static_cast<pid_t>(g_child_pid), sig);
  } else {
    g_pending_signal = sig;
  }
}

std::string IdText(const json& id) {
  if (id.is_string()) return id.get<std::string>();
  if (id.is_number()) return id.dump();
  return "";
}

}  // namespace

int RunUse(const GlobalOptions& global, const UseOptions& options, Io& io) {
  if (options.claim.empty() || options.command.empty()) {
    io.err << "error: usage: claimctl use CLAIM [-n NAMESPACE] -- COMMAND [ARGS...]\n";
    return kExitError;
  }
  std::string claim = options.claim;
  for (const char* prefix : {"pvc/", "persistentvolumeclaim/", "persistentvolumeclaims/"}) {
    if (claim.rfind(prefix, 0) == 0) claim = claim.substr(std::strlen(prefix));
  }
  const std::string& ns = global.namespace_;
  // Under sudo the command is the user's, not root's: it runs with their uid, gid and groups.
  Result<std::optional<SudoUser>> sudo_user = FindSudoUser();
  if (!sudo_user.ok()) {
    io.err << "error: " << sudo_user.status().message() << "\n";
    return kExitError;
  }
  Api api(global);

  Result<json> pvc = api.Get(ObjectPath(Kind::kPersistentVolumeClaim, ns, claim));
  if (!pvc.ok()) {
    io.err << ErrorLine(pvc.status()) << "\n";
    return kExitError;
  }
  struct sigaction action {};
  action.sa_sigaction = &ForwardSignal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  struct sigaction previous[std::size(kForwardedSignals)];
  for (size_t i = 0; i < std::size(kForwardedSignals); ++i) {
    sigaction(kForwardedSignals[i], &action, &previous[i]);
  }
  auto restore_signals = [&] {
    for (size_t i = 0; i < std::size(kForwardedSignals); ++i) {
      sigaction(kForwardedSignals[i], &previous[i], nullptr);
    }
  };

  // The lease is the command's, not claimctl's: the child is forked first and waits on the `go`
  // pipe, the lease names the child's pid, and the child execs once it reads the mount path. If
  // claimctl is killed, the command keeps its claim for as long as it runs. The child reports a
  // failed exec through the close-on-exec `exec_failed` pipe.
  int go[2];
  int exec_failed[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(exec_failed, O_CLOEXEC) != 0) {
    io.err << "error: cannot create a pipe: " << std::strerror(errno) << "\n";
    restore_signals();
    return kExitError;
  }
  std::vector<std::string> args = options.command;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  io.out << std::flush;
  io.err << std::flush;

  pid_t child = fork();
  if (child < 0) {
    int err = errno;
    io.err << "error: cannot start " << args[0] << ": " << std::strerror(err) << "\n";
    for (int fd : {go[0], go[1], exec_failed[0], exec_failed[1]}) close(fd);
    restore_signals();
    return kExitError;
  }
  if (child == 0) {
    close(go[1]);
    close(exec_failed[0]);
    for (size_t i = 0; i < std::size(kForwardedSignals); ++i) {
      signal(kForwardedSignals[i], SIG_DFL);
    }
    std::string env_mount = "CLAIMFS_MOUNT=";
    char buf[4096];
    ssize_t n;
    while ((n = read(go[0], buf, sizeof buf)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) _exit(kExitError);
      env_mount.append(buf, static_cast<size_t>(n));
    }
    if (env_mount.size() == std::strlen("CLAIMFS_MOUNT=")) _exit(kExitError);  // no lease
    putenv(env_mount.data());
    int err = sudo_user->has_value() ? BecomeForExec(**sudo_user) : 0;
    if (err == 0) {
      execvp(argv[0], argv.data());
      err = errno;
    }
    ssize_t written = write(exec_failed[1], &err, sizeof err);
    (void)written;
    _exit(err == ENOENT ? 127 : 126);
  }
  close(go[0]);
  close(exec_failed[1]);
  g_child_pid = child;
  // Before the command runs: no lease, so the child exits without running it.
  auto abandon = [&] {
    close(go[1]);
    close(exec_failed[0]);
    while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
    g_child_pid = 0;
    restore_signals();
    return kExitError;
  };

  json request = {{"holder", "claimctl use"}, {"pid", static_cast<int64_t>(child)}};
  Result<json> lease = api.Call("POST", LeasesPath(ns, claim), &request);
  if (!lease.ok()) {
    io.err << ErrorLine(lease.status()) << "\n";
    return abandon();
  }
  std::string lease_id = lease->is_object() && lease->contains("id") ? IdText((*lease)["id"]) : "";
  auto release = [&] {
    if (lease_id.empty()) return;
    Result<json> released = api.Call("DELETE", LeasesPath(ns, claim) + "/" + UrlEncode(lease_id));
    if (!released.ok() && released.status().code() != StatusCode::kNotFound) {
      io.err << "warning: cannot release lease " << lease_id << " on " << ns << "/" << claim << ": "
             << released.status().message() << "\n";
    }
  };
  if (lease_id.empty()) {
    io.err << "error: claimfsd granted a lease on " << ns << "/" << claim << " without an id\n";
    return abandon();
  }

  std::string mount_path;
  Result<std::vector<VolumeStats>> stats = api.Stats();
  if (!stats.ok()) {
    io.err << ErrorLine(stats.status()) << "\n";
    release();
    return abandon();
  }
  if (const VolumeStats* s = FindStatsByClaim(*stats, ns, claim)) mount_path = s->mount_path;
  if (mount_path.empty()) {
    std::string phase = "Pending";
    const json& object = *pvc;
    if (object.contains("status") && object["status"].is_object() &&
        object["status"].contains("phase") && object["status"]["phase"].is_string()) {
      phase = object["status"]["phase"].get<std::string>();
    }
    io.err << "error: persistentvolumeclaim \"" << claim << "\" in namespace \"" << ns
           << "\" is not mounted (it is " << phase
           << "; its volume is mounted once the claim is Bound)\n";
    release();
    return abandon();
  }

  for (size_t done = 0; done < mount_path.size();) {
    ssize_t n = write(go[1], mount_path.data() + done, mount_path.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // the child is gone; waitpid below reports how
    done += static_cast<size_t>(n);
  }
  close(go[1]);
  if (g_pending_signal != 0) kill(child, g_pending_signal);
  int exec_errno = 0;
  ssize_t got;
  do {
    got = read(exec_failed[0], &exec_errno, sizeof exec_errno);
  } while (got < 0 && errno == EINTR);
  close(exec_failed[0]);

  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  g_child_pid = 0;
  restore_signals();
  release();
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    io.err << "error: cannot run " << args[0] << ": " << std::strerror(exec_errno) << "\n";
    return exec_errno == ENOENT ? 127 : 126;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kExitError;
}

}  // namespace claimfs::claimctl
