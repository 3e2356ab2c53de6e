#include "store/lock_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace claimfs::store {
namespace {

// The pid a holder wrote into the lock file, or 0 when there is none (yet).
long ReadHolderPid(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  char* end = nullptr;
  long pid = std::strtol(buf, &end, 10);
  return pid > 0 ? pid : 0;
}

}  // namespace

Result<LockFile> LockFile::Acquire(const std::string& path, const std::string& state_dir) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::FromErrno("cannot open lock file " + path, errno);
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    if (err == EWOULDBLOCK) {
      long pid = ReadHolderPid(fd);
      close(fd);
      std::string msg = "state directory " + state_dir + " is in use by another claimfsd";
      if (pid > 0) msg += " (pid " + std::to_string(pid) + ")";
      return Status::Unavailable(std::move(msg));
    }
    close(fd);
    return Status::FromErrno("cannot lock " + path, err);
  }
  // The pid is only a hint for the message above; the lock itself is what excludes.
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) < 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    int err = errno;
    close(fd);
    return Status::FromErrno("cannot write lock file " + path, err);
  }
  return LockFile(fd);
}

LockFile::~LockFile() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace claimfs::store
