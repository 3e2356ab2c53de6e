#include "claimfs/handoff/fd_store.h"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "claimfs/handoff/bundle_name.h"

namespace claimfs::handoff {

bool FdStoreAvailable() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && *socket != '\0';
}

Status FdStorePush(std::string_view name, int fd) {
  Status s = ValidateFdName(name);
  if (!s.ok()) return s;
  if (!FdStoreAvailable()) return Status::Ok();
  std::string state = "FDSTORE=1\nFDNAME=" + std::string(name);
  int r = sd_pid_notify_with_fds(0, 0, state.c_str(), &fd, 1);
  if (r < 0) return Status::FromErrno("cannot store fd " + std::string(name) + " with systemd", -r);
  return Status::Ok();
}

Status FdStoreRemove(std::string_view name) {
  Status s = ValidateFdName(name);
  if (!s.ok()) return s;
  if (!FdStoreAvailable()) return Status::Ok();
  std::string state = "FDSTOREREMOVE=1\nFDNAME=" + std::string(name);
  int r = sd_pid_notify(0, 0, state.c_str());
  if (r < 0) {
    return Status::FromErrno("cannot remove fd " + std::string(name) + " from systemd's store", -r);
  }
  return Status::Ok();
}

Result<std::vector<NamedFd>> TakeListenFds() {
  // How many fds are ours (LISTEN_PID is us), before the names are looked at: names that do not
  // match make the call below fail and leave the fds open, unnamed, for good.
  int passed = sd_listen_fds(0);
  char** names = nullptr;
  // unset_environment=1: LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES go, whatever the result.
  int n = sd_listen_fds_with_names(1, &names);
  if (n < 0) {
    for (int i = 0; i < passed; ++i) ::close(SD_LISTEN_FDS_START + i);
    if (n == -EINVAL && passed > 0) {
      return Status::Invalid("LISTEN_FDNAMES does not name each of the " + std::to_string(passed) +
                             " fd(s) of LISTEN_FDS: closed them all");
    }
    return Status::FromErrno("cannot read the fds systemd passed (LISTEN_FDS)", -n);
  }
  std::vector<NamedFd> fds;
  for (int i = 0; i < n; ++i) {
    NamedFd named;
    named.name = names != nullptr && names[i] != nullptr ? names[i] : "unknown";
    named.fd.reset(SD_LISTEN_FDS_START + i);
    fds.push_back(std::move(named));
  }
  if (names != nullptr) {
    for (int i = 0; names[i] != nullptr; ++i) std::free(names[i]);
    std::free(names);
  }
  return fds;
}

}  // namespace claimfs::handoff
