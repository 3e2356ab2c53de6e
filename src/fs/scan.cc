#include "scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <unordered_set>

namespace claimfs::fs {
namespace {

struct Walker {
  TreeUsage usage;
  std::unordered_set<uint64_t> linked;  // inode numbers with nlink > 1 already counted

  void Count(const struct stat& st) {
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !linked.insert(st.st_ino).second) return;
    usage.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    ++usage.inodes;
  }

  Status Walk(int dir_fd, const std::string& path) {
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("cannot open " + path, errno);
    DIR* dir = fdopendir(fd);
    if (dir == nullptr) {
      int err = errno;
      close(fd);
      return Status::FromErrno("cannot read " + path, err);
    }
    Status result;
    errno = 0;
    while (struct dirent* entry = readdir(dir)) {
      std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      if (fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        result = Status::FromErrno("cannot stat " + path + "/" + entry->d_name, errno);
        break;
      }
      Count(st);
      if (S_ISDIR(st.st_mode)) {
        int child = openat(fd, entry->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
          result = Status::FromErrno("cannot open " + path + "/" + entry->d_name, errno);
          break;
        }
        result = Walk(child, path + "/" + entry->d_name);
        close(child);
        if (!result.ok()) break;
      }
      errno = 0;
    }
    if (result.ok() && errno != 0) result = Status::FromErrno("cannot read " + path, errno);
    closedir(dir);
    return result;
  }
};

}  // namespace

Result<TreeUsage> ScanTree(int dir_fd) {
  Walker walker;
  struct stat st;
  if (fstatat(dir_fd, "", &st, AT_EMPTY_PATH) != 0) return Status::FromErrno("cannot stat the volume root", errno);
  walker.Count(st);
  Status s = walker.Walk(dir_fd, ".");
  if (!s.ok()) return s;
  return walker.usage;
}

}  // namespace claimfs::fs
