// INIT, lookup and forget, attributes, readlink and statfs.
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "compat_io.h"
#include "credentials.h"
#include "volume_impl.h"
#include "ops_internal.h"

namespace claimfs::fs::ops {
// ---- lifecycle and lookup ----

void Init(void* userdata, fuse_conn_info* conn) {
  auto* v = static_cast<Volume::Impl*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  // Read replies are spliced from the backing file. Requests are not: with SPLICE_READ libfuse
  // receives every request through a pipe, an extra syscall on each metadata operation, and
  // large writes were no faster for it.
  // Not under a server pool: libfuse keeps a splice pipe per thread and session in
  // thread-specific data that only the thread's exit frees, and pool threads outlive the
  // volumes they serve, so every unmount would leak two fds per pool thread.
  if (v->pool == nullptr) {
    want(FUSE_CAP_SPLICE_WRITE);
    want(FUSE_CAP_SPLICE_MOVE);
  } else {
    conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  }
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_ASYNC_DIO);
  want(FUSE_CAP_READDIRPLUS);
  // Every chunk of a listing is READDIRPLUS, not only the first (READDIRPLUS_AUTO): a chmod of
  // a directory makes the kernel drop its dentry's validity (fuse_setattr), so after a tar
  // extract each subdirectory named in a plain READDIR chunk cost a LOOKUP when find or du went
  // into it; a READDIRPLUS entry renews the dentry. A known entry costs the daemon one fstatat.
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  // Informational in 3.14 (nothing in the reply): Opendir's ENOSYS is what turns OPENDIR off,
  // and a kernel without the capability would fail the opendir(3) with it.
  want(FUSE_CAP_NO_OPENDIR_SUPPORT);
  v->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  // Symlinks never change in place (only this daemon writes the volume): READLINK once each.
  want(FUSE_CAP_CACHE_SYMLINKS);
  // FUSE_HANDLE_KILLPRIV_V2, which 3.14 cannot ask for, is added to the reply by compat_io.
  // The daemon is the only writer: cached pages never go stale behind the kernel's back.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // Write-back caching would accept writes the quota must refuse at the call.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl* v = V(req);
  fuse_entry_param e;
  int rv = DoLookup(v, v->ToInode(parent), name, &e);
  if (rv == -ENOENT) {
    e = fuse_entry_param{};
    e.entry_timeout = v->timeout;  // a cached negative entry: only this daemon creates names
    fuse_reply_entry(req, &e);
    return;
  }
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  fuse_reply_entry(req, &e);
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Impl* v = V(req);
  v->table->Forget(v->ToInode(ino), nlookup);
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Impl* v = V(req);
  for (size_t i = 0; i < count; ++i) {
    v->table->Forget(v->ToInode(forgets[i].ino), forgets[i].nlookup);
  }
  fuse_reply_none(req);
}

void Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Impl* v = V(req);
  Inode* inode = v->ToInode(ino);
  struct stat st;
  int rv;
  {
    FdRef ref;
    rv = v->table->Acquire(inode, &ref);
    if (rv == 0) rv = StatFd(ref.fd(), &st);
  }
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  if (v->quota->enabled()) {
    int64_t delta = Remeasure(inode, st);
    if (delta != 0) v->quota->Adjust(delta, 0);
  }
  fuse_reply_attr(req, &st, v->timeout);
}

// ---- attributes ----

namespace {

int DoTruncate(Impl* v, Inode* inode, int path_fd, fuse_file_info* fi, off_t size) {
  int fd = fi ? FileFd(v, fi) : -1;
  int owned = -1;
  if (fd < 0) {
    owned = open(ProcPath(path_fd).buf, O_WRONLY | O_CLOEXEC);
    if (owned < 0) return -errno;
    fd = owned;
  }
  int rv = 0;
  struct stat before;
  if (fstat(fd, &before) != 0) rv = -errno;
  if (rv == 0 && ftruncate(fd, size) != 0) rv = -errno;
  if (rv == 0 && v->quota->enabled()) {
    int64_t delta = RemeasureFd(inode, fd);
    // Extending a file allocates nothing on most filesystems; where it does and the space is
    // not there, put the size back and refuse.
    if (delta > 0 && !v->quota->TryReserveBytes(static_cast<uint64_t>(delta))) {
      if (ftruncate(fd, before.st_size) == 0) delta += RemeasureFd(inode, fd);
      v->quota->Adjust(delta, 0);
      rv = Refuse(v);
    } else {
      v->quota->Commit(delta > 0 ? static_cast<uint64_t>(delta) : 0, delta);
    }
  }
  if (owned >= 0) close(owned);
  return rv;
}

int DoSetattr(fuse_req_t req, Impl* v, Inode* inode, struct stat* attr, int valid,
              fuse_file_info* fi, struct stat* st) {
  FdRef ref;
  int rv = v->table->Acquire(inode, &ref);
  if (rv < 0) return rv;
  int fd = ref.fd();
  if (valid & FUSE_SET_ATTR_MODE) {
    if (fi) {
      rv = fchmod(FileFd(v, fi), attr->st_mode) == 0 ? 0 : -errno;
    } else if (inode->type == S_IFLNK) {
      rv = -EOPNOTSUPP;
    } else {
      rv = chmod(ProcPath(fd).buf, attr->st_mode) == 0 ? 0 : -errno;
    }
  }
  if (rv == 0 && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
    uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
    gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
    rv = fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
  }
  if (rv == 0 && (valid & FUSE_SET_ATTR_SIZE)) {
    rv = DoTruncate(v, inode, fd, fi, attr->st_size);
  }
  // Sent with a truncate by a caller without CAP_FSETID, and with every chown of a non-directory.
  if (rv == 0 && RequestKillsSuidgid()) {
    rv = KillSetIdBits(req, fd, (valid & FUSE_SET_ATTR_SIZE) ? Kill::kFlagged : Kill::kChown);
  }
  if (rv == 0 && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
    struct timespec times[2];
    times[0].tv_sec = 0;
    times[1].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_nsec = UTIME_OMIT;
    if (valid & FUSE_SET_ATTR_ATIME_NOW) {
      times[0].tv_nsec = UTIME_NOW;
    } else if (valid & FUSE_SET_ATTR_ATIME) {
      times[0] = attr->st_atim;
    }
    if (valid & FUSE_SET_ATTR_MTIME_NOW) {
      times[1].tv_nsec = UTIME_NOW;
    } else if (valid & FUSE_SET_ATTR_MTIME) {
      times[1] = attr->st_mtim;
    }
    if (fi) {
      rv = futimens(FileFd(v, fi), times) == 0 ? 0 : -errno;
    } else {
      rv = utimensat(fd, "", times, AT_EMPTY_PATH) == 0 ? 0 : -errno;
      if (rv == -EINVAL || rv == -ENOENT) {
        rv = utimensat(AT_FDCWD, ProcPath(fd).buf, times, 0) == 0 ? 0 : -errno;
      }
    }
  }
  if (rv == 0) rv = StatFd(fd, st);
  return rv;
}

}  // namespace

void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  struct stat st;
  int rv = DoSetattr(req, v, v->ToInode(ino), attr, valid, fi, &st);
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  fuse_reply_attr(req, &st, v->timeout);
}

void Readlink(fuse_req_t req, fuse_ino_t ino) {
  Impl* v = V(req);
  char target[PATH_MAX + 1];
  ssize_t n = -1;
  int err = 0;
  {
    FdRef ref;
    int rv = v->table->Acquire(v->ToInode(ino), &ref);
    if (rv < 0) {
      err = -rv;
    } else if ((n = readlinkat(ref.fd(), "", target, sizeof target)) < 0) {
      err = errno;
    }
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  if (n == static_cast<ssize_t>(sizeof target)) {
    fuse_reply_err(req, ENAMETOOLONG);
    return;
  }
  target[n] = '\0';
  fuse_reply_readlink(req, target);
}

void Statfs(fuse_req_t req, fuse_ino_t) {
  Impl* v = V(req);
  struct statvfs backing;
  int rv;
  {
    FdRef ref;
    rv = v->table->Acquire(v->table->root(), &ref);
    if (rv == 0 && fstatvfs(ref.fd(), &backing) != 0) rv = -errno;
  }
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  if (v->kernel_limit) {
    // Kernel mode: the figures of the limit the kernel enforces (the last ones read, if quotas
    // were turned off). df must not fail: unreadable figures give the capacity, with the free
    // space of the file system as the most that could still be written.
    limits::LimitUsage u;
    uint64_t capacity = v->options.capacity_bytes.value_or(0);
    if (v->kernel_limit->ReadUsage(&u) < 0) {
      uint64_t backing_free = static_cast<uint64_t>(backing.f_bavail) * backing.f_frsize;
      u.used_bytes = capacity - std::min(capacity, backing_free);
    } else if (u.limit_bytes) {
      capacity = u.limit_bytes;
    }
    uint32_t fragment = FragmentSizeFor(capacity);
    struct statvfs st = backing;
    st.f_bsize = v->block_size;
    st.f_frsize = fragment;
    st.f_blocks = capacity / fragment;
    st.f_bfree = st.f_bavail = u.used_bytes >= capacity ? 0 : (capacity - u.used_bytes) / fragment;
    fuse_reply_statfs(req, &st);
    return;
  }
  if (!v->quota->enabled()) {
    fuse_reply_statfs(req, &backing);
    return;
  }
  RemeasureRecentWrites(v);
  Quota::Figures f = v->quota->figures();
  struct statvfs st = backing;
  uint32_t fragment = FragmentSizeFor(f.capacity);
  st.f_bsize = v->block_size;
  st.f_frsize = fragment;
  st.f_blocks = f.capacity / fragment;
  st.f_bfree = st.f_bavail = f.used_bytes >= f.capacity ? 0 : (f.capacity - f.used_bytes) / fragment;
  if (f.inode_limit) {
    st.f_files = *f.inode_limit;
    st.f_ffree = st.f_favail = *f.inode_limit > f.used_inodes ? *f.inode_limit - f.used_inodes : 0;
  } else {
    st.f_files = f.used_inodes + backing.f_ffree;
    st.f_ffree = st.f_favail = backing.f_ffree;
  }
  fuse_reply_statfs(req, &st);
}

}  // namespace claimfs::fs::ops
