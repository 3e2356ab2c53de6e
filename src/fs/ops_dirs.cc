// Directory listings without OPENDIR: readdir from the backing directory's own cookies, with
// a few streams kept between requests.
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
// ---- directories ----

void CloseDirStream(Impl::DirStream* s) {
  if (s->dir != nullptr) closedir(s->dir);
  s->dir = nullptr;
}

namespace {

// A stream of `inode` positioned at `offset`: the one its listing left, if it is still valid,
// else a new one. 0 or -errno (ESTALE/ENOENT: the directory is gone).
int TakeDirStream(Impl* v, Inode* inode, off_t offset, Impl::DirStream* out) {
  uint64_t epoch = v->namespace_epoch.load();
  Impl::DirStream kept;
  // Streams older than a change are closed now: their directory may be gone, and an fd on it
  // would keep its blocks allocated on the backing filesystem.
  std::vector<Impl::DirStream> stale;
  {
    std::lock_guard lock(v->dir_streams_mu);
    auto& streams = v->dir_streams;
    for (size_t i = streams.size(); i-- > 0;) {
      Impl::DirStream& k = streams[i];
      bool mine = k.dev == inode->dev && k.ino == inode->ino;
      if (!mine && k.epoch == epoch) continue;
      if (mine && k.epoch == epoch) {
        kept = std::move(k);
      } else {
        stale.push_back(std::move(k));
      }
      streams.erase(streams.begin() + static_cast<ptrdiff_t>(i));
    }
  }
  for (Impl::DirStream& k : stale) CloseDirStream(&k);
  if (kept.dir != nullptr) {
    if (kept.next != offset) {
      seekdir(kept.dir, offset);
      kept.has_pending = false;
      kept.next = offset;
    }
    *out = std::move(kept);
    return 0;
  }
  int fd;
  {
    FdRef ref;
    int rv = v->table->Acquire(inode, &ref);
    if (rv < 0) return rv;
    fd = openat(ref.fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
  }
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    close(fd);
    return -err;
  }
  if (offset != 0) seekdir(dir, offset);
  out->dev = inode->dev;
  out->ino = inode->ino;
  out->epoch = epoch;
  out->next = offset;
  out->dir = dir;
  out->has_pending = false;
  return 0;
}

// Keeps the stream of a listing that is not finished, for its next request.
void PutDirStream(Impl* v, Impl::DirStream&& s) {
  Impl::DirStream evicted;
  {
    std::lock_guard lock(v->dir_streams_mu);
    auto& streams = v->dir_streams;
    // One stream a directory (two listings of it at once both put theirs back); else the oldest.
    auto it = std::find_if(streams.begin(), streams.end(), [&](const Impl::DirStream& k) {
      return k.dev == s.dev && k.ino == s.ino;
    });
    if (it == streams.end() && streams.size() >= Impl::kMaxDirStreams) it = streams.begin();
    if (it != streams.end()) {
      evicted = std::move(*it);
      streams.erase(it);
    }
    streams.push_back(std::move(s));
  }
  CloseDirStream(&evicted);
}

}  // namespace

// The kernel opens directories without asking (no_opendir after this ENOSYS) and caches their
// listings (FOPEN_CACHE_DIR); it drops a cached listing when a change through the mount
// touched the directory. libfuse 3.14 answers success to OPENDIR when there is no handler.
// A kernel that cannot do without OPENDIR gets an open with no handle and the same caching.
void Opendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  if (V(req)->no_opendir) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  fi->fh = 0;
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  fuse_reply_open(req, fi);
}

namespace {

void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, bool plus) {
  Impl* v = V(req);
  Inode* inode = v->ToInode(ino);
  Impl::DirStream s;
  int rv = TakeDirStream(v, inode, offset, &s);
  if (rv == -ENOENT || rv == -ESTALE) {
    fuse_reply_buf(req, nullptr, 0);  // removed while open: no entries, as on a local disk
    return;
  }
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  thread_local std::vector<char> reply;
  reply.resize(size);
  char* p = reply.data();
  size_t remaining = size;
  int err = 0;
  bool at_end = false;
  while (true) {
    const char* name;
    ino_t entry_ino;
    unsigned char type;
    off_t next;
    if (s.has_pending) {
      name = s.pending_name.c_str();
      entry_ino = s.pending_ino;
      type = s.pending_type;
      next = s.pending_next;
    } else {
      errno = 0;
      struct dirent* d = readdir(s.dir);
      if (d == nullptr) {
        err = errno;
        at_end = err == 0;
        break;
      }
      name = d->d_name;
      entry_ino = d->d_ino;
      type = d->d_type;
      next = d->d_off;
    }
    size_t used;
    if (plus) {
      fuse_entry_param e{};
      Inode* child = nullptr;
      if (IsDotOrDotDot(name)) {
        e.attr.st_ino = entry_ino;
        e.attr.st_mode = static_cast<mode_t>(type) << 12;
      } else {
        rv = LookupKnown(v, dirfd(s.dir), name, &e, &child) ? 0
                                                            : DoLookup(v, inode, name, &e, &child);
        if (rv == -ENOENT) {  // removed since readdir saw it
          s.has_pending = false;
          s.next = next;
          continue;
        }
        if (rv < 0) {
          err = -rv;
          break;
        }
      }
      used = fuse_add_direntry_plus(req, p, remaining, name, &e, next);
      if (used > remaining && child) v->table->Forget(child, 1);
    } else {
      struct stat st{};
      st.st_ino = entry_ino;
      st.st_mode = static_cast<mode_t>(type) << 12;
      used = fuse_add_direntry(req, p, remaining, name, &st, next);
    }
    if (used > remaining) {
      if (!s.has_pending) {
        s.pending_name = name;
        s.pending_ino = entry_ino;
        s.pending_type = type;
        s.pending_next = next;
        s.has_pending = true;
      }
      break;
    }
    p += used;
    remaining -= used;
    s.has_pending = false;
    s.next = next;
  }
  // A listing ends with an empty reply; until then its stream serves the next request.
  if (err != 0 || (at_end && remaining == size)) {
    CloseDirStream(&s);
  } else {
    PutDirStream(v, std::move(s));
  }
  if (err != 0 && remaining == size) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_buf(req, reply.data(), size - remaining);
}

}  // namespace

void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Guard(req, [&] { DoReaddir(req, ino, size, off, false); });
}

void Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Guard(req, [&] { DoReaddir(req, ino, size, off, true); });
}

void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  Impl* v = V(req);
  int rv;
  {
    FdRef ref;
    rv = v->table->Acquire(v->ToInode(ino), &ref);
    if (rv == 0) {
      int fd = openat(ref.fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) {
        rv = -errno;
      } else {
        rv = (datasync ? fdatasync(fd) : fsync(fd)) == 0 ? 0 : -errno;
        close(fd);
      }
    }
  }
  fuse_reply_err(req, -rv);
}

}  // namespace claimfs::fs::ops
