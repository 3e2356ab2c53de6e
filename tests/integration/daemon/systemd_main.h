// claimfsd started as a service's main process by FakeSystemd (the notify-socket double), with
// its output in a log file, as the torture, restart and hostile-store tests run it.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "handoff/fake_systemd.h"

namespace claimfs::it {

class SystemdMain {
 public:
  SystemdMain(FakeSystemd* systemd, const std::string& claimfsd, const std::string& data_dir,
              const std::string& log_path, std::vector<std::string> env = {})
      : systemd_(systemd),
        argv_{"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", claimfsd, "--data-dir", data_dir},
        env_(std::move(env)),
        log_path_(log_path),
        log_fd_(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {}
  ~SystemdMain() {
    if (log_fd_ >= 0) close(log_fd_);
  }
  SystemdMain(const SystemdMain&) = delete;
  SystemdMain& operator=(const SystemdMain&) = delete;

  // Starts main and waits for its own READY=1 (not one of an earlier main). `started` runs
  // between the start and the wait, with main's pid.
  bool Start(const std::function<void(pid_t)>& started = {}) {
    if (log_fd_ < 0) return false;
    size_t seen = systemd_->Notifications().size();
    pid_t pid = systemd_->StartMain(argv_, env_, log_fd_);
    if (pid <= 0) return false;
    if (started) started(pid);
    return systemd_->WaitForNotification(
        [](const FakeSystemd::Notification& m) { return m.Has("READY=1"); },
        std::chrono::seconds(30), seen);
  }

  // What every main started so far wrote.
  std::string Log() const {
    std::ifstream in(log_path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  FakeSystemd* systemd_;
  std::vector<std::string> argv_;
  std::vector<std::string> env_;
  std::string log_path_;
  int log_fd_;
};

}  // namespace claimfs::it
