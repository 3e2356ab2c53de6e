// The FUSE low-level handlers of a volume: a passthrough of the backing directory through fds
// relative to the volume root, with every allocation checked against the quota at the call.
//
// Conventions: helpers return 0 / a count or -errno; only the handlers talk to libfuse.
// Handlers never throw: the few allocations they make are small, and std::bad_alloc becomes
// ENOMEM at the boundary (Guard).
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

namespace claimfs::fs {
namespace {

using Impl = Volume::Impl;

Impl* V(fuse_req_t req) { return static_cast<Impl*>(fuse_req_userdata(req)); }

// "/proc/self/fd/N": reopens an O_PATH fd with real access, naming exactly that object.
struct ProcPath {
  explicit ProcPath(int fd) { std::snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd); }
  char buf[32];
};

int StatFd(int fd, struct stat* st) {
  return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

uint64_t AllocatedBytes(const struct stat& st) { return static_cast<uint64_t>(st.st_blocks) * 512; }

// Records the inode's allocation as measured now and returns the change since last time.
int64_t Remeasure(Inode* inode, const struct stat& st) {
  std::lock_guard lock(inode->mu);
  int64_t delta = static_cast<int64_t>(AllocatedBytes(st)) - static_cast<int64_t>(inode->allocated);
  inode->allocated = AllocatedBytes(st);
  return delta;
}

// fstat under the inode's lock, so concurrent measurements of one file apply in order.
int64_t RemeasureFd(Inode* inode, int fd) {
  std::lock_guard lock(inode->mu);
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return 0;
  int64_t delta = static_cast<int64_t>(AllocatedBytes(st)) - static_cast<int64_t>(inode->allocated);
  inode->allocated = AllocatedBytes(st);
  return delta;
}

// Write-back can still add metadata blocks to a file for about dirty_expire_centisecs (30 s).
constexpr auto kWriteBackWindow = std::chrono::seconds(60);
constexpr size_t kMaxRecentWrites = 65536;

void NoteWritten(Impl* v, Inode* inode) {
  if (inode->recently_written.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(v->recent_mu);
  if (inode->recently_written.load() || v->recently_written.size() >= kMaxRecentWrites) return;
  inode->recently_written = true;
  v->recently_written.push_back({inode->dev, inode->ino, std::chrono::steady_clock::now()});
}

// Measures the recently written files again, after writing them back so the backing filesystem
// allocates now what it would allocate later (delayed allocation, extent blocks): what statfs
// then reports is what du will see. Write-back already under way (the flusher's) is waited for,
// and so is the I/O started here: ext4 converts unwritten extents, and may add an extent block,
// only when the I/O completes. Forgets files past the write-back window.
void RemeasureRecentWrites(Impl* v) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(v->recent_mu);
  auto& recent = v->recently_written;
  size_t kept = 0;
  for (const Impl::RecentWrite& w : recent) {
    bool expired = now - w.since > kWriteBackWindow;
    bool known = v->table->WithKnown(w.dev, w.ino, [&](Inode* inode) {
      FdRef ref;
      if (v->table->Acquire(inode, &ref) == 0) {
        int fd = open(ProcPath(ref.fd()).buf, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
          sync_file_range(fd, 0, 0,
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                              SYNC_FILE_RANGE_WAIT_AFTER);
          close(fd);
        }
        int64_t delta = RemeasureFd(inode, ref.fd());
        if (delta != 0) v->quota->Adjust(delta, 0);
      }
      if (expired) inode->recently_written = false;
    });
    if (known && !expired) recent[kept++] = w;
  }
  recent.resize(kept);
}

void FillEntry(Impl* v, Inode* inode, const struct stat& st, fuse_entry_param* e) {
  *e = fuse_entry_param{};
  e->ino = v->ToIno(inode);
  e->attr = st;
  e->attr_timeout = v->timeout;
  e->entry_timeout = v->timeout;
}

// Looks `name` up in `parent` without following a final symlink and registers one kernel
// reference on the result.
int DoLookup(Impl* v, Inode* parent, const char* name, fuse_entry_param* e, Inode** out = nullptr,
             bool* created_out = nullptr) {
  if (IsDotOrDotDot(name)) return -EINVAL;
  FdRef pref;
  int rv = v->table->Acquire(parent, &pref);
  if (rv < 0) return rv;
  int fd = openat(pref.fd(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  rv = StatFd(fd, &st);
  if (rv < 0) {
    close(fd);
    return rv;
  }
  Inode* inode = nullptr;
  bool created = false;
  rv = v->table->Intern(fd, st, &inode, &created);
  if (rv < 0) return rv;
  if (created) {
    std::lock_guard lock(inode->mu);
    inode->allocated = AllocatedBytes(st);
  } else if (v->quota->enabled()) {
    int64_t delta = Remeasure(inode, st);
    if (delta != 0) v->quota->Adjust(delta, 0);
  }
  FillEntry(v, inode, st, e);
  if (out) *out = inode;
  if (created_out) *created_out = created;
  return 0;
}

// Whether the caller is in group `gid`: its fsgid or one of its supplementary groups.
bool CallerInGroup(fuse_req_t req, gid_t gid) {
  if (fuse_req_ctx(req)->gid == gid) return true;
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<size_t>(n));
    n = fuse_req_getgroups(req, n, groups.data());
  }
  if (n <= 0) return false;  // unknown: clear the bit, the safe side
  groups.resize(std::min(groups.size(), static_cast<size_t>(n)));
  return std::find(groups.begin(), groups.end(), gid) != groups.end();
}

// Whether the caller has CAP_FSETID, from /proc (only asked when a file has set-id bits).
// Unknown counts as no: the bits are then cleared, the safe side.
bool CallerHasFsetid(fuse_req_t req) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(fuse_req_ctx(req)->pid));
  std::FILE* in = std::fopen(path, "re");
  if (in == nullptr) return false;
  unsigned long long effective = 0;
  bool found = false;
  char line[256];
  while (!found && std::fgets(line, sizeof line, in)) {
    found = std::sscanf(line, "CapEff: %llx", &effective) == 1;
  }
  std::fclose(in);
  return found && (effective & (1ULL << CAP_FSETID));
}

// Why the server clears set-id bits (FUSE_HANDLE_KILLPRIV_V2 makes it the server's job; the
// backing filesystem would not, because the server writes with CAP_FSETID).
enum class Kill {
  kFlagged,    // WRITE/SETATTR(size)/OPEN(O_TRUNC) carried the kernel's kill flag: no CAP_FSETID
  kChown,      // SETATTR(uid/gid) with the flag, which the kernel sets whatever the caller
  kUnflagged,  // COPY_FILE_RANGE, FALLOCATE: the kernel leaves it to us and sends no flag
};

// Clears the set-id bits of a regular file as the kernel would for the caller
// (setattr_should_drop_suidgid; chown_common for chown): set-uid; set-gid where group-execute
// is set, or where the caller is neither in the file's group nor has CAP_FSETID; nothing for a
// caller with CAP_FSETID except on chown. `fd` may be an O_PATH fd. 0 or -errno.
int KillSetIdBits(fuse_req_t req, int fd, Kill why) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode) || !(st.st_mode & (S_ISUID | S_ISGID))) return 0;
  bool privileged = why != Kill::kFlagged && CallerHasFsetid(req);
  if (privileged && why != Kill::kChown) return 0;
  mode_t kill = st.st_mode & S_ISUID;
  if (st.st_mode & S_ISGID) {
    if ((st.st_mode & S_IXGRP) || (!privileged && !CallerInGroup(req, st.st_gid))) kill |= S_ISGID;
  }
  if (kill == 0) return 0;
  return chmod(ProcPath(fd).buf, st.st_mode & 07777 & ~kill) == 0 ? 0 : -errno;
}

// Looks up an entry of a listing that the kernel already knows (a tree listed again, or
// listed after it was created through the mount): one fstatat and the table, where DoLookup
// opens the object, stats it and closes it again. Registers one kernel reference like
// DoLookup. False when the entry is not a known inode (then DoLookup does the work).
bool LookupKnown(Impl* v, int dir_fd, const char* name, fuse_entry_param* e, Inode** out) {
  struct stat st;
  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  Inode* found = nullptr;
  int64_t delta = 0;
  v->table->WithKnown(st.st_dev, st.st_ino, [&](Inode* inode) {
    if (inode == v->table->root() || inode->type != (st.st_mode & S_IFMT)) return;
    v->table->Ref(inode);
    found = inode;
    if (v->quota->enabled()) delta = Remeasure(inode, st);
  });
  if (found == nullptr) return false;
  if (delta != 0) v->quota->Adjust(delta, 0);
  FillEntry(v, found, st, e);
  *out = found;
  return true;
}

// Answers EROFS when the volume is read-only. The kernel refuses most writes on an `ro` mount
// itself; this covers the rest and a volume made read-only by its options alone.
bool RefusedAsReadOnly(fuse_req_t req, Impl* v) {
  if (!v->options.read_only) return false;
  fuse_reply_err(req, EROFS);
  return true;
}

int Refuse(Impl* v) {
  v->quota->RecordRejection();
  return -v->quota_errno;
}

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

// The inode lost a link; if it was the last, its space is free now, or at its last close.
void AccountRemoved(Impl* v, Inode* victim, const struct stat& before) {
  bool last_link = S_ISDIR(before.st_mode) || before.st_nlink <= 1;
  if (!last_link) return;
  if (victim == nullptr) {
    v->quota->Adjust(-static_cast<int64_t>(AllocatedBytes(before)), -1);
    return;
  }
  v->table->Unindex(victim);
  bool freed_now = false;
  uint64_t freed = 0;
  {
    std::lock_guard lock(victim->mu);
    if (victim->open_count > 0) {
      victim->orphan = true;
    } else {
      freed_now = true;
      freed = victim->allocated;
      victim->allocated = 0;
    }
  }
  if (freed_now) {
    v->quota->Adjust(-static_cast<int64_t>(freed), -1);
    v->table->DropFd(victim);
  }
}

// Before removing the last link of an open file, keep an fd to it: it can no longer be
// reopened by handle once unlinked.
void PinIfOpen(Impl* v, Inode* victim, const struct stat& st) {
  if (victim == nullptr || (!S_ISDIR(st.st_mode) && st.st_nlink > 1)) return;
  bool open = false;
  {
    std::lock_guard lock(victim->mu);
    open = victim->open_count > 0;
  }
  if (open) v->table->Pin(victim);
}

void TrackFile(Impl* v, int fd) {
  std::lock_guard lock(v->handles_mu);
  v->open_files.insert(fd);
}

// Forgets the fd before closing it: once closed, its number may be reused by another open.
void CloseFile(Impl* v, int fd) {
  {
    std::lock_guard lock(v->handles_mu);
    v->open_files.erase(fd);
  }
  close(fd);
}

void CloseAccounting(Impl* v, Inode* inode) {
  bool release = false;
  uint64_t freed = 0;
  {
    std::lock_guard lock(inode->mu);
    if (--inode->open_count == 0 && inode->orphan) {
      inode->orphan = false;
      release = true;
      freed = inode->allocated;
      inode->allocated = 0;
    }
  }
  if (release) {
    v->table->Unpin(inode);
    v->table->DropFd(inode);
    v->quota->Adjust(-static_cast<int64_t>(freed), -1);
  }
}

// Holds namespace_mu for a change to names. When the change is done, still under the lock, it
// advances namespace_epoch: no directory stream read before the change is read on afterwards.
class NamespaceChange {
 public:
  explicit NamespaceChange(Impl* v) : v_(v), lock_(v->namespace_mu) {}
  ~NamespaceChange() { v_->namespace_epoch.fetch_add(1); }
  NamespaceChange(const NamespaceChange&) = delete;
  NamespaceChange& operator=(const NamespaceChange&) = delete;

 private:
  Impl* v_;
  std::lock_guard<std::mutex> lock_;
};

template <typename Fn>
void Guard(fuse_req_t req, Fn&& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  }
}

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
  want(FUSE_CAP_READDIRPLUS_AUTO);
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

bool IsSetId(mode_t mode) {
  return (mode & S_ISUID) || (mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
}

int DoTruncate(Impl* v, Inode* inode, int path_fd, fuse_file_info* fi, off_t size) {
  int fd = fi ? static_cast<int>(fi->fh) : -1;
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
      rv = fchmod(static_cast<int>(fi->fh), attr->st_mode) == 0 ? 0 : -errno;
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
      rv = futimens(static_cast<int>(fi->fh), times) == 0 ? 0 : -errno;
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

// ---- creating names ----

// Reservations a new name takes: the new object's own block, if it gets one, and a block for
// the parent directory to grow.
struct NameReservation {
  uint64_t bytes = 0;
  bool inode = false;
};

int ReserveName(Impl* v, uint64_t object_bytes, bool new_inode, NameReservation* r) {
  if (!v->quota->enabled()) return 0;
  if (new_inode) {
    if (!v->quota->TryReserveInode()) return Refuse(v);
    r->inode = true;
  }
  uint64_t bytes = object_bytes + v->block_size;
  if (!v->quota->TryReserveBytes(bytes)) {
    if (r->inode) v->quota->CommitInode(false);
    r->inode = false;
    return Refuse(v);
  }
  r->bytes = bytes;
  return 0;
}

// Ends the reservation: `object` (may be null) is the new object, created or linked.
void CommitName(Impl* v, const NameReservation& r, Inode* parent, int64_t object_delta,
                bool created) {
  if (!v->quota->enabled()) return;
  int64_t parent_delta = 0;
  if (created) {
    FdRef ref;
    if (v->table->Acquire(parent, &ref) == 0) parent_delta = RemeasureFd(parent, ref.fd());
  }
  v->quota->Commit(r.bytes, created ? object_delta + parent_delta : 0);
  if (r.inode) v->quota->CommitInode(created);
}

enum class NodeKind { kDirectory, kSymlink, kSpecial };

void MakeNode(fuse_req_t req, fuse_ino_t parent_ino, const char* name, NodeKind kind, mode_t mode,
              dev_t rdev, const char* link_target) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  if (IsDotOrDotDot(name)) {
    fuse_reply_err(req, EEXIST);
    return;
  }
  Inode* parent = v->ToInode(parent_ino);
  uint64_t object_bytes = 0;
  if (kind == NodeKind::kDirectory) object_bytes = v->block_size;
  if (kind == NodeKind::kSymlink && std::strlen(link_target) >= 60) object_bytes = v->block_size;
  NameReservation reservation;
  int rv = ReserveName(v, object_bytes, true, &reservation);
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  fuse_entry_param e;
  Inode* inode = nullptr;
  {
    NamespaceChange ns(v);
    FdRef pref;
    rv = v->table->Acquire(parent, &pref);
    if (rv == 0) {
      const fuse_ctx* ctx = fuse_req_ctx(req);
      CallerCredentials as_caller(ctx->uid, ctx->gid);
      int r = 0;
      switch (kind) {
        case NodeKind::kDirectory: r = mkdirat(pref.fd(), name, mode); break;
        case NodeKind::kSymlink: r = symlinkat(link_target, pref.fd(), name); break;
        case NodeKind::kSpecial: r = mknodat(pref.fd(), name, mode, rdev); break;
      }
      rv = r == 0 ? 0 : -errno;
    }
    if (rv == 0) rv = DoLookup(v, parent, name, &e, &inode);
  }
  CommitName(v, reservation, parent, rv == 0 ? static_cast<int64_t>(AllocatedBytes(e.attr)) : 0,
             rv == 0);
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  fuse_reply_entry(req, &e);
}

void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  MakeNode(req, parent, name, NodeKind::kDirectory, mode, 0, nullptr);
}

void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  MakeNode(req, parent, name, NodeKind::kSpecial, mode, rdev, nullptr);
}

void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  MakeNode(req, parent, name, NodeKind::kSymlink, 0, 0, link);
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent_ino, const char* newname) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  Inode* inode = v->ToInode(ino);
  Inode* newparent = v->ToInode(newparent_ino);
  // A hard link adds a name, not an inode: only the directory may grow.
  NameReservation reservation;
  int rv = ReserveName(v, 0, false, &reservation);
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  struct stat st;
  {
    NamespaceChange ns(v);
    FdRef ref, pref;
    rv = v->table->Acquire(inode, &ref);
    if (rv == 0) rv = v->table->Acquire(newparent, &pref);
    if (rv == 0) {
      rv = linkat(ref.fd(), "", pref.fd(), newname, AT_EMPTY_PATH) == 0 ? 0 : -errno;
      if (rv == -ENOENT || rv == -EPERM) {
        rv = linkat(AT_FDCWD, ProcPath(ref.fd()).buf, pref.fd(), newname, AT_SYMLINK_FOLLOW) == 0
                 ? 0
                 : -errno;
      }
    }
    if (rv == 0) rv = StatFd(ref.fd(), &st);
  }
  CommitName(v, reservation, newparent, 0, rv == 0);
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  v->table->Ref(inode);
  fuse_entry_param e;
  FillEntry(v, inode, st, &e);
  fuse_reply_entry(req, &e);
}

// ---- removing names ----

int RemoveName(Impl* v, Inode* parent, const char* name, bool directory) {
  NamespaceChange ns(v);
  FdRef pref;
  int rv = v->table->Acquire(parent, &pref);
  if (rv < 0) return rv;
  struct stat st;
  if (fstatat(pref.fd(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  Inode* victim = v->quota->enabled() || !S_ISDIR(st.st_mode) ? v->table->Find(st.st_dev, st.st_ino)
                                                               : nullptr;
  PinIfOpen(v, victim, st);
  if (unlinkat(pref.fd(), name, directory ? AT_REMOVEDIR : 0) != 0) return -errno;
  if (v->quota->enabled()) {
    AccountRemoved(v, victim, st);
    int64_t delta = RemeasureFd(parent, pref.fd());
    if (delta != 0) v->quota->Adjust(delta, 0);
  } else if (victim && (directory || st.st_nlink <= 1)) {
    v->table->Unindex(victim);
    bool open;
    {
      std::lock_guard lock(victim->mu);
      open = victim->open_count > 0;
      victim->orphan = open;
    }
    if (!open) v->table->DropFd(victim);
  }
  return 0;
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  fuse_reply_err(req, -RemoveName(v, v->ToInode(parent), name, false));
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  fuse_reply_err(req, -RemoveName(v, v->ToInode(parent), name, true));
}

void Rename(fuse_req_t req, fuse_ino_t parent_ino, const char* name, fuse_ino_t newparent_ino,
            const char* newname, unsigned int flags) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  Inode* parent = v->ToInode(parent_ino);
  Inode* newparent = v->ToInode(newparent_ino);
  NameReservation reservation;
  int rv = 0;
  {
    NamespaceChange ns(v);
    FdRef pref, npref;
    rv = v->table->Acquire(parent, &pref);
    if (rv == 0) rv = v->table->Acquire(newparent, &npref);
    struct stat source, target;
    bool target_exists = rv == 0 && fstatat(npref.fd(), newname, &target, AT_SYMLINK_NOFOLLOW) == 0;
    // Only a new name can grow the new parent directory, by one block at most: an exchange
    // swaps two entries in place, and a rename over an existing name rewrites that entry
    // (and frees the object it named). So only a new name needs space on a full volume.
    if (rv == 0 && !target_exists && !(flags & RENAME_EXCHANGE)) {
      rv = ReserveName(v, 0, false, &reservation);
    }
    bool replaces = false;
    Inode* victim = nullptr;
    if (rv == 0 && target_exists && !(flags & RENAME_EXCHANGE) &&
        fstatat(pref.fd(), name, &source, AT_SYMLINK_NOFOLLOW) == 0 &&
        !(source.st_dev == target.st_dev && source.st_ino == target.st_ino)) {
      replaces = true;
      victim = v->table->Find(target.st_dev, target.st_ino);
      PinIfOpen(v, victim, target);
    }
    if (rv == 0) {
      rv = renameat2(pref.fd(), name, npref.fd(), newname, flags) == 0 ? 0 : -errno;
    }
    if (rv == 0 && replaces) {
      if (v->quota->enabled()) {
        AccountRemoved(v, victim, target);
      } else if (victim && (S_ISDIR(target.st_mode) || target.st_nlink <= 1)) {
        v->table->Unindex(victim);
      }
    }
    if (rv == 0 && v->quota->enabled()) {
      // Measured also without a reservation: what the backing filesystem did counts.
      int64_t delta = RemeasureFd(newparent, npref.fd());
      if (parent != newparent) delta += RemeasureFd(parent, pref.fd());
      if (delta != 0) v->quota->Adjust(delta, 0);
    }
  }
  if (reservation.bytes != 0) v->quota->Commit(reservation.bytes, 0);
  fuse_reply_err(req, -rv);
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
int BackingOpenFlags(int open_flags) {
  int flags = open_flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT);
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


void Create(fuse_req_t req, fuse_ino_t parent_ino, const char* name, mode_t mode,
            fuse_file_info* fi) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
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
  {
    NamespaceChange ns(v);
    FdRef pref;
    rv = v->table->Acquire(parent, &pref);
    if (rv == 0) {
      const fuse_ctx* ctx = fuse_req_ctx(req);
      CallerCredentials as_caller(ctx->uid, ctx->gid);
      fd = openat(pref.fd(), name, flags | O_CREAT | O_EXCL, mode);
      if (fd >= 0) {
        created = true;
      } else if (errno == EEXIST && !(fi->flags & O_EXCL)) {
        fd = openat(pref.fd(), name, flags);  // lost a race with another create: open it
      }
      if (fd < 0) rv = -errno;
    }
    if (rv == 0) {
      rv = DoLookup(v, parent, name, &e, &inode);
      if (rv < 0) close(fd);
    }
  }
  CommitName(v, reservation, parent, created ? static_cast<int64_t>(AllocatedBytes(e.attr)) : 0,
             rv == 0 && created);
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  bool direct_io = false;
  int backing = AttachBacking(v, inode, fd, &direct_io);
  if (backing < 0) {
    close(fd);
    fuse_reply_err(req, -backing);
    return;
  }
  {
    std::lock_guard lock(inode->mu);
    ++inode->open_count;
  }
  if (!created && (fi->flags & O_TRUNC) && RequestKillsSuidgid()) {
    KillSetIdBits(req, fd, Kill::kFlagged);
  }
  fi->fh = static_cast<uint64_t>(fd);
  SetCaching(fi, fd);
  TrackFile(v, fd);
  int sent = backing > 0 ? Passthrough::ReplyCreate(req, e, fi->fh, backing, direct_io)
                         : fuse_reply_create(req, &e, fi);
  if (sent != 0) {
    // The kernel is gone (interrupted); it will not send release.
    if (backing > 0) v->passthrough->Detach(fd);
    CloseFile(v, fd);
    CloseAccounting(v, inode);
  }
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
  bool direct_io = false;
  int backing = AttachBacking(v, inode, fd, &direct_io);
  if (backing < 0) {
    close(fd);
    fuse_reply_err(req, -backing);
    return;
  }
  {
    std::lock_guard lock(inode->mu);
    ++inode->open_count;
  }
  fi->fh = static_cast<uint64_t>(fd);
  SetCaching(fi, fd);
  TrackFile(v, fd);
  int sent = backing > 0 ? Passthrough::ReplyOpen(req, fi->fh, backing, direct_io)
                         : fuse_reply_open(req, fi);
  if (sent != 0) {
    if (backing > 0) v->passthrough->Detach(fd);
    CloseFile(v, fd);
    CloseAccounting(v, inode);
  }
}

void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Impl* v = V(req);
  if (v->passthrough) v->passthrough->Detach(static_cast<int>(fi->fh));
  CloseFile(v, static_cast<int>(fi->fh));
  CloseAccounting(v, v->ToInode(ino));
  fuse_reply_err(req, 0);
}

void Read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = static_cast<int>(fi->fh);
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in_buf, off_t off, fuse_file_info* fi) {
  Impl* v = V(req);
  int fd = static_cast<int>(fi->fh);
  size_t size = fuse_buf_size(in_buf);
  if (RequestKillsSuidgid()) {
    if (int rv = KillSetIdBits(req, fd, Kill::kFlagged); rv < 0) {
      fuse_reply_err(req, -rv);
      return;
    }
  }
  uint64_t reserved = 0;
  size_t allowed = size;
  bool settle = false;  // near full: see kNearFullBlocks
  if (v->quota->enabled()) {
    uint64_t extra = PrepareSettle(v, fd, &settle);
    allowed = ReserveForWrite(v, fd, static_cast<uint64_t>(off), size, extra, &reserved);
    if (allowed == 0 && size > 0) {
      fuse_reply_err(req, -Refuse(v));
      return;
    }
  }
  fuse_bufvec out = FUSE_BUFVEC_INIT(allowed);
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = fd;
  out.buf[0].pos = off;
  ssize_t written = fuse_buf_copy(&out, in_buf, FUSE_BUF_SPLICE_NONBLOCK);
  if (v->quota->enabled()) {
    Inode* inode = v->ToInode(ino);
    if (settle && written > 0) SettleRange(fd, off, static_cast<uint64_t>(written));
    v->quota->Commit(reserved, RemeasureFd(inode, fd));
    NoteWritten(v, inode);
  }
  if (written < 0) {
    fuse_reply_err(req, static_cast<int>(-written));
  } else {
    fuse_reply_write(req, static_cast<size_t>(written));
  }
}

void Fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  int fd = static_cast<int>(fi->fh);
  int rv = datasync ? fdatasync(fd) : fsync(fd);
  fuse_reply_err(req, rv == 0 ? 0 : errno);
}

void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* fi) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  int fd = static_cast<int>(fi->fh);
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
  int rv = fallocate(fd, mode, offset, length) == 0 ? 0 : -errno;
  if (v->quota->enabled()) {
    v->quota->Commit(reserved, RemeasureFd(v->ToInode(ino), fd));
    NoteWritten(v, v->ToInode(ino));
  }
  fuse_reply_err(req, -rv);
}

void CopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in,
                   fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                   int flags) {
  Impl* v = V(req);
  int out_fd = static_cast<int>(fi_out->fh);
  if (int rv = KillSetIdBits(req, out_fd, Kill::kUnflagged); rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  uint64_t reserved = 0;
  size_t allowed = len;
  bool settle = false;  // near full: see kNearFullBlocks
  if (v->quota->enabled()) {
    uint64_t extra = PrepareSettle(v, out_fd, &settle);
    allowed = ReserveForWrite(v, out_fd, static_cast<uint64_t>(off_out), len, extra, &reserved);
    if (allowed == 0 && len > 0) {
      fuse_reply_err(req, -Refuse(v));
      return;
    }
  }
  loff_t in_pos = off_in;
  loff_t out_pos = off_out;
  ssize_t n = copy_file_range(static_cast<int>(fi_in->fh), &in_pos, out_fd, &out_pos, allowed,
                              static_cast<unsigned>(flags));
  int err = errno;
  if (v->quota->enabled()) {
    if (settle && n > 0) SettleRange(out_fd, off_out, static_cast<uint64_t>(n));
    v->quota->Commit(reserved, RemeasureFd(v->ToInode(ino_out), out_fd));
    NoteWritten(v, v->ToInode(ino_out));
  }
  if (n < 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_write(req, static_cast<size_t>(n));
  }
}

void Lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  off_t result = lseek(static_cast<int>(fi->fh), off, whence);
  if (result < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_lseek(req, result);
  }
}

// ---- directories ----

void CloseDirStream(Impl::DirStream* s) {
  if (s->dir != nullptr) closedir(s->dir);
  s->dir = nullptr;
}

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
    // Kernel mode: the figures of the limit the kernel enforces.
    limits::LimitUsage u;
    rv = v->kernel_limit->ReadUsage(&u);
    if (rv < 0) {
      fuse_reply_err(req, -rv);
      return;
    }
    uint64_t capacity = u.limit_bytes ? u.limit_bytes : v->options.capacity_bytes.value_or(0);
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

// ---- extended attributes ----

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
    if (rv == 0) rv = setxattr(ProcPath(ref.fd()).buf, name, value, size, flags) == 0 ? 0 : -errno;
    if (v->quota->enabled()) {
      v->quota->Commit(reserved, ref.fd() >= 0 ? RemeasureFd(inode, ref.fd()) : 0);
    }
  }
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
    if (rv == 0) rv = removexattr(ProcPath(ref.fd()).buf, name) == 0 ? 0 : -errno;
    if (rv == 0 && v->quota->enabled()) v->quota->Adjust(RemeasureFd(inode, ref.fd()), 0);
  }
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

void CloseHandlesLeftOpen(Volume::Impl* v) {
  if (v->passthrough) v->passthrough->Forget();
  {
    std::lock_guard lock(v->handles_mu);
    for (int fd : v->open_files) close(fd);
    v->open_files.clear();
  }
  std::lock_guard lock(v->dir_streams_mu);
  for (Volume::Impl::DirStream& s : v->dir_streams) CloseDirStream(&s);
  v->dir_streams.clear();
}

const fuse_lowlevel_ops& VolumeOperations() {
  static const fuse_lowlevel_ops ops = MakeOperations();
  return ops;
}

}  // namespace claimfs::fs
