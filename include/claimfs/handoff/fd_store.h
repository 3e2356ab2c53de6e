// systemd's file descriptor store (FileDescriptorStoreMax=): fds pushed with FDSTORE=1 come
// back at the service's next start through LISTEN_FDS/LISTEN_FDNAMES. Every call is a no-op
// returning Ok when NOTIFY_SOCKET is not set (no systemd).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/handoff/unique_fd.h"

namespace claimfs::handoff {

// True when this process has a notify socket (NOTIFY_SOCKET is set).
bool FdStoreAvailable();

// Stores a copy of `fd` as `name` ("FDSTORE=1\nFDNAME=<name>"); `fd` stays the caller's.
// Invalid for a name systemd would not take (see ValidateFdName). systemd keeps a duplicate
// of an already stored open file only once, and drops a stored fd once it reports
// POLLHUP/POLLERR (a pipe end whose peer has gone, an aborted FUSE connection).
Status FdStorePush(std::string_view name, int fd);

// Closes every stored fd named `name` ("FDSTOREREMOVE=1\nFDNAME=<name>").
Status FdStoreRemove(std::string_view name);

struct NamedFd {
  std::string name;  // as systemd passed it ("unknown" or "stored" when it had none)
  UniqueFd fd;
};

// The fds systemd passed at start (sd_listen_fds_with_names), close-on-exec, and unsets
// LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES so that children do not see them. Empty when none
// were passed or they were meant for another process. Invalid, with every passed fd closed,
// when LISTEN_FDNAMES does not name each fd. Call once, early, before threads.
Result<std::vector<NamedFd>> TakeListenFds();

}  // namespace claimfs::handoff
