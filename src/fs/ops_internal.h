// What the FUSE handlers of a volume share (ops_*.cc): a passthrough of the backing directory
// through fds relative to the volume root, with every allocation checked against the quota at
// the call.
//
// Conventions: helpers return 0 / a count or -errno; only the handlers talk to libfuse.
// Handlers never throw: the few allocations they make are small, and std::bad_alloc becomes
// ENOMEM at the boundary (Guard).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <new>

#include "volume_impl.h"

namespace claimfs::fs::ops {

using Impl = Volume::Impl;

inline Impl* V(fuse_req_t req) { return static_cast<Impl*>(fuse_req_userdata(req)); }

// "/proc/self/fd/N": reopens an O_PATH fd with real access, naming exactly that object.
struct ProcPath {
  explicit ProcPath(int fd) { std::snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd); }
  char buf[32];
};

inline int StatFd(int fd, struct stat* st) {
  return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

inline bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

inline uint64_t AllocatedBytes(const struct stat& st) {
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

inline bool IsSetId(mode_t mode) {
  return (mode & S_ISUID) || (mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
}

// Why the server clears set-id bits (FUSE_HANDLE_KILLPRIV_V2 makes it the server's job; the
// backing filesystem would not, because the server writes with CAP_FSETID).
enum class Kill {
  kFlagged,    // WRITE/SETATTR(size)/OPEN(O_TRUNC) carried the kernel's kill flag: no CAP_FSETID
  kChown,      // SETATTR(uid/gid) with the flag, which the kernel sets whatever the caller
  kUnflagged,  // COPY_FILE_RANGE, FALLOCATE: the kernel leaves it to us and sends no flag
};

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

// ---- ops_common.cc: measuring, lookups, set-id bits, open-file accounting ----
int64_t Remeasure(Inode* inode, const struct stat& st);
int64_t RemeasureFd(Inode* inode, int fd);
void NoteWritten(Impl* v, Inode* inode);
void RemeasureRecentWrites(Impl* v);
void FillEntry(Impl* v, Inode* inode, const struct stat& st, fuse_entry_param* e);
int DoLookup(Impl* v, Inode* parent, const char* name, fuse_entry_param* e, Inode** out = nullptr,
             bool* created_out = nullptr);
int KillSetIdBits(fuse_req_t req, int fd, Kill why);
bool LookupKnown(Impl* v, int dir_fd, const char* name, fuse_entry_param* e, Inode** out);
bool RefusedAsReadOnly(fuse_req_t req, Impl* v);
int Refuse(Impl* v);
void AccountRemoved(Impl* v, Inode* victim, const struct stat& before);
void PinIfOpen(Impl* v, Inode* victim, const struct stat& st);
// Registers the open file `fd` of `inode` (owned from now on): its fh, or -errno (fd still the
// caller's).
int64_t TrackFile(Impl* v, Inode* inode, int fd, int open_flags, FileKind kind);
// The backing fd of an open file: -EBADF for an unknown fh, -EIO when its reopen failed at
// adoption.
inline int FileFd(Impl* v, const fuse_file_info* fi) { return v->files->Fd(fi->fh); }
// Forgets the open file and closes its fd.
void CloseFile(Impl* v, uint64_t fh);
void CloseAccounting(Impl* v, Inode* inode);
// Under victim->mu, with files open on it: its last name is gone. Marks it an orphan (freed at
// its last close) and hands a regular fd of it (reopened from `path_fd`, its pinned O_PATH fd;
// -1: none) to the volume's OrphanKeeper, recording that in its node record.
bool IsOpen(Inode* inode);
void MakeOrphanLocked(Impl* v, Inode* victim, int path_fd);
// Under inode->mu, at the orphan's last close: the keeper drops its fd.
void ForgetOrphanLocked(Impl* v, Inode* inode);

// Test hook for the adoption tests: with CLAIMFS_CRASH_AT=reply.<op> in the environment the
// process kills itself (SIGKILL) after <op>'s change is done, before its reply is sent.
void CrashPointBeforeReply(const char* op);
// With CLAIMFS_STOP_AT=request.<op> the process stops itself (SIGSTOP) when <op> arrives,
// after the kernel's own lookup of the name: the test changes the source behind the kernel's
// back, then continues it (SIGCONT).
void StopPointAtRequest(const char* op);

// ---- ops_names.cc ----
// Reservations a new name takes: the new object's own block, if it gets one, and a block for
// the parent directory to grow.
struct NameReservation {
  uint64_t bytes = 0;
  bool inode = false;
};
int ReserveName(Impl* v, uint64_t object_bytes, bool new_inode, NameReservation* r);
void CommitName(Impl* v, const NameReservation& r, Inode* parent, int64_t object_delta,
                bool created);
void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent_ino, const char* newname);
void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
void Rename(fuse_req_t req, fuse_ino_t parent_ino, const char* name, fuse_ino_t newparent_ino,
            const char* newname, unsigned int flags);

// ---- ops_entry.cc: INIT, lookup, attributes, statfs ----
void Init(void* userdata, fuse_conn_info* conn);
void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets);
void Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi);
void Readlink(fuse_req_t req, fuse_ino_t ino);
void Statfs(fuse_req_t req, fuse_ino_t ino);

// ---- ops_files.cc ----
void Create(fuse_req_t req, fuse_ino_t parent_ino, const char* name, mode_t mode,
            fuse_file_info* fi);
void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in_buf, off_t off, fuse_file_info* fi);
void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* fi);
void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                   fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                   int flags);
void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);

// ---- ops_dirs.cc ----
void CloseDirStream(Impl::DirStream* s);
void Opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);

}  // namespace claimfs::fs::ops
