// FUSE passthrough (kernel 6.9+, protocol 7.40) from libfuse 3.14, which has no API for it:
// the one module that talks to the kernel past libfuse's back.
//
// What it does, and what a libfuse with native passthrough (3.17+) would replace:
//  - seeing INIT and patching its reply (called from the volume's custom I/O hooks, compat_io) with
//    FUSE_INIT_EXT, flags2 FUSE_PASSTHROUGH and max_stack_depth (3.17: conn->want_ext
//    FUSE_CAP_PASSTHROUGH and conn->max_backing_stack_depth in the init handler), and with
//    FUSE_HANDLE_KILLPRIV_V2 (3.17: FUSE_CAP_HANDLE_KILLPRIV_V2): without it the kernel asks for
//    security.capability (GETXATTR) before every write, passthrough writes included;
//  - FUSE_DEV_IOC_BACKING_OPEN/CLOSE on the session fd, one backing id per node, refcounted
//    (3.17: fuse_passthrough_open()/fuse_passthrough_close());
//  - open and create replies carrying FOPEN_PASSTHROUGH and the backing id in what 3.14 calls
//    fuse_open_out.padding, built by hand and sent with fuse_reply_buf() (3.17: fi->backing_id
//    and fuse_reply_open()/fuse_reply_create());
// plus one thing 3.17 would not: PatchReply turns EDQUOT in the replies of requests the
// daemon serves into the volume's quota errno (the kernel's own passthrough I/O keeps EDQUOT).
//
// Kernel rules kept here: every open of an inode that has a backing file must be a passthrough
// open with the same backing file, or the open fails EIO (fs/fuse/iomode.c), so a node's
// backing id is reused while any of its opens is alive; KEEP_CACHE is never sent with
// FOPEN_PASSTHROUGH (the kernel fails such an open EIO); BACKING_OPEN captures the calling
// thread's credentials for all I/O on the backing file, so it is never called with the fsuid
// switched to a caller's (CallerCredentials).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace claimfs::fs {

struct Inode;
class Quota;

class Passthrough {
 public:
  // `quota_errno`: what EDQUOT from a daemon-served request becomes; each such reply counts as
  // a rejection in `quota` (which must outlive this).
  Passthrough(int quota_errno, Quota* quota);
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;

  // The connection fd the backing ioctls go to. Before the session reads its first request.
  void Bind(int connection_fd) { session_fd_ = connection_fd; }
  // From the volume's read hook: each request as read (INIT: what the kernel offers).
  void SeeRequest(const void* buf, size_t len);
  // From the volume's writev hook: each reply before it is written (INIT: patched for
  // passthrough; EDQUOT: the volume's quota errno).
  void PatchReply(struct iovec* iov, int count);

  // True once INIT negotiated passthrough and no BACKING_OPEN was refused for good.
  bool enabled() const { return enabled_.load(std::memory_order_acquire); }
  // Why passthrough is off, once known ("" while it is on or INIT was not seen yet).
  std::string off_reason() const;

  // A backing id for `inode`, whose backing file `fd` (a real open fd, not O_PATH) the daemon
  // holds as open-file handle `fd`: the node's id if it has one, else a new one. Counts one
  // reference, released by Detach(fd). Returns the id (> 0) or -errno; -EPERM, -ENOTTY or
  // -EOPNOTSUPP or -ELOOP (stacking depth) on a node's first open switch passthrough off for the volume.
  int Attach(Inode* inode, int fd);
  // Drops the reference handle `fd` holds, if any; the last one closes the backing id. Call
  // before closing fd.
  void Detach(int fd);
  // The connection is gone: its backing ids went with it.
  void Forget();

  // Adoption of a connection whose INIT turned passthrough on: the node's backing id and
  // count as the arena kept them (the kernel still holds the id), and an open file reopened as
  // handle `fd` that holds one of those references.
  void Restore(Inode* inode, int backing_id, uint32_t refs);
  void RestoreHandle(int fd, Inode* inode);
  void Resume() { enabled_.store(true, std::memory_order_release); }

  // Replies to OPEN / CREATE with a passthrough open of `backing_id`. `direct_io`: reads and
  // writes still go to the daemon (set-id files: see ops.cc), mmap to the backing file.
  // Returns what fuse_reply_buf() returns.
  static int ReplyOpen(fuse_req_t req, uint64_t fh, int backing_id, bool direct_io);
  static int ReplyCreate(fuse_req_t req, const fuse_entry_param& e, uint64_t fh, int backing_id,
                         bool direct_io);

 private:
  void TurnOff(std::string reason);

  const int quota_errno_;
  Quota* const quota_;
  int session_fd_ = -1;

  // INIT: its unique and whether the kernel offered passthrough (set by the reading thread
  // before the reply is written, on the same thread).
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> offered_{false};
  std::atomic<bool> killpriv_offered_{false};
  std::atomic<bool> enabled_{false};

  struct Backing {
    int id = 0;
    uint32_t refs = 0;
  };
  mutable std::mutex mu_;  // a leaf lock; the ioctls run under it (they are short)
  std::unordered_map<Inode*, Backing> by_node_;  // guarded by mu_
  std::unordered_map<int, Inode*> by_handle_;    // guarded by mu_: open fd → its node
  std::string off_reason_;                       // guarded by mu_
  bool gave_up_ = false;                         // guarded by mu_
};

}  // namespace claimfs::fs
