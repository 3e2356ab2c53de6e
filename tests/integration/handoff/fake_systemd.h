// A test double of systemd's service manager side of sd_notify(3) and sd_listen_fds(3), for
// machines without systemd as PID 1: an AF_UNIX SOCK_DGRAM notify socket with SO_PASSCRED that
// takes SCM_CREDENTIALS and SCM_RIGHTS, parses the state lines, keeps FDSTORE=1 fds as a
// service with FileDescriptorStoreMax= would, and starts the service's main process with
// NOTIFY_SOCKET and the stored fds as LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID at fd 3 onwards.
//
// Behaviour emulated (systemd 252 unless an option says otherwise):
// - messages without credentials, over 4096 bytes, or with a NUL byte are ignored, fds closed;
// - NotifyAccess=main (default): messages from any pid but the main pid are ignored, fds closed;
// - FDSTORE=1 stores every fd of the message under FDNAME= ("stored" when FDNAME= is missing or
//   not valid: <=255 printable ASCII, no ':'); a duplicate of a stored open file is closed;
//   past FileDescriptorStoreMax= the rest are closed; FileDescriptorStoreMax=0 refuses all;
// - unless FDPOLL=0, a stored fd that reports POLLHUP/POLLERR is dropped;
// - fds sent without FDSTORE=1 are closed;
// - FDSTOREREMOVE=1 with a valid FDNAME= closes every stored fd of that name;
// - MAINPID= moves the main pid; READY=1, RELOADING=1, STOPPING=1, STATUS= are recorded;
// - the store survives a crash that Restart= restarts and is flushed by a manual stop or
//   restart, unless `preserve_store` (FileDescriptorStorePreserve=yes, systemd 254+).
// LISTEN_FDS passes the newest fd first, as systemd's list does: clients go by name.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace claimfs::it {

class FakeSystemd {
 public:
  enum class NotifyAccess { kMain, kAll };
  struct Options {
    std::string dir;               // notify.sock is made here
    unsigned fd_store_max = 8192;  // FileDescriptorStoreMax=
    NotifyAccess notify_access = NotifyAccess::kMain;
    bool preserve_store = false;  // FileDescriptorStorePreserve=yes
  };

  struct Notification {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<std::string> lines;  // "KEY=value"
    size_t fds = 0;                  // fds the message carried
    bool accepted = false;           // false: ignored (credentials, access, size, NUL)
    std::string Get(const std::string& key) const;  // "" when absent
    bool Has(const std::string& line) const;
  };

  // How the main process ended, which decides the fate of the store.
  enum class Exit {
    kCrashRestarted,  // died (kill -9, failure) and Restart= starts it again: store kept
    kManualStop,      // systemctl stop: store flushed (kept with preserve_store)
    kManualRestart,   // systemctl restart: flushed on 252 (kept with preserve_store)
  };

  explicit FakeSystemd(Options options);
  ~FakeSystemd();
  FakeSystemd(const FakeSystemd&) = delete;
  FakeSystemd& operator=(const FakeSystemd&) = delete;

  // Binds the socket and starts the receiving thread; false with `error` set on failure.
  bool Start(std::string* error);
  const std::string& socket_path() const { return socket_path_; }

  // Starts the main process: argv[0] is a path; `env` ("NAME=value") adds to the inherited
  // environment, from which NOTIFY_SOCKET and LISTEN_* are removed. The stored fds are at 3..,
  // LISTEN_PID is the child's own pid (written between fork and exec). `stdout_fd`, when set,
  // becomes the child's stdout. Returns the pid (our child; see StopMain) or -1.
  pid_t StartMain(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
                  int stdout_fd = -1);
  // Ends the main process as `how` does (SIGKILL for a crash, SIGTERM for a manual stop or
  // restart, then SIGKILL after `grace`), reaps it and applies the store's fate. Returns the
  // wait status.
  int StopMain(Exit how, std::chrono::milliseconds grace = std::chrono::seconds(5));
  // The main process ended by itself (already reaped by the caller): apply `how`.
  void MainExited(Exit how);
  pid_t main_pid() const;

  std::vector<Notification> Notifications() const;
  // Waits until a notification received after the first `skip` ones satisfies `match`; false
  // after `timeout`. `match` is asked again about the same notifications at each wake-up.
  bool WaitForNotification(const std::function<bool(const Notification&)>& match,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10),
                           size_t skip = 0) const;
  // Waits until `done()` is true of the store (checked after each received message).
  bool WaitForStore(const std::function<bool(const std::vector<std::string>&)>& done,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // Names of the stored fds in the order StartMain passes them.
  std::vector<std::string> StoredNames() const;
  // A dup of the first stored fd of `name` (caller closes), or -1.
  int DupStored(const std::string& name) const;
  bool ready() const;
  std::string status() const;

 private:
  struct Stored {
    std::string name;
    int fd;
    bool poll;
  };
  void Loop();
  void Receive();
  void Handle(Notification& n, std::vector<int>& fds);
  void Flush();
  // Returns once every message sent before the call has been handled.
  void Sync();

  Options options_;
  std::string socket_path_;
  int socket_ = -1;
  int wake_[2] = {-1, -1};  // written to end the loop or to re-read the poll set
  std::thread thread_;

  mutable std::mutex mu_;  // guards everything below
  mutable std::condition_variable changed_;
  std::vector<Notification> notifications_;
  std::vector<Stored> store_;  // newest first
  uint64_t sync_requested_ = 0;
  uint64_t sync_done_ = 0;
  pid_t main_pid_ = 0;
  bool ready_ = false;
  std::string status_;
};

}  // namespace claimfs::it
