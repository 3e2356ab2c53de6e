#include "trusted_path.h"

#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace claimfs::claimfsd {
namespace {

std::string UserName(uid_t uid) {
  struct passwd* pw = ::getpwuid(uid);
  std::string name = "uid " + std::to_string(uid);
  return pw ? name + " (" + pw->pw_name + ")" : name;
}

struct ExistingPrefix {
  std::string lexical;   // the longest prefix of the path that exists
  std::string resolved;  // its canonical form
};

Result<ExistingPrefix> ResolveExistingPrefix(const std::string& path) {
  std::string prefix = path;
  while (true) {
    char resolved[PATH_MAX];
    if (::realpath(prefix.c_str(), resolved) != nullptr) {
      return ExistingPrefix{prefix, std::string(resolved)};
    }
    if (errno != ENOENT && errno != ENOTDIR) {
      return Status::FromErrno("cannot resolve " + prefix, errno);
    }
    size_t slash = prefix.find_last_of('/');
    if (slash == std::string::npos || prefix == "/") {
      return Status::FromErrno("cannot resolve " + path, ENOENT);
    }
    prefix = slash == 0 ? "/" : prefix.substr(0, slash);
  }
}

}  // namespace

std::string ResolvedPath(const std::string& path) {
  auto prefix = ResolveExistingPrefix(path);
  if (!prefix.ok()) return path;
  std::string missing = path.substr(prefix->lexical.size());
  if (!missing.empty() && missing.front() != '/') missing.insert(0, "/");
  if (prefix->resolved == "/") return missing.empty() ? "/" : missing;
  return prefix->resolved + missing;
}

Status CheckTrustedDirectory(const std::string& what, const std::string& path, Symlinks symlinks) {
  const uid_t self = ::geteuid();
  const std::string refusing = what + " " + path + ": refusing to use it: ";
  struct stat st;
  bool exists = ::lstat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) {
    return Status::FromErrno("cannot stat " + what + " " + path, errno);
  }
  if (exists && S_ISLNK(st.st_mode) && symlinks == Symlinks::kRefuse) {
    char target[PATH_MAX];
    ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    std::string to = n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
    return Status::Forbidden(refusing + "it is a symlink (to " + to + ", made by " +
                             UserName(st.st_uid) + "); remove it or name the real directory");
  }
  auto prefix = ResolveExistingPrefix(path);
  if (!prefix.ok()) return prefix.status();
  const std::string* resolved = &prefix->resolved;
  // Every directory from / down to the deepest existing one.
  std::string component = "/";
  size_t next = 1;
  while (true) {
    if (::stat(component.c_str(), &st) != 0) {
      return Status::FromErrno("cannot stat " + component, errno);
    }
    bool last = component == *resolved;
    bool leaf = last && exists;  // the directory itself, which no sticky bit excuses
    std::string which = component == path ? "it" : component;
    if (st.st_uid != 0 && st.st_uid != self) {
      return Status::Forbidden(refusing + which + " is owned by " + UserName(st.st_uid) +
                               ", not by root or by claimfsd's user, " + UserName(self) +
                               ": that user could replace what claimfsd keeps there");
    }
    bool sticky = (st.st_mode & S_ISVTX) != 0 && !leaf;
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !sticky) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
      return Status::Forbidden(refusing + which + " (mode " + mode + ", owner " +
                               UserName(st.st_uid) + ") is writable by " +
                               ((st.st_mode & S_IWOTH) ? "others" : "its group") +
                               "; chmod go-w it");
    }
    if (last) return Status::Ok();
    size_t slash = resolved->find('/', next);
    component = resolved->substr(0, slash);
    if (slash == std::string::npos) {
      component = *resolved;
    } else {
      next = slash + 1;
    }
  }
}

}  // namespace claimfs::claimfsd
