// Who claimctl acts for on this machine when root runs it for a sudo user: files named by -f are
// opened, and `use -- CMD` runs, as the user who ran sudo, not as root.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::claimctl {

struct SudoUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, as initgroups(3) would set them
  std::string name;           // the account's name, else the uid as text
  std::string home;           // the account's home directory, else "/"
  std::string shell;          // the account's login shell, else empty
};

// The user who ran sudo, when claimctl runs as root with a non-root SUDO_UID: the condition under
// which api::SudoImpersonationHeaders() names that user to claimfsd. nullopt when claimctl acts for
// itself. SUDO_GID, else the account's primary group, is the group; the supplementary groups are
// those of SUDO_USER's account when it has SUDO_UID (else of SUDO_UID's account, else none). An
// error when a group cannot be found: then nothing must run as root on the user's behalf.
Result<std::optional<SudoUser>> FindSudoUser();

// Runs `fn` with the file-system uid, gid and supplementary groups of `user` (the kernel then
// checks every open, stat and directory read against the user, and root's file capabilities are
// off), then restores root's. Not thread-safe: setgroups(2) is process-wide. An error, without
// running `fn`, when the credentials cannot be switched; aborts if they cannot be restored.
Status RunWithFileAccessOf(const SudoUser& user, const std::function<void()>& fn);

// In a forked child about to exec: becomes `user` for good (groups, gid, uid) and sets HOME, USER,
// LOGNAME and SHELL as `sudo -u` would. Returns 0, or the errno of the call that failed.
// Async-signal-safe apart from setenv(3) (claimctl is single-threaded when it forks).
int BecomeForExec(const SudoUser& user);

}  // namespace claimfs::claimctl
