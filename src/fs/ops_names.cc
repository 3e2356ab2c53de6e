// Creating, linking, removing and renaming names, each checked against the quota at the call.
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
#include <functional>
#include <new>
#include <vector>

#include "compat_io.h"
#include "credentials.h"
#include "journal.h"
#include "volume_impl.h"
#include "ops_internal.h"

namespace claimfs::fs::ops {
// ---- creating names ----

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

namespace {

// Makes `name` in `dir_fd` through `make` (a syscall: 0, or -1 and errno), journalled
// (docs/dataplane.md 7.3): the record says, before the syscall, whether the name existed, so a
// resent request the dead server started but did not finish is answered as it would have been.
// `*redone`: the dead server made the name. 0 or -errno.
int MakeName(int dir_fd, const char* name, InFlight* journal, const std::function<int()>& make,
             bool* redone) {
  struct stat before;
  bool existed = journal->started() ? journal->existed()
                                    : fstatat(dir_fd, name, &before, AT_SYMLINK_NOFOLLOW) == 0;
  journal->Start(existed, 0, 0);
  int rv = make() == 0 ? 0 : -errno;
  // The kernel holds the parent's lock for the whole request: no one else can have made the
  // name since the dead server's record. Without a record only the name's presence is left
  // to go by (7.5), which also answers success for a name that existed before.
  *redone = rv == -EEXIST && ((journal->started() && !journal->existed()) || journal->legacy());
  if (*redone) rv = 0;
  return journal->Finish(rv);
}

enum class NodeKind { kDirectory, kSymlink, kSpecial };

void MakeNode(fuse_req_t req, fuse_ino_t parent_ino, const char* name, NodeKind kind, mode_t mode,
              dev_t rdev, const char* link_target) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  StopPointAtRequest(kind == NodeKind::kDirectory ? "mkdir"
                     : kind == NodeKind::kSymlink ? "symlink"
                                                  : "mknod");
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
  bool redone = false;
  InFlight journal(v->arena.get(), &v->resend,
                   kind == NodeKind::kDirectory ? FUSE_MKDIR
                   : kind == NodeKind::kSymlink ? FUSE_SYMLINK
                                                : FUSE_MKNOD);
  {
    NamespaceChange ns(v);
    FdRef pref;
    rv = v->table->Acquire(parent, &pref);
    if (rv == 0 && journal.done()) {
      // Resent after an adoption: the previous server finished it and died before replying.
      rv = journal.Carry();
      redone = rv == 0;
    } else if (rv == 0) {
      rv = MakeName(pref.fd(), name, &journal, [&] {
        const fuse_ctx* ctx = fuse_req_ctx(req);
        CallerCredentials as_caller(ctx->uid, ctx->gid);
        switch (kind) {
          case NodeKind::kDirectory: return mkdirat(pref.fd(), name, mode);
          case NodeKind::kSymlink: return symlinkat(link_target, pref.fd(), name);
          case NodeKind::kSpecial: return mknodat(pref.fd(), name, mode, rdev);
        }
        return -1;
      }, &redone);
    }
    // Its usage was counted by the adoption's rescan.
    if (rv == 0) rv = DoLookup(v, parent, name, &e, &inode);
  }
  bool created = rv == 0 && !redone;
  CommitName(v, reservation, parent, created ? static_cast<int64_t>(AllocatedBytes(e.attr)) : 0,
             created);
  CrashPointBeforeReply(kind == NodeKind::kDirectory ? "mkdir"
                        : kind == NodeKind::kSymlink ? "symlink"
                                                     : "mknod");
  if (rv < 0) {
    fuse_reply_err(req, -rv);
    return;
  }
  fuse_reply_entry(req, &e);
}

}  // namespace

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
  StopPointAtRequest("link");
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
  InFlight journal(v->arena.get(), &v->resend, FUSE_LINK);
  {
    NamespaceChange ns(v);
    FdRef ref, pref;
    rv = v->table->Acquire(inode, &ref);
    if (rv == 0) rv = v->table->Acquire(newparent, &pref);
    if (rv == 0 && journal.done()) {
      rv = journal.Carry();  // done before an adoption (see MakeNode)
    } else if (rv == 0) {
      bool redone;
      rv = MakeName(pref.fd(), newname, &journal, [&] {
        if (linkat(ref.fd(), "", pref.fd(), newname, AT_EMPTY_PATH) == 0) return 0;
        if (errno != ENOENT && errno != EPERM) return -1;
        return linkat(AT_FDCWD, ProcPath(ref.fd()).buf, pref.fd(), newname, AT_SYMLINK_FOLLOW);
      }, &redone);
    }
    if (rv == 0) rv = StatFd(ref.fd(), &st);
  }
  CommitName(v, reservation, newparent, 0, rv == 0);
  if (rv < 0) {
    CrashPointBeforeReply("link");
    fuse_reply_err(req, -rv);
    return;
  }
  v->table->Ref(inode);
  fuse_entry_param e;
  FillEntry(v, inode, st, &e);
  CrashPointBeforeReply("link");
  fuse_reply_entry(req, &e);
}

// ---- removing names ----

namespace {

// Without accounting: the victim's last name is gone; open, it lives on as an orphan.
void OrphanIfOpen(Impl* v, Inode* victim) {
  v->table->Unindex(victim);
  FdRef ref;  // pinned by PinIfOpen when open
  bool have_fd = IsOpen(victim) && v->table->Acquire(victim, &ref) == 0;
  bool open;
  {
    std::lock_guard lock(victim->mu);
    open = victim->open_count > 0;
    if (open) MakeOrphanLocked(v, victim, have_fd ? ref.fd() : -1);
  }
  ref.Reset();
  if (!open) v->table->DropFd(victim);
}

int RemoveName(Impl* v, Inode* parent, const char* name, bool directory) {
  InFlight journal(v->arena.get(), &v->resend, directory ? FUSE_RMDIR : FUSE_UNLINK);
  // Resent after an adoption: the previous server finished it and died before replying.
  if (journal.done()) return journal.Carry();
  NamespaceChange ns(v);
  FdRef pref;
  int rv = v->table->Acquire(parent, &pref);
  if (rv < 0) return rv;
  struct stat st;
  if (fstatat(pref.fd(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    // A record is only started for a name that was there (the kernel holds the parent's lock,
    // so only the previous server can have removed it since); without one, 7.5's rule.
    if (errno == ENOENT && (journal.started() || journal.legacy())) {
      journal.Start(true, 0, 0);
      return journal.Finish(0);
    }
    return -errno;
  }
  Inode* victim = v->quota->enabled() || !S_ISDIR(st.st_mode) ? v->table->Find(st.st_dev, st.st_ino)
                                                               : nullptr;
  PinIfOpen(v, victim, st);
  journal.Start(true, st.st_dev, st.st_ino);
  rv = journal.Finish(unlinkat(pref.fd(), name, directory ? AT_REMOVEDIR : 0) == 0 ? 0 : -errno);
  if (rv < 0) return rv;
  if (v->quota->enabled()) {
    AccountRemoved(v, victim, st);
    int64_t delta = RemeasureFd(parent, pref.fd());
    if (delta != 0) v->quota->Adjust(delta, 0);
  } else if (victim && (directory || st.st_nlink <= 1)) {
    OrphanIfOpen(v, victim);
  }
  return 0;
}

}  // namespace

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  int rv = RemoveName(v, v->ToInode(parent), name, false);
  CrashPointBeforeReply("unlink");
  fuse_reply_err(req, -rv);
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl* v = V(req);
  if (RefusedAsReadOnly(req, v)) return;
  int rv = RemoveName(v, v->ToInode(parent), name, true);
  CrashPointBeforeReply("rmdir");
  fuse_reply_err(req, -rv);
}

namespace {

// RENAME and RENAME2, journalled (docs/dataplane.md 7.3) with the object the source named
// before: a resent one the dead server started is done when the new name holds that object
// (an exchange redone would swap the names back). 0 or -errno.
int RenameOnce(Impl* v, int olddir, const char* oldname, int newdir, const char* newname,
               unsigned int flags, bool target_exists) {
  InFlight journal(v->arena.get(), &v->resend, RequestOpcode());
  if (journal.done()) return journal.Carry();
  struct stat source;
  bool existed = journal.started() ? journal.existed()
                                   : fstatat(olddir, oldname, &source, AT_SYMLINK_NOFOLLOW) == 0;
  uint64_t dev = journal.started() ? journal.dev() : existed ? source.st_dev : 0;
  uint64_t ino = journal.started() ? journal.ino() : existed ? source.st_ino : 0;
  journal.Start(existed, dev, ino);
  struct stat now;
  if (journal.started() && existed && fstatat(newdir, newname, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
      now.st_dev == dev && now.st_ino == ino) {
    return journal.Finish(0);
  }
  int rv = renameat2(olddir, oldname, newdir, newname, flags) == 0 ? 0 : -errno;
  // Without a record, 7.5's rule: the source gone and the target there reads as done (a
  // source missing before the request reads the same).
  if (rv == -ENOENT && target_exists && journal.legacy()) rv = 0;
  return journal.Finish(rv);
}

}  // namespace

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
      rv = RenameOnce(v, pref.fd(), name, npref.fd(), newname, flags, target_exists);
    }
    if (rv == 0 && replaces) {
      if (v->quota->enabled()) {
        AccountRemoved(v, victim, target);
      } else if (victim && (S_ISDIR(target.st_mode) || target.st_nlink <= 1)) {
        OrphanIfOpen(v, victim);
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
  CrashPointBeforeReply("rename");
  fuse_reply_err(req, -rv);
}

}  // namespace claimfs::fs::ops
