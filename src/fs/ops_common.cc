// What the handlers share: measuring allocations, lookups, set-id bits, open-file accounting.
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
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <new>
#include <vector>

#include "claimfs/common/log.h"
#include "compat_io.h"
#include "credentials.h"
#include "volume_impl.h"
#include "ops_internal.h"

namespace claimfs::fs::ops {
namespace {

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

}  // namespace

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
  e->generation = inode->generation;
  e->attr = st;
  e->attr_timeout = v->timeout;
  e->entry_timeout = v->timeout;
}

// Looks `name` up in `parent` without following a final symlink and registers one kernel
// reference on the result.
int DoLookup(Impl* v, Inode* parent, const char* name, fuse_entry_param* e, Inode** out,
             bool* created_out) {
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

bool IsOpen(Inode* inode) {
  std::lock_guard lock(inode->mu);
  return inode->open_count > 0;
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
  FdRef ref;  // pinned by PinIfOpen when open; no name can open it again
  bool have_fd = IsOpen(victim) && v->table->Acquire(victim, &ref) == 0;
  {
    std::lock_guard lock(victim->mu);
    if (victim->open_count > 0) {
      MakeOrphanLocked(v, victim, have_fd ? ref.fd() : -1);
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

int64_t TrackFile(Impl* v, Inode* inode, int fd, int open_flags, FileKind kind) {
  return v->files->Add(*inode, fd, open_flags, kind);
}

// Forgets the fd before closing it: once closed, its number may be reused by another open.
void CloseFile(Impl* v, uint64_t fh) {
  int fd = v->files->Remove(fh);
  if (fd >= 0) close(fd);
}

void CloseAccounting(Impl* v, Inode* inode) {
  bool release = false;
  uint64_t freed = 0;
  {
    std::lock_guard lock(inode->mu);
    if (--inode->open_count == 0 && inode->orphan) {
      inode->orphan = false;
      ForgetOrphanLocked(v, inode);
      release = true;
      freed = inode->allocated;
      inode->allocated = 0;
    }
  }
  if (release) {
    v->table->Unpin(inode);
    v->table->DropFd(inode);
    v->table->CloseOrphanFd(inode);
    v->quota->Adjust(-static_cast<int64_t>(freed), -1);
  }
}

void MakeOrphanLocked(Impl* v, Inode* victim, int path_fd) {
  victim->orphan = true;
  OrphanKeeper* keeper = v->options.orphan_keeper.get();
  if (keeper == nullptr || victim->type != S_IFREG || (victim->record->flags & kNodeOrphan)) return;
  int fd = -1;
  if (path_fd >= 0) {
    // Read-write when the server may: the kept fd is then the file at full strength, whatever a
    // reopen through /proc would allow. Read-only otherwise (a read-only volume, a busy
    // executable); an adopter reopens each open file from it with that file's own flags.
    if (!v->options.read_only) fd = open(ProcPath(path_fd).buf, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) fd = open(ProcPath(path_fd).buf, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  }
  if (fd < 0) {
    log::Warn("{}: an unlinked open file (node {}) cannot be kept ({}): it dies with this process",
              v->options.source, victim->slot, path_fd < 0 ? "no fd" : std::strerror(errno));
    return;
  }
  victim->record->flags |= kNodeOrphan;
  int rv = keeper->Keep(victim->slot, victim->generation, fd);
  close(fd);
  if (rv < 0) {
    victim->record->flags &= static_cast<uint8_t>(~kNodeOrphan);
    log::Warn("{}: an unlinked open file (node {}) cannot be kept ({}): it dies with this process",
              v->options.source, victim->slot, std::strerror(-rv));
  }
}

void ForgetOrphanLocked(Impl* v, Inode* inode) {
  if (!(inode->record->flags & kNodeOrphan)) return;
  inode->record->flags &= static_cast<uint8_t>(~kNodeOrphan);
  if (OrphanKeeper* keeper = v->options.orphan_keeper.get()) {
    keeper->Forget(inode->slot, inode->generation);
  }
}

void CrashPointBeforeReply(const char* op) {
  static const char* const where = std::getenv("CLAIMFS_CRASH_AT");
  if (where != nullptr && std::strncmp(where, "reply.", 6) == 0 && std::strcmp(where + 6, op) == 0) {
    raise(SIGKILL);
  }
}

void StopPointAtRequest(const char* op) {
  static const char* const where = std::getenv("CLAIMFS_STOP_AT");
  if (where != nullptr && std::strncmp(where, "request.", 8) == 0 &&
      std::strcmp(where + 8, op) == 0) {
    raise(SIGSTOP);
  }
}

}  // namespace claimfs::fs::ops
