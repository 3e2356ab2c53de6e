#include "scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace claimfs::fs {
namespace {

// However deep the tree, at most this many directories stay open (plus one while reading);
// deeper ancestors are reopened through ".." and checked by device and inode.
constexpr size_t kMaxOpenDirectories = 32;

// Walks without recursion, like the provisioner's TreeWalker: each directory is read once in
// full (its subdirectories queued by name), so a closed ancestor never has to resume a read.
class Walker {
 public:
  Result<TreeUsage> Scan(int dir_fd) {
    struct stat st;
    if (fstatat(dir_fd, "", &st, AT_EMPTY_PATH) != 0) {
      return Status::FromErrno("cannot stat the volume root", errno);
    }
    Count(st);
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("cannot open .", errno);
    frames_.push_back(Frame{fd, st.st_dev, st.st_ino, ".", {}});
    Status result = Run();
    for (Frame& frame : frames_) CloseFd(frame);
    frames_.clear();
    if (!result.ok()) return result;
    return usage_;
  }

 private:
  struct Frame {
    int fd;  // -1 while closed to stay within kMaxOpenDirectories
    dev_t dev;
    ino_t ino;
    std::string name;                  // in the parent; "." for the root
    std::vector<std::string> pending;  // subdirectories still to walk
  };

  static void CloseFd(Frame& frame) {
    if (frame.fd >= 0) close(frame.fd);
    frame.fd = -1;
  }

  void Count(const struct stat& st) {
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !linked_.insert(st.st_ino).second) return;
    usage_.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    ++usage_.inodes;
  }

  // For messages only: frames keep names, so memory stays linear in the depth.
  std::string PathOf(size_t depth) const {
    std::string path;
    for (size_t i = 0; i <= depth; ++i) path += (i == 0 ? "" : "/") + frames_[i].name;
    return path;
  }

  Status Run() {
    Status s = ReadDirectory();
    while (s.ok() && !frames_.empty()) {
      if (!frames_.back().pending.empty()) {
        s = Descend();
      } else {
        s = Ascend();
      }
    }
    return s;
  }

  // Counts every entry of the innermost directory and queues its subdirectories.
  Status ReadDirectory() {
    Frame& frame = frames_.back();
    int dup = fcntl(frame.fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return Status::FromErrno("cannot read " + PathOf(frames_.size() - 1), errno);
    DIR* dir = fdopendir(dup);
    if (dir == nullptr) {
      int err = errno;
      close(dup);
      return Status::FromErrno("cannot read " + PathOf(frames_.size() - 1), err);
    }
    Status result;
    while (true) {
      errno = 0;
      struct dirent* entry = readdir(dir);
      if (entry == nullptr) {
        if (errno != 0) {
          result = Status::FromErrno("cannot read " + PathOf(frames_.size() - 1), errno);
        }
        break;
      }
      std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      if (fstatat(frame.fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        result = Status::FromErrno(
            "cannot stat " + PathOf(frames_.size() - 1) + "/" + entry->d_name, errno);
        break;
      }
      Count(st);
      if (S_ISDIR(st.st_mode)) frame.pending.emplace_back(name);
    }
    closedir(dir);
    return result;
  }

  Status Descend() {
    Frame& parent = frames_.back();
    std::string name = std::move(parent.pending.back());
    parent.pending.pop_back();
    int fd = openat(parent.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return Status::FromErrno("cannot open " + PathOf(frames_.size() - 1) + "/" + name, errno);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return Status::FromErrno("cannot stat " + PathOf(frames_.size() - 1) + "/" + name, err);
    }
    if (frames_.size() >= kMaxOpenDirectories) {
      CloseFd(frames_[frames_.size() - kMaxOpenDirectories]);
    }
    frames_.push_back(Frame{fd, st.st_dev, st.st_ino, std::move(name), {}});
    return ReadDirectory();
  }

  Status Ascend() {
    Frame done = std::move(frames_.back());
    frames_.pop_back();
    Status result;
    if (!frames_.empty() && frames_.back().fd < 0) {
      Frame& parent = frames_.back();
      int fd = openat(done.fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      struct stat st;
      if (fd < 0) {
        result = Status::FromErrno("cannot reopen " + PathOf(frames_.size() - 1), errno);
      } else if (fstat(fd, &st) != 0 || st.st_dev != parent.dev || st.st_ino != parent.ino) {
        close(fd);
        result = Status::IOError("cannot go on scanning " + PathOf(frames_.size() - 1) +
                                 ": the tree was moved while it was being scanned");
      } else {
        parent.fd = fd;
      }
    }
    CloseFd(done);
    return result;
  }

  TreeUsage usage_;
  std::unordered_set<uint64_t> linked_;  // inode numbers with nlink > 1 already counted
  std::vector<Frame> frames_;
};

}  // namespace

Result<TreeUsage> ScanTree(int dir_fd) { return Walker().Scan(dir_fd); }

}  // namespace claimfs::fs
