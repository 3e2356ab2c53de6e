// The operations table of a volume (handlers in ops_*.cc), the extended-attribute handlers, and
// what a stopped volume still has to close.
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fuse.h>
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
#include "journal.h"
#include "volume_impl.h"
#include "ops_internal.h"

namespace claimfs::fs {
namespace ops {
namespace {

// ---- extended attributes ----

// SETXATTR with XATTR_CREATE or XATTR_REPLACE (opcode FUSE_SETXATTR) and REMOVEXATTR answer
// differently when redone (EEXIST, ENODATA): journalled with whether the attribute existed
// before (docs/dataplane.md 7.3). A resent one the dead server started is redone without the
// condition its record says held, and a removal finding the attribute gone was done.
int ChangeXattr(Impl* v, uint32_t opcode, const char* path, const char* name, const char* value,
                size_t size, int flags) {
  InFlight journal(v->arena.get(), &v->resend, opcode);
  if (journal.done()) return journal.Carry();
  bool existed = journal.started() ? journal.existed() : getxattr(path, name, nullptr, 0) >= 0;
  journal.Start(existed, 0, 0);
  bool redo = journal.started() || journal.legacy();
  if (redo && opcode == FUSE_SETXATTR) {
    if ((flags & XATTR_CREATE) && !existed) flags &= ~XATTR_CREATE;
    if ((flags & XATTR_REPLACE) && existed) flags &= ~XATTR_REPLACE;
  }
  int rv = opcode == FUSE_SETXATTR ? setxattr(path, name, value, size, flags)
                                   : removexattr(path, name);
  rv = rv == 0 ? 0 : -errno;
  if (redo && opcode == FUSE_REMOVEXATTR && rv == -ENODATA && existed) rv = 0;
  return journal.Finish(rv);
}

void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  Inode* inode = v->ToInode(ino);
  // An attribute may need a block of its own.
  uint64_t reserved = 0;
  if (v->quota->enabled()) {
    if (!v->quota->TryReserveBytes(v->block_size)) {
      fuse_reply_err(req, -Refuse(v));
      return;
    }
    reserved = v->block_size;
  }
  int rv;
  {
    FdRef ref;
    rv = v->table->Acquire(inode, &ref);
    if (rv == 0) {
      rv = (flags & (XATTR_CREATE | XATTR_REPLACE))
               ? ChangeXattr(v, FUSE_SETXATTR, ProcPath(ref.fd()).buf, name, value, size, flags)
               : setxattr(ProcPath(ref.fd()).buf, name, value, size, flags) == 0 ? 0 : -errno;
    }
    if (v->quota->enabled()) {
      v->quota->Commit(reserved, ref.fd() >= 0 ? RemeasureFd(inode, ref.fd()) : 0);
    }
  }
  CrashPointBeforeReply("setxattr");
  fuse_reply_err(req, -rv);
}

// getxattr and listxattr: with size 0 the kernel asks for the length, else for the bytes.
template <typename Query>
void ReplyXattrQuery(fuse_req_t req, fuse_ino_t ino, size_t size, Query query) {
  Impl* v = V(req);
  Guard(req, [&] {
    std::vector<char> buffer(size);
    ssize_t n = -1;
    int err = 0;
    {
      FdRef ref;
      int rv = v->table->Acquire(v->ToInode(ino), &ref);
      if (rv < 0) {
        err = -rv;
      } else if ((n = query(ProcPath(ref.fd()).buf, size ? buffer.data() : nullptr, size)) < 0) {
        err = errno;
      }
    }
    if (err != 0) {
      fuse_reply_err(req, err);
    } else if (size == 0) {
      fuse_reply_xattr(req, static_cast<size_t>(n));
    } else {
      fuse_reply_buf(req, buffer.data(), static_cast<size_t>(n));
    }
  });
}

void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  ReplyXattrQuery(req, ino, size, [name](const char* path, char* out, size_t out_size) {
    return getxattr(path, name, out, out_size);
  });
}

void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  ReplyXattrQuery(req, ino, size, [](const char* path, char* out, size_t out_size) {
    return listxattr(path, out, out_size);
  });
}

void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  Inode* inode = v->ToInode(ino);
  int rv;
  {
    FdRef ref;
    rv = v->table->Acquire(inode, &ref);
    if (rv == 0) rv = ChangeXattr(v, FUSE_REMOVEXATTR, ProcPath(ref.fd()).buf, name, nullptr, 0, 0);
    if (rv == 0 && v->quota->enabled()) v->quota->Adjust(RemeasureFd(inode, ref.fd()), 0);
  }
  CrashPointBeforeReply("removexattr");
  fuse_reply_err(req, -rv);
}

fuse_lowlevel_ops MakeOperations() {
  fuse_lowlevel_ops ops{};
  ops.init = Init;
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
  ops.getattr = Getattr;
  ops.setattr = Setattr;
  ops.readlink = Readlink;
  ops.mknod = Mknod;
  ops.mkdir = Mkdir;
  ops.symlink = Symlink;
  ops.link = Link;
  ops.unlink = Unlink;
  ops.rmdir = Rmdir;
  ops.rename = Rename;
  ops.create = Create;
  ops.open = Open;
  ops.release = Release;
  ops.read = Read;
  ops.write_buf = WriteBuf;
  ops.fsync = Fsync;
  ops.fallocate = Fallocate;
  ops.copy_file_range = CopyFileRange;
  ops.lseek = Lseek;
  ops.opendir = Opendir;
  ops.readdir = Readdir;
  ops.readdirplus = Readdirplus;
  ops.fsyncdir = Fsyncdir;
  ops.statfs = Statfs;
  ops.setxattr = Setxattr;
  ops.getxattr = Getxattr;
  ops.listxattr = Listxattr;
  ops.removexattr = Removexattr;
  // No flush, getlk/setlk or flock: the kernel then keeps POSIX and BSD locks itself, which is
  // exact because every user of the volume goes through this one mount; and without a flush
  // handler close(2) costs no round trip.
  return ops;
}

}  // namespace
}  // namespace ops

void CloseHandlesLeftOpen(Volume::Impl* v) {
  if (v->passthrough) v->passthrough->Forget();
  if (v->files) v->files->CloseAll();
  std::lock_guard lock(v->dir_streams_mu);
  for (Volume::Impl::DirStream& s : v->dir_streams) ops::CloseDirStream(&s);
  v->dir_streams.clear();
}

const fuse_lowlevel_ops& VolumeOperations() {
  static const fuse_lowlevel_ops table = ops::MakeOperations();
  return table;
}

}  // namespace claimfs::fs
