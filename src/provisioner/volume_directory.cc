#include "claimfs/provisioner/volume_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <string_view>
#include <utility>

#include "claimfs/common/log.h"
#include "claimfs/limits/limit_backend.h"
#include "claimfs/model/host_path.h"

namespace claimfs::provisioner {
namespace {

// Longest volume name: the temporary ".<name>.claimfs-new" must fit in NAME_MAX (255).
constexpr size_t kMaxNameLength = 240;
constexpr char kTemporarySuffix[] = ".claimfs-new";
// Directory descriptors the tree walk keeps open; deeper levels are reopened through "..".
constexpr size_t kMaxOpenDirectories = 32;
// How long a delete waits for btrfs to drop a kernel-mode volume's subvolume, so that its qgroup
// can go too (btrfs drops deleted subvolumes in the background).
constexpr int kQgroupDropWaitMs = 2000;

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

// "context: strerror(err)" as kIOError, whatever err is (Status::FromErrno makes ENOENT
// kNotFound, which callers here must not see as "nothing to do").
Status IOError(const std::string& context, int err) {
  return Status::IOError(context + ": " + std::strerror(err));
}

// The components of an absolute path in its normal form (model::HostPath); nullopt for a path
// that fails the byte check, is relative or holds "..".
std::optional<std::vector<std::string>> Components(std::string_view path) {
  auto parsed = model::HostPath::Parse(path);
  if (!parsed.ok()) return std::nullopt;
  return parsed->Components();
}

// "<path, escaped>: <why HostPathProblem refuses it>", for a path Components refused.
std::string Refused(std::string_view path) {
  return model::EscapePathForMessage(path) + ": " +
         model::HostPathProblem(path).value_or("not a usable path");
}

std::string JoinComponents(const std::vector<std::string>& parts, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    if (i > begin) out += '/';
    out += parts[i];
  }
  return out;
}

std::string RootList(const std::vector<std::string>& roots) {
  if (roots.empty()) return "none";
  std::string out;
  for (const std::string& root : roots) {
    if (!out.empty()) out += ", ";
    out += root;
  }
  return out;
}

// openat2(2): glibc 2.36 has no wrapper. Unavailable (ENOSYS: an old kernel or a seccomp
// filter) once means unavailable for the life of the process.
std::atomic<bool> openat2_missing{false};

int OpenAt2(int dirfd, const char* path, uint64_t flags, uint64_t resolve) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = flags;
  how.resolve = resolve;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

constexpr uint64_t kDirectoryFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// Not O_NOFOLLOW: with it a final symlink fails with ENOTDIR; RESOLVE_NO_SYMLINKS gives ELOOP.
constexpr uint64_t kDirectoryFlags2 = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
constexpr uint64_t kStrictResolve =
    RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;

// Opens the directory `name` (one component) inside `dirfd` without following a symlink and
// without entering another mount. Returns the fd or -errno: -ELOOP for a symlink, -ENOTDIR for
// anything else that is not a directory, -EXDEV for a mount point.
int OpenChildDirectory(int dirfd, const std::string& name) {
  if (!openat2_missing.load(std::memory_order_relaxed)) {
    int fd = OpenAt2(dirfd, name.c_str(), kDirectoryFlags2, kStrictResolve);
    if (fd >= 0) return fd;
    if (errno != ENOSYS) return -errno;
    openat2_missing.store(true, std::memory_order_relaxed);
  }
  // Fallback: O_NOFOLLOW refuses a symlink; a different st_dev is another filesystem (a bind
  // mount of the same filesystem is caught by the mountinfo check before the walk).
  struct stat parent, child;
  if (::fstat(dirfd, &parent) != 0) return -errno;
  int fd = ::openat(dirfd, name.c_str(), kDirectoryFlags);
  if (fd < 0) {
    int err = errno;
    // O_NOFOLLOW | O_DIRECTORY answers ENOTDIR for a symlink: tell the two apart.
    if (err == ENOTDIR && ::fstatat(dirfd, name.c_str(), &child, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(child.st_mode)) {
      err = ELOOP;
    }
    return -err;
  }
  if (::fstat(fd, &child) != 0 || child.st_dev != parent.st_dev) {
    int err = child.st_dev != parent.st_dev ? EXDEV : errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

// Opens the directory at `components` below `rootfd` with the same rules for every component.
int OpenDirectoryBeneath(int rootfd, const std::vector<std::string>& components) {
  if (components.empty()) {
    int fd = ::fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    return fd >= 0 ? fd : -errno;
  }
  if (!openat2_missing.load(std::memory_order_relaxed)) {
    std::string rel = JoinComponents(components, 0, components.size());
    int fd = OpenAt2(rootfd, rel.c_str(), kDirectoryFlags2, kStrictResolve);
    if (fd >= 0) return fd;
    if (errno != ENOSYS) return -errno;
    openat2_missing.store(true, std::memory_order_relaxed);
  }
  Fd current(::fcntl(rootfd, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return -errno;
  for (const std::string& name : components) {
    int fd = OpenChildDirectory(current.get(), name);
    if (fd < 0) return fd;
    current.reset(fd);
  }
  int fd = current.get();
  current = Fd();  // hand over without closing
  return fd;
}

// Undoes the octal escapes of /proc/self/mountinfo (\040 space, \011 tab, \012 newline, \134
// backslash).
std::string UnescapeMountPath(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The first mount point at or below `dir` (a canonical path) in this process's mount namespace,
// or "" when there is none or /proc/self/mountinfo cannot be read.
std::string MountPointAtOrBelow(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) {
    log::Debug("cannot read /proc/self/mountinfo; relying on the walk's own mount checks");
    return "";
  }
  std::string line;
  while (std::getline(in, line)) {
    // Field 5 is the mount point: "36 35 98:0 /root /mount/point options ...".
    size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string::npos; ++field) {
      pos = line.find(' ', pos);
      if (pos != std::string::npos) ++pos;
    }
    if (pos == std::string::npos) continue;
    size_t end = line.find(' ', pos);
    std::string mount_point = UnescapeMountPath(
        std::string_view(line).substr(pos, end == std::string::npos ? end : end - pos));
    if (mount_point == dir ||
        (mount_point.size() > dir.size() && mount_point.compare(0, dir.size(), dir) == 0 &&
         (dir == "/" || mount_point[dir.size()] == '/'))) {
      return mount_point;
    }
  }
  return "";
}

// The path the kernel has for an open directory, for the mount check; "" if unknown.
std::string PathOfFd(int fd) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  std::string buffer(4096, '\0');
  ssize_t n = ::readlink(link, buffer.data(), buffer.size());
  if (n <= 0 || static_cast<size_t>(n) >= buffer.size()) return "";
  buffer.resize(static_cast<size_t>(n));
  return buffer;
}

// Why an unlink or rmdir met EPERM, when the inode flags tell: "" otherwise.
std::string ImmutableHint(int dirfd, const std::string& name) {
  struct statx entry, dir;
  unsigned mask = STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND;
  if (::statx(dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &entry) == 0 &&
      (entry.stx_attributes & entry.stx_attributes_mask & mask) != 0) {
    return " (it is immutable or append-only: lsattr shows 'i' or 'a'; chattr -ia clears it)";
  }
  if (::statx(dirfd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &dir) == 0 &&
      (dir.stx_attributes & dir.stx_attributes_mask & mask) != 0) {
    return " (its directory is immutable or append-only: lsattr shows 'i' or 'a'; chattr -ia "
           "clears it)";
  }
  return "";
}

// Empties a directory tree without recursion, following no symlink and entering no mount.
// Directories are opened by name relative to their parent's descriptor; at most
// kMaxOpenDirectories descriptors stay open, deeper ancestors are reopened through ".." and
// checked by device and inode, so a tree renamed away mid-walk stops the walk instead of
// sending it elsewhere.
class TreeWalker {
 public:
  // Removes every entry below the directory open as `top` (shown as `top_path` in messages).
  // Returns the first error; everything that could be removed is removed.
  Status EmptyDirectory(Fd top, const std::string& top_path) {
    struct stat st;
    if (::fstat(top.get(), &st) != 0) return IOError("cannot stat " + top_path, errno);
    top_mode_ = st.st_mode & 07777;
    frames_.clear();
    frames_.push_back(Frame{std::move(top), st.st_dev, st.st_ino, top_path, {}, {}, false});
    while (!frames_.empty()) {
      if (!frames_.back().scanned) {
        Scan(frames_.back());
        frames_.back().scanned = true;
      }
      if (!frames_.back().pending.empty()) {
        Descend();
        continue;
      }
      if (frames_.size() == 1) break;  // the top stays; the caller removes it if it wants
      if (!Ascend()) break;
    }
    if (top_chmodded_ && !frames_.empty() && frames_.front().fd.valid()) {
      ::fchmod(frames_.front().fd.get(), top_mode_);  // Recycle keeps the directory's mode
    }
    frames_.clear();
    return first_error_;
  }

 private:
  struct Frame {
    Fd fd;  // invalid while closed to stay within kMaxOpenDirectories
    dev_t dev;
    ino_t ino;
    std::string name;                  // in the parent; the top frame holds the path it was given
    std::vector<std::string> pending;  // subdirectories still to empty and remove
    std::set<std::string> failed;      // entries that could not be removed: do not retry
    bool scanned;
    bool chmodded = false;  // write/search permission added once already
  };

  // The path of a frame on the stack, for messages only: frames keep their names, not their
  // paths, so a deep tree costs memory linear in its depth.
  std::string PathOf(const Frame& frame) const {
    std::string path;
    for (const Frame& f : frames_) {
      path = path.empty() ? f.name : JoinPath(path, f.name);
      if (&f == &frame) break;
    }
    return path;
  }

  void Fail(Status s) {
    log::Debug("tree removal: {}", s.message());
    if (first_error_.ok()) first_error_ = std::move(s);
  }

  // Not root (no CAP_DAC_OVERRIDE): a directory without write or search permission for its
  // owner cannot be emptied until the owner gets them back.
  bool GrantOwnerAccess(Frame& frame) {
    if (frame.chmodded) return false;
    frame.chmodded = true;
    struct stat st;
    if (::fstat(frame.fd.get(), &st) != 0) return false;
    if ((st.st_mode & S_IRWXU) == S_IRWXU) return false;
    if (::fchmod(frame.fd.get(), (st.st_mode & 07777) | S_IRWXU) != 0) return false;
    if (&frame == &frames_.front()) top_chmodded_ = true;
    return true;
  }

  // Reads `frame`'s entries: unlinks everything that is not a directory, queues directories.
  void Scan(Frame& frame) {
    int dup = ::fcntl(frame.fd.get(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return Fail(IOError("cannot read directory " + PathOf(frame), errno));
    DIR* dir = ::fdopendir(dup);
    if (dir == nullptr) {
      int err = errno;
      ::close(dup);
      return Fail(IOError("cannot read directory " + PathOf(frame), err));
    }
    ::rewinddir(dir);  // the duplicate shares the offset of an earlier scan
    while (true) {
      errno = 0;
      struct dirent* entry = ::readdir(dir);
      if (entry == nullptr) {
        if (errno != 0) Fail(IOError("cannot read directory " + PathOf(frame), errno));
        break;
      }
      std::string name = entry->d_name;
      if (name == "." || name == ".." || frame.failed.count(name) != 0) continue;
      bool is_dir = entry->d_type == DT_DIR;
      if (entry->d_type == DT_UNKNOWN) {
        struct stat st;
        if (::fstatat(frame.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
          if (errno != ENOENT) {
            Fail(IOError("cannot stat " + JoinPath(PathOf(frame), name), errno));
            frame.failed.insert(name);
          }
          continue;
        }
        is_dir = S_ISDIR(st.st_mode);
      }
      if (is_dir) {
        frame.pending.push_back(std::move(name));
      } else {
        Unlink(frame, name);
      }
    }
    ::closedir(dir);
  }

  void Unlink(Frame& frame, const std::string& name) {
    if (::unlinkat(frame.fd.get(), name.c_str(), 0) == 0) return;
    int err = errno;
    if (err == ENOENT) return;
    if (err == EISDIR) {  // replaced by a directory since the scan
      frame.pending.push_back(name);
      return;
    }
    if (err == EACCES && GrantOwnerAccess(frame)) return Unlink(frame, name);
    frame.failed.insert(name);
    std::string hint = err == EPERM ? ImmutableHint(frame.fd.get(), name) : "";
    if (err == EBUSY) hint = " (a file is mounted on it)";
    Fail(IOError("cannot remove " + JoinPath(PathOf(frame), name) + hint, err));
  }

  // Enters the next queued subdirectory of the innermost frame.
  void Descend() {
    Frame& parent = frames_.back();
    std::string name = std::move(parent.pending.back());
    parent.pending.pop_back();
    int fd = OpenChildDirectory(parent.fd.get(), name);
    if (fd == -EACCES && GrantOwnerAccess(parent)) fd = OpenChildDirectory(parent.fd.get(), name);
    if (fd == -EACCES) {
      // No search or read permission on the directory itself (not root): give it back to the
      // owner. AT_SYMLINK_NOFOLLOW makes glibc refuse a symlink swapped in meanwhile.
      struct stat st;
      if (::fstatat(parent.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(st.st_mode) &&
          ::fchmodat(parent.fd.get(), name.c_str(), (st.st_mode & 07777) | S_IRWXU,
                     AT_SYMLINK_NOFOLLOW) == 0) {
        fd = OpenChildDirectory(parent.fd.get(), name);
      }
    }
    if (fd == -ENOENT) return;
    if (fd == -ELOOP || fd == -ENOTDIR) {  // no longer a directory: remove it as an entry
      Unlink(parent, name);
      return;
    }
    if (fd < 0) {
      parent.failed.insert(name);
      std::string path = JoinPath(PathOf(parent), name);
      if (fd == -EXDEV) {
        return Fail(Status::Forbidden("refusing to remove " + path +
                                      ": a filesystem is mounted there (unmount it first)"));
      }
      return Fail(IOError("cannot open directory " + path, -fd));
    }
    Fd child(fd);
    struct stat st;
    if (::fstat(child.get(), &st) != 0) {
      parent.failed.insert(name);
      return Fail(IOError("cannot stat " + JoinPath(PathOf(parent), name), errno));
    }
    // Keep the descriptors of the innermost levels only.
    if (frames_.size() >= kMaxOpenDirectories) {
      frames_[frames_.size() - kMaxOpenDirectories].fd.reset();
    }
    frames_.push_back(
        Frame{std::move(child), st.st_dev, st.st_ino, std::move(name), {}, {}, false});
  }

  // Leaves the innermost frame (emptied as far as possible) and removes its directory.
  // Returns false when the walk cannot go on.
  bool Ascend() {
    Frame done = std::move(frames_.back());
    frames_.pop_back();
    Frame& parent = frames_.back();
    if (!parent.fd.valid()) {
      int fd = ::openat(done.fd.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      struct stat st;
      if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_dev != parent.dev || st.st_ino != parent.ino) {
        int err = fd < 0 ? errno : 0;
        if (fd >= 0) ::close(fd);
        Fail(err != 0 ? IOError("cannot reopen directory " + PathOf(parent), err)
                      : Status::IOError("cannot go on removing " + PathOf(parent) +
                                        ": the tree was moved while it was being removed"));
        return false;
      }
      parent.fd.reset(fd);
    }
    done.fd.reset();
    const std::string& name = done.name;
    if (::unlinkat(parent.fd.get(), name.c_str(), AT_REMOVEDIR) == 0) return true;
    int err = errno;
    if (err == ENOENT) return true;
    if (err == EACCES && GrantOwnerAccess(parent) &&
        ::unlinkat(parent.fd.get(), name.c_str(), AT_REMOVEDIR) == 0) {
      return true;
    }
    parent.failed.insert(name);
    // A directory left non-empty by an earlier failure below it needs no second message.
    if (!first_error_.ok() && err == ENOTEMPTY) return true;
    std::string hint = err == EPERM ? ImmutableHint(parent.fd.get(), name) : "";
    if (err == EBUSY) hint = " (it is a mount point)";
    Fail(IOError("cannot remove directory " + JoinPath(PathOf(parent), name) + hint, err));
    return true;
  }

  std::vector<Frame> frames_;
  Status first_error_;
  mode_t top_mode_ = 0;
  bool top_chmodded_ = false;
};

// The root of `allowed_roots` that `parts` (an absolute path's components) lies strictly
// below; the longest matching root wins, so nested roots behave. False when there is none.
bool FindRoot(const std::vector<std::string>& parts, const std::vector<std::string>& allowed_roots,
              std::optional<size_t>* root_size, std::string* root_path) {
  boost::filesystem::path joined("/");
  for (const std::string& part : parts) joined /= part;
  auto path = model::HostPath::Parse(joined.native());
  if (!path.ok()) return false;
  for (const std::string& root : allowed_roots) {
    auto parsed = model::HostPath::Parse(root);
    if (!parsed.ok() || !path->IsStrictlyBelow(*parsed)) continue;
    size_t size = parsed->Components().size();
    if (!*root_size || size > **root_size) {
      *root_size = size;
      *root_path = parsed->string();
    }
  }
  return root_size->has_value();
}

// DeleteVolumeDirectory and ScrubVolumeDirectory.
Status RemoveTree(const std::string& path, const std::vector<std::string>& allowed_roots,
                  bool keep_top) {
  const char* verb = keep_top ? "recycle" : "delete";
  auto parts = Components(path);
  if (!parts) {
    return Status::Forbidden(std::string("refusing to ") + verb + " " + Refused(path));
  }
  std::optional<size_t> root_size;
  std::string root_path;
  if (!FindRoot(*parts, allowed_roots, &root_size, &root_path)) {
    return Status::Forbidden(std::string("refusing to ") + verb + " " + path +
                             ": it is not strictly below an allowed root (" +
                             RootList(allowed_roots) + ")");
  }
  const std::string missing_msg =
      std::string("cannot ") + verb + " " + path + ": it does not exist";

  Fd root(::open(root_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    int err = errno;
    if (err == ENOENT) {
      if (keep_top) return Status::NotFound(missing_msg);
      log::Warn("{} is already gone: its root {} does not exist", path, root_path);
      return Status::Ok();
    }
    return IOError("cannot open root directory " + root_path, err);
  }
  std::vector<std::string> parent_parts(parts->begin() + static_cast<long>(*root_size),
                                        parts->end() - 1);
  const std::string& name = parts->back();
  int fd = OpenDirectoryBeneath(root.get(), parent_parts);
  if (fd >= 0) {
    Fd parent(fd);
    fd = OpenChildDirectory(parent.get(), name);
    std::optional<mode_t> restore_mode;
    if (fd == -EACCES) {
      // Not root, and the directory has no read or search permission for its owner.
      struct stat st;
      if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(st.st_mode) &&
          ::fchmodat(parent.get(), name.c_str(), (st.st_mode & 07777) | S_IRWXU,
                     AT_SYMLINK_NOFOLLOW) == 0) {
        restore_mode = st.st_mode & 07777;
        fd = OpenChildDirectory(parent.get(), name);
      }
    }
    if (fd >= 0) {
      Fd top(fd);
      struct RestoreMode {  // Recycle keeps the directory's mode
        int dirfd;
        const std::string& name;
        bool wanted;
        mode_t mode;
        ~RestoreMode() {
          if (wanted) ::fchmodat(dirfd, name.c_str(), mode, AT_SYMLINK_NOFOLLOW);
        }
      } restore{parent.get(), name, keep_top && restore_mode.has_value(), restore_mode.value_or(0)};
      // A mount anywhere inside: refuse before removing anything.
      std::string real = PathOfFd(top.get());
      if (!real.empty()) {
        std::string mount_point = MountPointAtOrBelow(real);
        if (!mount_point.empty()) {
          return Status::Forbidden(std::string("refusing to ") + verb + " " + path + ": " +
                                   mount_point + " is a mount point (unmount it first)");
        }
      }
      TreeWalker walker;
      Status s = walker.EmptyDirectory(std::move(top), path);
      if (!s.ok()) return s;
      if (keep_top) {
        log::Info("recycled volume directory {}", path);
        return Status::Ok();
      }
      // A kernel-mode volume's root is a btrfs subvolume: its qgroup goes too.
      Status removed = limits::DestroyVolume(parent.get(), name, kQgroupDropWaitMs);
      if (removed.code() == StatusCode::kUnavailable) {
        log::Warn("{}", removed.message());  // the directory is gone; the qgroup stays stale
      } else if (!removed.ok() && removed.code() != StatusCode::kNotFound) {
        return Status(removed.code(), "cannot remove directory " + path + ": " + removed.message());
      }
      if (::fsync(parent.get()) != 0) log::Debug("fsync of the parent of {} failed", path);
      log::Info("deleted volume directory {}", path);
      return Status::Ok();
    }
  }
  switch (-fd) {
    case ENOENT:
      if (keep_top) return Status::NotFound(missing_msg);
      log::Debug("{} is already gone", path);
      return Status::Ok();
    case ENOTDIR:
      return Status::Invalid(std::string("cannot ") + verb + " " + path +
                             ": it (or a component of it) is not a directory");
    case ELOOP:
      return Status::Forbidden(std::string("refusing to ") + verb + " " + path +
                               ": it goes through a symlink below " + root_path);
    case EXDEV:
      return Status::Forbidden(std::string("refusing to ") + verb + " " + path +
                               ": it is or goes through a mount point below " + root_path);
    default:
      return IOError(std::string("cannot ") + verb + " " + path, -fd);
  }
}

}  // namespace

Status EnsurePoolDirectory(const std::string& path) {
  auto parts = Components(path);
  if (!parts) return Status::Invalid("pool path " + Refused(path));
  std::string current;
  for (size_t i = 0; i < parts->size(); ++i) {
    current += "/" + (*parts)[i];
    if (::mkdir(current.c_str(), kPoolMode) == 0) {
      // mkdir applied the umask; set the mode exactly, on the directory just made.
      Fd dir(::open(current.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir.valid() || ::fchmod(dir.get(), kPoolMode) != 0) {
        return IOError("cannot set the mode of pool directory " + current, errno);
      }
      continue;
    }
    int err = errno;
    if (err != EEXIST) return IOError("cannot create pool directory " + current, err);
    struct stat st;
    if (::stat(current.c_str(), &st) != 0) return IOError("cannot stat " + current, errno);
    if (!S_ISDIR(st.st_mode)) {
      return Status::AlreadyExists("cannot create pool directory " + path + ": " + current +
                                   " exists and is not a directory");
    }
  }
  return Status::Ok();
}

namespace {

// Gives the directory `dir` (for messages: `path`) the owner and mode of a volume root.
Status SetOwnerAndMode(int dir, const DirectoryOwner& owner, const std::string& path) {
  if (owner.uid || owner.gid) {
    if (::fchown(dir, owner.uid ? *owner.uid : static_cast<uid_t>(-1),
                 owner.gid ? *owner.gid : static_cast<gid_t>(-1)) != 0) {
      return IOError("cannot set the owner of volume directory " + path, errno);
    }
  }
  // After fchown, which clears set-id bits.
  if (::fchmod(dir, owner.mode.value_or(kDefaultVolumeMode) & 07777) != 0) {
    return IOError("cannot set the mode of volume directory " + path, errno);
  }
  return Status::Ok();
}

}  // namespace

Status CreateVolumeDirectory(const std::string& pool_path, const std::string& name,
                             const DirectoryOwner& owner) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos || name.size() > kMaxNameLength) {
    return Status::Invalid("invalid volume directory name \"" + name +
                           "\": want 1 to 240 bytes, no '/' or NUL, not \".\" or \"..\"");
  }
  const std::string path = JoinPath(pool_path, name);
  Fd pool(::open(pool_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!pool.valid()) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Status::Invalid("cannot create volume directory " + path + ": pool directory " +
                             pool_path + " does not exist or is not a directory");
    }
    return IOError("cannot open pool directory " + pool_path, err);
  }
  struct stat st;
  if (::fstatat(pool.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::AlreadyExists("cannot create volume directory " + path +
                                 ": it exists and is not a directory");
  }
  if (errno != ENOENT) return IOError("cannot stat " + path, errno);

  // Build it under a temporary name, then rename: the volume directory never exists with the
  // wrong owner or mode, even across a crash.
  const std::string temporary = "." + name + kTemporarySuffix;
  const std::string temporary_path = JoinPath(pool_path, temporary);
  if (::unlinkat(pool.get(), temporary.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    int err = errno;
    if (err != ENOTEMPTY && err != EEXIST && err != ENOTDIR) {
      return IOError("cannot remove leftover " + temporary_path, err);
    }
    int fd = OpenChildDirectory(pool.get(), temporary);
    if (fd < 0 && fd != -ENOTDIR && fd != -ELOOP) {
      return IOError("cannot open leftover " + temporary_path, -fd);
    }
    if (fd >= 0) {
      TreeWalker walker;
      Status s = walker.EmptyDirectory(Fd(fd), temporary_path);
      if (!s.ok()) return s;
    }
    if (::unlinkat(pool.get(), temporary.c_str(), fd >= 0 ? AT_REMOVEDIR : 0) != 0 &&
        errno != ENOENT) {
      return IOError("cannot remove leftover " + temporary_path, errno);
    }
  }
  // On btrfs with quotas on, a subvolume: its mount then gets a kernel-enforced limit.
  if (limits::PoolLimitProblem(pool.get()).empty()) {
    Status made = limits::CreateSubvolume(pool.get(), temporary);
    if (!made.ok()) {
      return Status(made.code(), "cannot create volume directory " + path + ": " + made.message());
    }
  } else if (::mkdirat(pool.get(), temporary.c_str(), 0700) != 0) {
    return IOError("cannot create volume directory " + path, errno);
  }
  auto discard = [&] { ::unlinkat(pool.get(), temporary.c_str(), AT_REMOVEDIR); };
  Fd dir(::openat(pool.get(), temporary.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid()) {
    int err = errno;
    discard();
    return IOError("cannot open new volume directory " + temporary_path, err);
  }
  Status owned = SetOwnerAndMode(dir.get(), owner, path);
  if (!owned.ok()) {
    discard();
    return owned;
  }
  if (::renameat2(pool.get(), temporary.c_str(), pool.get(), name.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EINVAL) {  // the filesystem has no RENAME_NOREPLACE: check, then rename
      if (::fstatat(pool.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        err = EEXIST;
      } else if (::renameat(pool.get(), temporary.c_str(), pool.get(), name.c_str()) == 0) {
        err = 0;
      } else {
        err = errno;
      }
    }
    if (err == EEXIST) {  // made meanwhile by someone else
      discard();
      if (::fstatat(pool.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(st.st_mode)) {
        return Status::Ok();
      }
      return Status::AlreadyExists("cannot create volume directory " + path +
                                   ": it exists and is not a directory");
    }
    if (err != 0) {
      discard();
      return IOError("cannot create volume directory " + path, err);
    }
  }
  if (::fsync(pool.get()) != 0) {
    return IOError("cannot sync pool directory " + pool_path, errno);
  }
  log::Info("created volume directory {}", path);
  return Status::Ok();
}

Status DeleteVolumeDirectory(const std::string& path,
                             const std::vector<std::string>& allowed_roots) {
  return RemoveTree(path, allowed_roots, /*keep_top=*/false);
}

Status ScrubVolumeDirectory(const std::string& path,
                            const std::vector<std::string>& allowed_roots) {
  return RemoveTree(path, allowed_roots, /*keep_top=*/true);
}

Status CheckVolumeSource(const std::string& path, const std::vector<std::string>& allowed_roots,
                         bool create_missing, bool* created_leaf) {
  return OpenVolumeSource(path, allowed_roots, create_missing, created_leaf, {}).status();
}

Result<std::optional<DirectoryIdentity>> OpenVolumeSource(
    const std::string& path, const std::vector<std::string>& allowed_roots, bool create_missing,
    bool* created_leaf, const DirectoryOwner& leaf_owner) {
  if (created_leaf) *created_leaf = false;
  using Reached = std::optional<DirectoryIdentity>;
  auto parts = Components(path);
  if (!parts) {
    return Status::Forbidden("volume source " + Refused(path));
  }
  std::optional<size_t> root_size;
  std::string root_path;
  if (!FindRoot(*parts, allowed_roots, &root_size, &root_path)) {
    return Status::Forbidden("volume source " + path +
                             " is not below an allowed hostPath prefix or a pool (" +
                             RootList(allowed_roots) + ")");
  }
  Fd current(::open(root_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!current.valid()) {
    int err = errno;
    if (err == ENOENT && !create_missing) return Reached();
    return IOError("cannot open " + root_path + ", the root of volume source " + path, err);
  }
  std::string walked = root_path;
  for (size_t i = *root_size; i < parts->size(); ++i) {
    const std::string& name = (*parts)[i];
    walked += "/" + name;
    int fd = ::openat(current.get(), name.c_str(), kDirectoryFlags);
    if (fd < 0 && errno == ENOENT) {
      if (!create_missing) return Reached();  // the rest does not exist yet: no symlink
      bool leaf = i + 1 == parts->size();
      bool made = ::mkdirat(current.get(), name.c_str(), 0700) == 0;
      if (!made && errno != EEXIST) {
        return IOError("cannot create " + walked + " for volume source " + path, errno);
      }
      fd = ::openat(current.get(), name.c_str(), kDirectoryFlags);
      if (made) {
        log::Info("created {} for volume source {}", walked, path);
        if (leaf && created_leaf) *created_leaf = true;
        // Parents stay root's alone (0700); the volume root gets its claim's owner and mode.
        Status owned = fd >= 0 && leaf ? SetOwnerAndMode(fd, leaf_owner, walked) : Status::Ok();
        if (!owned.ok()) {
          ::close(fd);
          return owned;
        }
      }
    }
    if (fd < 0) {
      int err = errno;
      struct stat st;
      if (::fstatat(current.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        return Status::Forbidden("volume source " + path + " goes through the symlink " + walked +
                                 ", which claimfs does not follow");
      }
      if (err == ENOTDIR) {
        return Status::Invalid("volume source " + path + ": " + walked + " is not a directory");
      }
      return IOError("cannot open " + walked + " of volume source " + path, err);
    }
    current.reset(fd);
  }
  struct stat st;
  if (::fstat(current.get(), &st) != 0) return IOError("cannot stat volume source " + path, errno);
  return Reached(DirectoryIdentity{st.st_dev, st.st_ino});
}

bool PathsOverlap(const std::string& a, const std::string& b) {
  auto pa = model::HostPath::Parse(a);
  auto pb = model::HostPath::Parse(b);
  return pa.ok() && pb.ok() && pa->Overlaps(*pb);
}

Result<int64_t> FilesystemAvailable(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) {
    return IOError("cannot measure the filesystem of " + path, errno);
  }
  unsigned __int128 bytes = static_cast<unsigned __int128>(st.f_bavail) * st.f_frsize;
  constexpr auto kMax = static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(bytes > kMax ? kMax : bytes);
}

}  // namespace claimfs::provisioner
