// Open files: create, open, read, write, sync, allocate, copy and seek, with the write
// reservations that keep the quota exact at the call.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
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
#include "journal.h"
#include "credentials.h"
#include "volume_impl.h"
#include "ops_internal.h"

namespace claimfs::fs::ops {
namespace {

// An allocated range [start, end) of a file, from FIEMAP or SEEK_DATA.
struct Extent {
  uint64_t start;
  uint64_t end;
};

// The allocated extents overlapping [begin, end). Returns false when the filesystem cannot
// tell (then everything counts as unallocated, which only makes the check stricter).
bool AllocatedExtents(int fd, uint64_t begin, uint64_t end, std::vector<Extent>* out) {
  constexpr unsigned kBatch = 64;
  alignas(fiemap) char buffer[sizeof(fiemap) + kBatch * sizeof(fiemap_extent)];
  auto* map = reinterpret_cast<fiemap*>(buffer);
  uint64_t pos = begin;
  while (pos < end) {
    std::memset(buffer, 0, sizeof buffer);
    map->fm_start = pos;
    map->fm_length = end - pos;
    map->fm_extent_count = kBatch;
    if (ioctl(fd, FS_IOC_FIEMAP, map) != 0) break;
    if (map->fm_mapped_extents == 0) return true;
    bool last = false;
    for (unsigned i = 0; i < map->fm_mapped_extents; ++i) {
      const fiemap_extent& x = map->fm_extents[i];
      out->push_back({x.fe_logical, x.fe_logical + x.fe_length});
      pos = x.fe_logical + x.fe_length;
      if (x.fe_flags & FIEMAP_EXTENT_LAST) last = true;
    }
    if (last) return true;
  }
  if (pos >= end) return true;
  // No FIEMAP: SEEK_DATA/SEEK_HOLE see written data (preallocated ranges read as holes).
  out->clear();
  off_t data = static_cast<off_t>(begin);
  while (static_cast<uint64_t>(data) < end) {
    data = lseek(fd, data, SEEK_DATA);
    if (data < 0) return errno == ENXIO;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return false;
    out->push_back({static_cast<uint64_t>(data), static_cast<uint64_t>(hole)});
    data = hole;
  }
  return true;
}

// Near full: finds the longest prefix of [offset, offset + length) whose not yet allocated
// blocks fit in what is free, and reserves those blocks. Returns the prefix length (0 when
// nothing fits) with *reserved set.
uint64_t ReserveFittingPrefix(Impl* v, int fd, uint64_t offset, uint64_t length, uint64_t extra,
                              uint64_t* reserved) {
  const uint64_t block = v->block_size;
  const uint64_t begin = offset / block * block;
  const uint64_t end = (offset + length + block - 1) / block * block;
  std::vector<Extent> extents;
  AllocatedExtents(fd, begin, end, &extents);
  // The block-aligned ranges not yet allocated, in file order.
  std::vector<Extent> gaps;
  uint64_t pos = begin;
  for (const Extent& x : extents) {
    uint64_t data_begin = std::max(begin, x.start / block * block);
    uint64_t data_end = std::min(end, (x.end + block - 1) / block * block);
    if (data_begin > pos) gaps.push_back({pos, data_begin});
    pos = std::max(pos, data_end);
  }
  if (pos < end) gaps.push_back({pos, end});
  if (gaps.empty()) {  // an overwrite in place allocates nothing, not even metadata
    *reserved = 0;
    return length;
  }

  for (int attempt = 0; attempt < 8; ++attempt) {
    uint64_t available = v->quota->AvailableBytes();
    if (available <= extra) return 0;
    available -= extra;
    uint64_t need = 0;
    uint64_t limit = end;  // the prefix may reach this far
    for (const Extent& gap : gaps) {
      uint64_t size = gap.end - gap.start;
      if (need + size > available) {
        uint64_t take = (available - need) / block * block;
        limit = gap.start + take;
        need += take;
        break;
      }
      need += size;
    }
    uint64_t prefix = limit > offset ? std::min(length, limit - offset) : 0;
    if (prefix == 0) return 0;
    if (v->quota->TryReserveBytes(need + extra)) {
      *reserved = need + extra;
      return prefix;
    }
  }
  return 0;
}

// Reserves space for writing [offset, offset + length) of `fd`, plus `extra` bytes of
// metadata: the worst case when it fits, otherwise what is really unallocated. Returns how much
// of the range may be written.
uint64_t ReserveForWrite(Impl* v, int fd, uint64_t offset, uint64_t length, uint64_t extra,
                         uint64_t* reserved) {
  *reserved = BlockSpan(offset, length, v->block_size) + extra;
  if (v->quota->TryReserveBytes(*reserved)) return length;
  *reserved = 0;
  return ReserveFittingPrefix(v, fd, offset, length, extra, reserved);
}

// Near full, a write settles exactly at the call, backing-filesystem metadata included.
// ext4 (delayed allocation) allocates the data blocks of a write at once but its extent tree
// only at write-back: a file of many extents (sparse writes) grows a leaf block per ~340
// extents, and those blocks used to arrive after the write had been accounted, past the
// capacity. Below kNearFullBlocks free, a write therefore (1) first writes back the recent
// writes, once on the way down, so what they still had to allocate is counted, (2) reserves
// kExtentTreeBlocks more when the file already has more extents than the inode holds (a leaf
// split, an index block and one more level), (3) writes its own range back before measuring it.
constexpr uint64_t kNearFullBlocks = 1024;
constexpr uint32_t kInodeExtents = 4;
constexpr uint64_t kExtentTreeBlocks = 3;

// The number of extents of `fd`'s file, 0 when FIEMAP cannot tell.
uint32_t ExtentCount(int fd) {
  fiemap map{};
  map.fm_start = 0;
  map.fm_length = FIEMAP_MAX_OFFSET;
  map.fm_extent_count = 0;
  if (ioctl(fd, FS_IOC_FIEMAP, &map) != 0) return 0;
  return map.fm_mapped_extents;
}

// Before a write into `fd`: the metadata allowance to reserve, with *settle set when the write
// must be written back and measured at the call.
uint64_t PrepareSettle(Impl* v, int fd, bool* settle) {
  *settle = v->quota->AvailableBytes() < kNearFullBlocks * v->block_size;
  if (!*settle) {
    if (v->recent_settled.load(std::memory_order_relaxed)) {
      v->recent_settled.store(false, std::memory_order_relaxed);
    }
    return 0;
  }
  if (!v->recent_settled.exchange(true)) RemeasureRecentWrites(v);
  return ExtentCount(fd) >= kInodeExtents ? kExtentTreeBlocks * v->block_size : 0;
}

// After a settled write of [offset, offset + length): allocates now what write-back would.
void SettleRange(int fd, off_t offset, uint64_t length) {
  if (length == 0) return;
  sync_file_range(fd, offset, static_cast<off_t>(length),
                  SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
}

// What a write or copy into a file holds of the quota between its two halves.
struct WriteQuota {
  uint64_t reserved = 0;
  bool settle = false;  // near full: see kNearFullBlocks
};

// Before writing `length` bytes at `offset` of `fd`: how many of them fit (all of them on a
// volume without a limit), reserved in `quota`; -errno (a counted refusal) when none do.
int64_t BeginQuotaWrite(Impl* v, int fd, off_t offset, size_t length, WriteQuota* quota) {
  if (!v->quota->enabled()) return static_cast<int64_t>(length);
  uint64_t extra = PrepareSettle(v, fd, &quota->settle);
  uint64_t allowed =
      ReserveForWrite(v, fd, static_cast<uint64_t>(offset), length, extra, &quota->reserved);
  if (allowed == 0 && length > 0) return Refuse(v);
  return static_cast<int64_t>(allowed);
}

// After the write (`written` bytes, or a negative failure): the reservation becomes what the
// file really allocated.
void EndQuotaWrite(Impl* v, Inode* inode, int fd, off_t offset, ssize_t written,
                   const WriteQuota& quota) {
  if (!v->quota->enabled()) return;
  if (quota.settle && written > 0) SettleRange(fd, offset, static_cast<uint64_t>(written));
  v->quota->Commit(quota.reserved, RemeasureFd(inode, fd));
  NoteWritten(v, inode);
}

// ---- files ----

// Write-only opens bypass the kernel's page cache (FOPEN_DIRECT_IO): the caller's pages go
// straight into the request, one copy fewer, and the kernel's direct path does not ask for
// security.capability before every write as its cached path does. Such an fd cannot be read or
// mapped shared, so nothing is lost; other opens of the file stay cached (the kernel
// invalidates their pages over a direct write). O_DIRECT asks for the same.
bool UsesDirectIo(int open_flags) {
  return (open_flags & O_ACCMODE) == O_WRONLY || (open_flags & O_DIRECT);
}

// On a cached write the kernel clears setuid/setgid and file capabilities itself; on a direct
// write it leaves that to the server through a flag libfuse 3.14 does not pass on. Files with
// something to clear therefore stay cached.
bool HasPrivilegesToKill(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return true;
  if ((st.st_mode & S_ISUID) || (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) {
    return true;
  }
  return fgetxattr(fd, "security.capability", nullptr, 0) >= 0;
}

void SetCaching(fuse_file_info* fi, int fd) {
  fi->keep_cache = 1;  // the daemon is the only writer: cached pages stay valid across opens
  if (UsesDirectIo(fi->flags) && !HasPrivilegesToKill(fd)) fi->direct_io = 1;
}

// The flags for the backing open. O_DIRECT is dropped (FUSE's buffers are not aligned for it;
// the kernel already bypasses its cache). For cached opens O_SYNC/O_DSYNC are dropped too:
// the kernel follows every such write with FSYNC, and honouring both flushed the disk twice.
// O_APPEND is dropped: the kernel sends every WRITE with its offset (the end of file for an
// append), and a pwrite on an O_APPEND fd would ignore it, so a WRITE resent after an adoption
// would append twice.
int BackingOpenFlags(int open_flags) {
  int flags = open_flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_APPEND);
  if (!UsesDirectIo(open_flags)) flags &= ~(O_SYNC | O_DSYNC);
  return flags | O_CLOEXEC;
}

// Kernel mode: every regular-file open is a passthrough open of the node's backing file, so
// reads, writes and mmap go from the kernel straight to it and the kernel refuses a write past
// the limit itself (compat_passthrough.h). A set-id file also gets FOPEN_DIRECT_IO: a
// passthrough write runs with the daemon's credentials (CAP_FSETID) and would leave the bits,
// so its writes come to WriteBuf, which clears them. Returns the backing id (> 0), 0 for an
// ordinary open (accounted mode, or passthrough off for the volume), or -errno.
int AttachBacking(Impl* v, Inode* inode, int fd, bool* direct_io) {
  if (!v->passthrough || inode->type != S_IFREG || !v->passthrough->enabled()) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  *direct_io = IsSetId(st.st_mode);
  int id = v->passthrough->Attach(inode, fd);
  if (id < 0 && !v->passthrough->enabled()) return 0;  // refused for good: ordinary opens now
  return id;
}

// Hands the open file `fd` of `inode` to the kernel: a passthrough open in kernel mode, else a
// cached or direct one; the reply to CREATE (with `entry`) or to OPEN (`entry` null). Takes
// `fd` over: it is closed if the open fails or the kernel is gone and will send no RELEASE.
void ReplyOpened(fuse_req_t req, Impl* v, Inode* inode, int fd, fuse_file_info* fi,
                 const fuse_entry_param* entry) {
  bool direct_io = false;
  int backing = AttachBacking(v, inode, fd, &direct_io);
  if (backing < 0) {
    close(fd);
    fuse_reply_err(req, -backing);
    return;
  }
  SetCaching(fi, fd);
  FileKind kind = backing > 0 ? FileKind::kPassthrough
                  : fi->direct_io ? FileKind::kDirect
                                  : FileKind::kCached;
  int64_t fh = TrackFile(v, inode, fd, BackingOpenFlags(fi->flags) & ~O_CLOEXEC, kind);
  if (fh < 0) {
    if (backing > 0) v->passthrough->Detach(fd);
    close(fd);
    fuse_reply_err(req, static_cast<int>(-fh));
    return;
  }
  {
    std::lock_guard lock(inode->mu);
    ++inode->open_count;
  }
  fi->fh = static_cast<uint64_t>(fh);
  int sent;
  if (backing > 0) {
    sent = entry ? Passthrough::ReplyCreate(req, *entry, fi->fh, backing, direct_io)
                 : Passthrough::ReplyOpen(req, fi->fh, backing, direct_io);
  } else {
    sent = entry ? fuse_reply_create(req, entry, fi) : fuse_reply_open(req, fi);
  }
  if (sent != 0) {
    if (backing > 0) v->passthrough->Detach(fd);
    CloseFile(v, fi->fh);
    CloseAccounting(v, inode);
  }
}

}  // namespace

void Create(fuse_req_t req, fuse_ino_t parent_ino, const char* name, mode_t mode,
            fuse_file_info* fi) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  StopPointAtRequest("create");
  Inode* parent = v->ToInode(parent_ino);
  NameReservation reservation;
  int rv = ReserveName(v, 0, true, &reservation);
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  int flags = BackingOpenFlags(fi->flags) | O_NOFOLLOW;
  int fd = -1;
  bool created = false;
  fuse_entry_param e;
  Inode* inode = nullptr;
  // Only an exclusive create can answer differently when redone: it is journalled
  // (docs/dataplane.md 7.3), with whether the name existed before.
  bool exclusive = (fi->flags & O_EXCL) != 0;
  InFlight journal(v->arena.get(), &v->resend, FUSE_CREATE);
  {
    NamespaceChange ns(v);
    FdRef pref;
    rv = v->table->Acquire(parent, &pref);
    if (rv == 0 && exclusive && journal.done()) {
      // Resent after an adoption: the previous server finished it and died before replying.
      rv = journal.Carry();
      if (rv == 0) {
        const fuse_ctx* ctx = fuse_req_ctx(req);
        CallerCredentials as_caller(ctx->uid, ctx->gid);
        fd = openat(pref.fd(), name, flags);
        if (fd < 0) rv = -errno;
      }
    } else if (rv == 0) {
      if (exclusive) {
        struct stat before;
        bool existed = journal.started()
                           ? journal.existed()
                           : fstatat(pref.fd(), name, &before, AT_SYMLINK_NOFOLLOW) == 0;
        journal.Start(existed, 0, 0);
      }
      const fuse_ctx* ctx = fuse_req_ctx(req);
      CallerCredentials as_caller(ctx->uid, ctx->gid);
      fd = openat(pref.fd(), name, flags | O_CREAT | O_EXCL, mode);
      if (fd >= 0) {
        created = true;
      } else if (errno == EEXIST &&
                 (!exclusive || (journal.started() && !journal.existed()) || journal.legacy())) {
        // Lost a race with another create, or an exclusive CREATE resent after an adoption that
        // the previous server made before dying (the kernel holds the parent's lock, so no one
        // else can have since its record; without a record, 7.5's rule): open it.
        fd = openat(pref.fd(), name, flags);
      }
      if (fd < 0) rv = -errno;
      if (exclusive) journal.Finish(rv);
    }
    if (rv == 0) {
      rv = DoLookup(v, parent, name, &e, &inode);
      if (rv < 0) close(fd);
    }
  }
  CommitName(v, reservation, parent, created ? static_cast<int64_t>(AllocatedBytes(e.attr)) : 0,
             rv == 0 && created);
  if (rv < 0) {
    CrashPointBeforeReply("create");
    fuse_reply_err(req, -rv);
    return;
  }
  if (!created && (fi->flags & O_TRUNC) && RequestKillsSuidgid()) {
    KillSetIdBits(req, fd, Kill::kFlagged);
  }
  CrashPointBeforeReply("create");
  ReplyOpened(req, v, inode, fd, fi, &e);
}

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Impl* v = V(req);
  if (v->readahead_pending.load(std::memory_order_relaxed) && v->readahead_pending.exchange(false)) {
    MatchBackingReadahead(v->backing_device, v->options.mountpoint);
  }
  Inode* inode = v->ToInode(ino);
  if (v->options.read_only && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))) {
    fuse_reply_err(req, EROFS);
    return;
  }
  int flags = BackingOpenFlags(fi->flags) & ~O_NOFOLLOW;
  int fd = -1;
  int err = 0;
  {
    FdRef ref;
    int rv = v->table->Acquire(inode, &ref);
    if (rv < 0) {
      err = -rv;
    } else if ((fd = open(ProcPath(ref.fd()).buf, flags)) < 0) {
      err = errno;
    }
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  if ((flags & O_TRUNC) && v->quota->enabled()) {
    int64_t delta = RemeasureFd(inode, fd);
    if (delta != 0) v->quota->Adjust(delta, 0);
  }
  if ((flags & O_TRUNC) && RequestKillsSuidgid()) KillSetIdBits(req, fd, Kill::kFlagged);
  ReplyOpened(req, v, inode, fd, fi, nullptr);
}

void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Impl* v = V(req);
  int fd = FileFd(v, fi);
  if (fd == -EBADF) {  // a RELEASE resent after an adoption, already done
    fuse_reply_err(req, 0);
    return;
  }
  if (v->passthrough && fd >= 0) v->passthrough->Detach(fd);
  CloseFile(v, fi->fh);
  CloseAccounting(v, v->ToInode(ino));
  fuse_reply_err(req, 0);
}

void Read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  int fd = FileFd(V(req), fi);
  if (fd < 0) {
    fuse_reply_err(req, -fd);
    return;
  }
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in_buf, off_t off, fuse_file_info* fi) {
  Impl* v = V(req);
  int fd = FileFd(v, fi);
  if (fd < 0) {
    fuse_reply_err(req, -fd);
    return;
  }
  size_t size = fuse_buf_size(in_buf);
  if (RequestKillsSuidgid()) {
    if (int rv = KillSetIdBits(req, fd, Kill::kFlagged); rv < 0) {
      fuse_reply_err(req, -rv);
      return;
    }
  }
  WriteQuota quota;
  int64_t allowed = BeginQuotaWrite(v, fd, off, size, &quota);
  if (allowed < 0) {
    fuse_reply_err(req, static_cast<int>(-allowed));
    return;
  }
  fuse_bufvec out = FUSE_BUFVEC_INIT(static_cast<size_t>(allowed));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = fd;
  out.buf[0].pos = off;
  ssize_t written = fuse_buf_copy(&out, in_buf, FUSE_BUF_SPLICE_NONBLOCK);
  EndQuotaWrite(v, v->ToInode(ino), fd, off, written, quota);
  if (written < 0) {
    fuse_reply_err(req, static_cast<int>(-written));
  } else {
    fuse_reply_write(req, static_cast<size_t>(written));
  }
}

void Fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  int fd = FileFd(V(req), fi);
  if (fd < 0) {
    fuse_reply_err(req, -fd);
    return;
  }
  int rv = datasync ? fdatasync(fd) : fsync(fd);
  fuse_reply_err(req, rv == 0 ? 0 : errno);
}

namespace {

// FALLOCATE collapse/insert range: moves the data after `offset`, so doing it twice corrupts
// the file. Journalled with the file's size before (docs/dataplane.md 7.3): a resent one the
// dead server started is done if the size moved, and only then. 0 or -errno.
int MoveRange(Impl* v, int fd, int mode, off_t offset, off_t length) {
  InFlight journal(v->arena.get(), &v->resend, FUSE_FALLOCATE);
  if (journal.done()) return journal.Carry();
  struct stat st;
  int rv = StatFd(fd, &st);
  if (rv < 0) return rv;
  if (journal.started()) {
    journal.Start(false, 0, 0);
    if (static_cast<uint64_t>(st.st_size) != journal.dev()) return journal.Finish(0);
  } else {
    journal.Start(false, static_cast<uint64_t>(st.st_size), 0);
  }
  return journal.Finish(fallocate(fd, mode, offset, length) == 0 ? 0 : -errno);
}

}  // namespace

void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* fi) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  int fd = FileFd(v, fi);
  if (fd < 0) {
    fuse_reply_err(req, -fd);
    return;
  }
  if (int rv = KillSetIdBits(req, fd, Kill::kUnflagged); rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  uint64_t reserved = 0;
  bool frees = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE);
  if (v->quota->enabled() && !frees) {
    uint64_t len = static_cast<uint64_t>(length);
    // fallocate is all or nothing: the whole range must fit.
    if (ReserveForWrite(v, fd, static_cast<uint64_t>(offset), len, 0, &reserved) != len) {
      v->quota->Commit(reserved, 0);
      fuse_reply_err(req, -Refuse(v));
      return;
    }
  }
  int rv = 0;
  if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
    rv = MoveRange(v, fd, mode, offset, length);
  } else {
    rv = fallocate(fd, mode, offset, length) == 0 ? 0 : -errno;
  }
  if (v->quota->enabled()) {
    v->quota->Commit(reserved, RemeasureFd(v->ToInode(ino), fd));
    NoteWritten(v, v->ToInode(ino));
  }
  CrashPointBeforeReply("fallocate");
  fuse_reply_err(req, -rv);
}

void CopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in,
                   fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                   int flags) {
  Impl* v = V(req);
  int out_fd = FileFd(v, fi_out);
  int in_fd = FileFd(v, fi_in);
  if (out_fd < 0 || in_fd < 0) {
    fuse_reply_err(req, out_fd < 0 ? -out_fd : -in_fd);
    return;
  }
  if (int rv = KillSetIdBits(req, out_fd, Kill::kUnflagged); rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  WriteQuota quota;
  int64_t allowed = BeginQuotaWrite(v, out_fd, off_out, len, &quota);
  if (allowed < 0) {
    fuse_reply_err(req, static_cast<int>(-allowed));
    return;
  }
  loff_t in_pos = off_in;
  loff_t out_pos = off_out;
  ssize_t n = copy_file_range(in_fd, &in_pos, out_fd, &out_pos,
                              static_cast<size_t>(allowed), static_cast<unsigned>(flags));
  int err = errno;
  EndQuotaWrite(v, v->ToInode(ino_out), out_fd, off_out, n, quota);
  if (n < 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_write(req, static_cast<size_t>(n));
  }
}

void Lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  int fd = FileFd(V(req), fi);
  if (fd < 0) {
    fuse_reply_err(req, -fd);
    return;
  }
  off_t result = lseek(fd, off, whence);
  if (result < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_lseek(req, result);
  }
}

}  // namespace claimfs::fs::ops
