#include "claimctl/sudo_user.h"

#include <grp.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "claimfs/api/client.h"

namespace claimfs::claimctl {
namespace {

// A decimal id that fits id_t and is not (id_t)-1, which the set*id calls read as "unchanged".
std::optional<unsigned long> ParseId(const char* text) {
  if (text == nullptr || *text == '\0' || std::strspn(text, "0123456789") != std::strlen(text)) {
    return std::nullopt;
  }
  errno = 0;
  unsigned long value = std::strtoul(text, nullptr, 10);
  if (errno != 0 || value >= static_cast<unsigned long>(static_cast<uid_t>(-1))) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

Result<std::optional<SudoUser>> FindSudoUser() {
  if (api::SudoImpersonationHeaders().empty()) return std::optional<SudoUser>();
  std::optional<unsigned long> uid = ParseId(std::getenv("SUDO_UID"));
  if (!uid) return Status::Invalid("SUDO_UID is not a user id; refusing to act as root for it");
  SudoUser user;
  user.uid = static_cast<uid_t>(*uid);
  user.name = std::to_string(user.uid);
  user.home = "/";

  const struct passwd* account = nullptr;
  const char* sudo_user = std::getenv("SUDO_USER");
  if (sudo_user != nullptr && *sudo_user != '\0') {
    account = getpwnam(sudo_user);
    if (account != nullptr && account->pw_uid != user.uid) account = nullptr;
  }
  if (account == nullptr) account = getpwuid(user.uid);

  std::optional<unsigned long> gid = ParseId(std::getenv("SUDO_GID"));
  if (gid) {
    user.gid = static_cast<gid_t>(*gid);
  } else if (account != nullptr) {
    user.gid = account->pw_gid;
  } else {
    return Status::Invalid("SUDO_GID is not a group id and uid " + user.name +
                           " has no account; refusing to act as root for it");
  }
  if (account != nullptr) {
    user.name = account->pw_name;
    if (account->pw_dir != nullptr && *account->pw_dir != '\0') user.home = account->pw_dir;
    if (account->pw_shell != nullptr) user.shell = account->pw_shell;
    int count = 32;
    std::vector<gid_t> groups(static_cast<size_t>(count));
    while (getgrouplist(account->pw_name, user.gid, groups.data(), &count) < 0) {
      groups.resize(static_cast<size_t>(count) + 1);
      count = static_cast<int>(groups.size());
    }
    groups.resize(static_cast<size_t>(count));
    user.groups = std::move(groups);
  } else {
    user.groups = {user.gid};
  }
  return std::optional<SudoUser>(std::move(user));
}

Status RunWithFileAccessOf(const SudoUser& user, const std::function<void()>& fn) {
  int count = getgroups(0, nullptr);
  if (count < 0) return Status::FromErrno("cannot read claimctl's groups", errno);
  std::vector<gid_t> saved(static_cast<size_t>(count));
  if (getgroups(count, saved.data()) < 0) {
    return Status::FromErrno("cannot read claimctl's groups", errno);
  }
  const uid_t saved_fsuid = geteuid();
  const gid_t saved_fsgid = getegid();
  if (setgroups(user.groups.size(), user.groups.data()) != 0) {
    return Status::FromErrno("cannot take the groups of " + user.name, errno);
  }
  // setfsuid/setfsgid report no errors; asking again with the same id returns the current one.
  setfsgid(user.gid);
  setfsuid(user.uid);
  bool switched = static_cast<gid_t>(setfsgid(user.gid)) == user.gid &&
                  static_cast<uid_t>(setfsuid(user.uid)) == user.uid;
  if (switched) fn();
  setfsuid(saved_fsuid);
  setfsgid(saved_fsgid);
  if (static_cast<uid_t>(setfsuid(saved_fsuid)) != saved_fsuid ||
      static_cast<gid_t>(setfsgid(saved_fsgid)) != saved_fsgid ||
      setgroups(saved.size(), saved.data()) != 0) {
    std::abort();
  }
  if (!switched) return Status::Internal("cannot take the file access of " + user.name);
  return Status::Ok();
}

int BecomeForExec(const SudoUser& user) {
  if (setgroups(user.groups.size(), user.groups.data()) != 0) return errno;
  if (setresgid(user.gid, user.gid, user.gid) != 0) return errno;
  if (setresuid(user.uid, user.uid, user.uid) != 0) return errno;
  if (setuid(0) == 0) return EPERM;  // root must be gone for good
  if (setenv("HOME", user.home.c_str(), 1) != 0 || setenv("USER", user.name.c_str(), 1) != 0 ||
      setenv("LOGNAME", user.name.c_str(), 1) != 0) {
    return errno;
  }
  if (!user.shell.empty() && setenv("SHELL", user.shell.c_str(), 1) != 0) return errno;
  return 0;
}

}  // namespace claimfs::claimctl
