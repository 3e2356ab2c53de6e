#include "claimfs/mount/mount_root.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "claimfs/common/log.h"
#include "claimfs/mount/mount_table.h"

namespace claimfs::mount {
namespace {

constexpr mode_t kRootMode = 0711;

// Closes a descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string Normal(const std::string& path) {
  std::string out = std::filesystem::path(path).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// The mount on top of the stack at `path`: the last one there that nothing at the same path is
// mounted on.
std::optional<MountInfo> TopMountAt(const std::vector<MountInfo>& table, const std::string& path) {
  std::optional<MountInfo> top;
  for (const MountInfo& m : table) {
    if (m.mount_point != path) continue;
    bool covered = std::any_of(table.begin(), table.end(), [&](const MountInfo& o) {
      return o.parent_id == m.mount_id && o.mount_point == path;
    });
    if (!covered) top = m;
  }
  return top;
}

bool IsOurTmpfs(const MountInfo& m) {
  return m.fs_type == "tmpfs" && m.source == kMountRootSource;
}

// The pid a lock file holds, as its holder wrote it; "unknown" when it cannot be read.
std::string LockHolder(int lock_fd) {
  char pid[32] = {};
  ssize_t n = lock_fd < 0 ? -1 : ::pread(lock_fd, pid, sizeof pid - 1, 0);
  std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "unknown";
  while (!holder.empty() && holder.back() == '\n') holder.pop_back();
  return holder;
}

// Whether `inner` lies below `outer` by at least one component.
bool StrictlyBelow(const std::string& inner, const std::string& outer) {
  std::string prefix = outer == "/" ? outer : outer + "/";
  return inner.size() > prefix.size() && inner.compare(0, prefix.size(), prefix) == 0;
}

// Another claimfsd's mount root (its tmpfs) inside or around `where`: the two would cover or
// detach each other's volumes. kUnavailable naming it and, if it says, its holder's pid.
Status RefuseNestedMountRoots(const std::vector<MountInfo>& table, const std::string& where,
                              const std::string& configured) {
  for (const MountInfo& m : table) {
    if (!IsOurTmpfs(m) || m.mount_point == where) continue;
    bool inside = StrictlyBelow(where, m.mount_point);
    if (!inside && !StrictlyBelow(m.mount_point, where)) continue;
    Fd lock(::open((m.mount_point + "/" + kMountRootLockName).c_str(),
                   O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    std::string holder = LockHolder(lock.get());
    return Status::Unavailable("mount root " + configured + (inside ? " lies inside " : " contains ") +
                               "the mount root " + m.mount_point + " of another claimfsd (pid " +
                               holder + "); give each claimfsd a mountRoot apart from the others");
  }
  return Status::Ok();
}

// "ns" or "ns/name" as its components; nullopt for anything else.
std::optional<std::vector<std::string>> Components(const std::string& relative) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = relative.find('/', start);
    std::string part = relative.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") return std::nullopt;
    parts.push_back(part);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (parts.size() > 2) return std::nullopt;
  return parts;
}

// Takes the lock file `name` in `dir_fd` for this process; returns the descriptor that holds
// the lock (read-only: a mount cannot be made read-only while a file on it is open for writing),
// -1 when the file is missing and `create` is false, kUnavailable naming the holder's pid when
// another process has it.
Result<int> TakeLock(int dir_fd, const char* name, bool create, const std::string& root) {
  std::string path = root + "/" + name;
  int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0);
  Fd fd(::openat(dir_fd, name, flags, 0600));
  if (fd.get() < 0) {
    if (errno == ENOENT && !create) return -1;
    return Status::FromErrno("cannot open " + path, errno);
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return Status::FromErrno("cannot lock " + path, err);
    return Status::Unavailable("mount root " + root + " is in use by another claimfsd (pid " +
                               LockHolder(fd.get()) + "); give each claimfsd its own mountRoot");
  }
  return fd.release();
}

// Writes this process's pid into the lock file `name` in `dir_fd` (a writable view of it).
void WritePid(int dir_fd, const char* name, const std::string& root) {
  Fd out(::openat(dir_fd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC));
  std::string pid = std::to_string(::getpid()) + "\n";
  if (out.get() < 0 || ::write(out.get(), pid.data(), pid.size()) < 0) {
    log::Warn("cannot write the pid into {}/{}: {}", root, name, std::strerror(errno));
  }
}

// Sets or clears mount attributes and propagation of the mount `fd` refers to (AT_EMPTY_PATH),
// or of the mount at `path`.
int SetAttributes(int fd, const char* path, uint64_t set, uint64_t clear, uint64_t propagation) {
  struct mount_attr attr {};
  attr.attr_set = set;
  attr.attr_clr = clear;
  attr.propagation = propagation;
  return ::mount_setattr(fd, path, fd >= 0 && path[0] == '\0' ? AT_EMPTY_PATH : 0, &attr,
                         sizeof attr);
}

// A new tmpfs as a detached mount (fsopen/fsmount): nothing sees it until it is moved into
// place, so the lock file is in it before any other claimfsd can find it.
Result<int> NewTmpfs() {
  Fd fs(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (fs.get() < 0) return Status::FromErrno("cannot create a tmpfs for the mount root", errno);
  const std::pair<const char*, const char*> options[] = {
      {"source", kMountRootSource}, {"mode", "0711"}, {"uid", "0"}, {"gid", "0"}, {"size", "1m"}};
  for (const auto& [key, value] : options) {
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, key, value, 0) != 0) {
      return Status::FromErrno(std::string("cannot set tmpfs option ") + key, errno);
    }
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return Status::FromErrno("cannot create a tmpfs for the mount root", errno);
  }
  int mnt = ::fsmount(fs.get(), FSMOUNT_CLOEXEC,
                      MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  if (mnt < 0) return Status::FromErrno("cannot mount a tmpfs for the mount root", errno);
  return mnt;
}

// Removes the empty directories ns/name and ns below `dir_fd` (the plain directory an older
// claimfsd used); logs what is not empty: data written there while no volume covered it.
void RemoveLegacyDirectories(int dir_fd, const std::string& root) {
  Fd list(::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (list.get() < 0) return;
  DIR* d = ::fdopendir(list.release());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string ns = e->d_name;
    if (ns == "." || ns == ".." || e->d_type != DT_DIR) continue;
    Fd ns_fd(::openat(dir_fd, ns.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (ns_fd.get() < 0) continue;
    DIR* nd = ::fdopendir(::dup(ns_fd.get()));
    if (nd == nullptr) continue;
    while (dirent* c = ::readdir(nd)) {
      std::string name = c->d_name;
      if (name == "." || name == ".." || c->d_type != DT_DIR) continue;
      if (::unlinkat(ns_fd.get(), name.c_str(), AT_REMOVEDIR) != 0) {
        log::Warn("{}/{}/{} (below the mount root's tmpfs) is not empty: written while no volume "
                  "covered it; left for the admin to inspect",
                  root, ns, name);
      }
    }
    ::closedir(nd);
    ::unlinkat(dir_fd, ns.c_str(), AT_REMOVEDIR);  // only when empty
  }
  ::closedir(d);
}

}  // namespace

Result<std::unique_ptr<MountRoot>> MountRoot::Open(const std::string& path,
                                                   const std::string& fallback_dir) {
  std::unique_ptr<MountRoot> root(new MountRoot());
  root->path_ = Normal(path);
  std::error_code ec;
  std::filesystem::create_directories(root->path_, ec);
  if (ec) return Status::IOError("cannot create mount root " + path + ": " + ec.message());
  // The mount table names the directory by its real path (a configured path may go through a
  // symlink, which CheckTrustedDirectory allows for root-owned links).
  std::filesystem::path real = std::filesystem::canonical(root->path_, ec);
  if (ec) return Status::IOError("cannot resolve mount root " + path + ": " + ec.message());
  root->real_path_ = real.string();
  const std::string& where = root->real_path_;
  auto table = ReadMountInfo();
  if (!table.ok()) return table.status();
  if (Status nested = RefuseNestedMountRoots(*table, where, path); !nested.ok()) return nested;
  std::optional<MountInfo> top = TopMountAt(*table, where);

  if (top && IsOurTmpfs(*top)) {
    // A restart: the tmpfs outlived the claimfsd that mounted it. The lock first, so that a
    // second claimfsd changes nothing here.
    root->mount_id_ = top->mount_id;
    Fd tmpfs_root(::open(where.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (tmpfs_root.get() < 0) return Status::FromErrno("cannot open mount root " + path, errno);
    auto lock = TakeLock(tmpfs_root.get(), kMountRootLockName, /*create=*/false, root->path_);
    if (!lock.ok()) return lock.status();
    root->lock_fd_ = *lock;
    Status s = root->OpenView(fallback_dir);
    if (!s.ok()) return s;
    if (root->lock_fd_ < 0) {
      lock = TakeLock(root->view_fd_, kMountRootLockName, /*create=*/true, root->path_);
      if (!lock.ok()) return lock.status();
      root->lock_fd_ = *lock;
    }
    WritePid(root->view_fd_, kMountRootLockName, root->path_);
    // Read-only and shared again, should anything have changed that.
    if (SetAttributes(-1, where.c_str(), MOUNT_ATTR_RDONLY, 0, MS_SHARED) != 0) {
      return Status::FromErrno("cannot make mount root " + path + " read-only and shared", errno);
    }
    return root;
  }

  // A plain directory. Two claimfsd starting at once both see it: the directory's own lock
  // decides; an older claimfsd still running holds the lock file in it.
  Fd dir(::open(where.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return Status::FromErrno("cannot open mount root " + path, errno);
  if (::flock(dir.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status::Unavailable("mount root " + path +
                               " is in use by another claimfsd (pid unknown: it is starting); "
                               "give each claimfsd its own mountRoot");
  }
  auto legacy_lock = TakeLock(dir.get(), kMountRootLockName, /*create=*/false, root->path_);
  if (!legacy_lock.ok()) return legacy_lock.status();
  Fd legacy(*legacy_lock);

  auto tmpfs = NewTmpfs();
  if (!tmpfs.ok()) return tmpfs.status();
  Fd mnt(*tmpfs);
  auto lock = TakeLock(mnt.get(), kMountRootLockName, /*create=*/true, root->path_);
  if (!lock.ok()) return lock.status();
  root->lock_fd_ = *lock;
  WritePid(mnt.get(), kMountRootLockName, root->path_);
  if (SetAttributes(mnt.get(), "", MOUNT_ATTR_RDONLY, 0, 0) != 0) {
    return Status::FromErrno("cannot make the mount root's tmpfs read-only", errno);
  }
  if (::move_mount(mnt.get(), "", AT_FDCWD, where.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return Status::FromErrno("cannot mount a tmpfs on mount root " + path, errno);
  }
  // Container engines' bind mounts of the root see volumes mounted later.
  if (::mount(nullptr, where.c_str(), nullptr, MS_SHARED, nullptr) != 0) {
    log::Warn("cannot make mount root {} shared: {}", path, std::strerror(errno));
  }
  log::Info("mounted a read-only tmpfs on mount root {}", path);
  table = ReadMountInfo();
  if (!table.ok()) return table.status();
  top = TopMountAt(*table, where);
  if (!top || !IsOurTmpfs(*top)) {
    return Status::Internal("the tmpfs just mounted on " + path + " is not in the mount table");
  }
  root->mount_id_ = top->mount_id;
  Status s = root->OpenView(fallback_dir);
  if (!s.ok()) return s;

  // An older claimfsd's mounts in the plain directory: their connections are dead or about to
  // be (nobody serves them). Detached only now, through the directory's descriptor, so that
  // their paths lead to the tmpfs at every moment.
  DetachOptions old;
  old.not_below_mount_id = root->mount_id_;
  old.via = "/proc/self/fd/" + std::to_string(dir.get());
  auto detached = DetachStaleMounts(where, old);
  if (!detached.ok()) {
    log::Warn("mount root {}: {}", path, detached.status().message());
  } else if (!detached->empty()) {
    log::Info("detached {} claimfs mounts of an earlier claimfsd below the new mount root",
              detached->size());
  }
  RemoveLegacyDirectories(dir.get(), root->path_);
  if (legacy.get() >= 0) ::unlinkat(dir.get(), kMountRootLockName, 0);
  return root;
}

Status MountRoot::OpenView(const std::string& fallback_dir) {
  Fd clone(::open_tree(AT_FDCWD, real_path_.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (clone.get() >= 0 && SetAttributes(clone.get(), "", 0, MOUNT_ATTR_RDONLY, MS_PRIVATE) == 0) {
    view_fd_ = clone.release();
    return Status::Ok();
  }
  int err = errno;
  log::Warn("mount root {}: no detached writable view ({}); using a bind at {}", path_,
            std::strerror(err), fallback_dir);
  if (::mkdir(fallback_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno("cannot create " + fallback_dir, errno);
  }
  if (::chmod(fallback_dir.c_str(), 0700) != 0) {
    return Status::FromErrno("cannot set the mode of " + fallback_dir, errno);
  }
  ::umount2(fallback_dir.c_str(), MNT_DETACH);  // an earlier start's
  if (::mount(real_path_.c_str(), fallback_dir.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      ::mount(nullptr, fallback_dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0 ||
      ::mount(nullptr, fallback_dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV |
                                                          MS_NOEXEC,
              nullptr) != 0) {
    return Status::FromErrno("cannot bind mount root " + path_ + " at " + fallback_dir, errno);
  }
  fallback_mount_ = fallback_dir;
  view_fd_ = ::open(fallback_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (view_fd_ < 0) return Status::FromErrno("cannot open " + fallback_dir, errno);
  return Status::Ok();
}

MountRoot::~MountRoot() {
  if (view_fd_ >= 0) ::close(view_fd_);
  if (!fallback_mount_.empty()) ::umount2(fallback_mount_.c_str(), MNT_DETACH);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

int MountRoot::OpenParent(const std::vector<std::string>& parts) const {
  if (parts.size() == 1) return ::fcntl(view_fd_, F_DUPFD_CLOEXEC, 0);
  return ::openat(view_fd_, parts[0].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

Status MountRoot::MakeDirectory(const std::string& relative, mode_t mode, bool existing_too) {
  auto parts = Components(relative);
  if (!parts) return Status::Invalid("not a directory name below the mount root: " + relative);
  std::string full = path_ + "/" + relative;
  Fd parent(OpenParent(*parts));
  if (parent.get() < 0) return Status::FromErrno("cannot open " + path_ + "/" + (*parts)[0], errno);
  const std::string& name = parts->back();
  bool made = ::mkdirat(parent.get(), name.c_str(), mode) == 0;
  if (!made && errno != EEXIST) {
    return Status::FromErrno("cannot create mountpoint directory " + full, errno);
  }
  if (!made && !existing_too) {
    struct stat st;
    if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno("cannot stat " + full, errno);
    }
    if (!S_ISDIR(st.st_mode)) return Status::AlreadyExists(full + " exists and is not a directory");
    return Status::Ok();
  }
  // The umask applied to mkdirat; an existing directory may have another mode.
  Fd dir(::openat(parent.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir.get() < 0) {
    if (errno == ENOTDIR || errno == ELOOP) {
      return Status::AlreadyExists(full + " exists and is not a directory");
    }
    return Status::FromErrno("cannot open " + full, errno);
  }
  struct stat st;
  if (::fstat(dir.get(), &st) != 0) return Status::FromErrno("cannot stat " + full, errno);
  if ((st.st_mode & 07777) != mode && ::fchmod(dir.get(), mode) != 0) {
    return Status::FromErrno("cannot set the mode of " + full, errno);
  }
  return Status::Ok();
}

Status MountRoot::RemoveDirectory(const std::string& relative) {
  auto parts = Components(relative);
  if (!parts) return Status::Invalid("not a directory name below the mount root: " + relative);
  Fd parent(OpenParent(*parts));
  if (parent.get() < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno("cannot open " + path_ + "/" + (*parts)[0], errno);
  }
  if (::unlinkat(parent.get(), parts->back().c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Status::FromErrno("cannot remove " + path_ + "/" + relative, errno);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> MountRoot::Directories() const {
  std::vector<std::string> out;
  auto list = [](int fd, std::vector<std::string>* names) -> Status {
    DIR* d = ::fdopendir(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d == nullptr) return Status::FromErrno("cannot list the mount root", errno);
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && e->d_type == DT_DIR) names->push_back(name);
    }
    ::closedir(d);
    std::sort(names->begin(), names->end());
    return Status::Ok();
  };
  std::vector<std::string> namespaces;
  Status s = list(view_fd_, &namespaces);
  if (!s.ok()) return s;
  for (const std::string& ns : namespaces) {
    out.push_back(ns);
    Fd ns_fd(::openat(view_fd_, ns.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (ns_fd.get() < 0) continue;
    std::vector<std::string> names;
    s = list(ns_fd.get(), &names);
    if (!s.ok()) return s;
    for (const std::string& name : names) out.push_back(ns + "/" + name);
  }
  return out;
}

Status MountRoot::Release() {
  auto table = ReadMountInfo();
  if (!table.ok()) return table.status();
  for (const MountInfo& m : *table) {
    if (m.parent_id == mount_id_) {
      return Status::Unavailable("mount root " + path_ + " keeps its tmpfs: " +
                                        m.mount_point + " is still mounted");
    }
  }
  if (::umount2(real_path_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
    return Status::FromErrno("cannot unmount the tmpfs of mount root " + path_, errno);
  }
  log::Info("unmounted the tmpfs of mount root {}", path_);
  return Status::Ok();
}

Result<std::vector<std::string>> ReconcileMounts(MountRoot& root,
                                                 const std::set<std::string>& keep,
                                                 const std::set<dev_t>& live) {
  DetachOptions dead;
  dead.below_mount_id = root.mount_id();
  dead.keep_devices = live;
  auto detached = DetachStaleMounts(root.real_path(), dead);
  if (!detached.ok()) return detached.status();
  auto dirs = root.Directories();
  if (!dirs.ok()) return dirs.status();
  // Deepest first, so a namespace directory is tried once its entries are gone.
  for (auto it = dirs->rbegin(); it != dirs->rend(); ++it) {
    const std::string& dir = *it;
    bool is_namespace = dir.find('/') == std::string::npos;
    if (!is_namespace && keep.count(dir)) continue;
    if (is_namespace && std::any_of(keep.begin(), keep.end(), [&](const std::string& k) {
          return k.compare(0, dir.size() + 1, dir + "/") == 0;
        })) {
      continue;
    }
    Status s = root.RemoveDirectory(dir);
    if (!s.ok()) {
      log::Warn("mount root: {}", s.message());
    } else if (!is_namespace) {
      log::Info("removed mountpoint directory {}/{}: no Bound claim is mounted there",
                root.path(), dir);
    }
  }
  return detached;
}

}  // namespace claimfs::mount
