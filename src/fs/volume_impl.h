// Per-volume state shared by the FUSE handlers (ops.cc) and the Volume lifecycle (volume.cc).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <dirent.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "claimfs/fs/volume.h"
#include "arena.h"
#include "claimfs/limits/limit_backend.h"
#include "compat_passthrough.h"
#include "inode_table.h"
#include "journal.h"
#include "open_files.h"
#include "quota.h"
#include "server_pool_impl.h"

namespace claimfs::fs {

class Volume::Impl {
 public:
  VolumeOptions options;
  int quota_errno = ENOSPC;
  double timeout = 86400;
  uint64_t block_size = 4096;  // backing filesystem block: the unit of allocation
  std::unique_ptr<Quota> quota;
  // Kernel mode: the limit the kernel enforces (quota then counts nothing) and the passthrough
  // shim; both null in accounted mode. `mode` is what Volume::mode() reports.
  std::unique_ptr<limits::VolumeLimit> kernel_limit;
  std::unique_ptr<Passthrough> passthrough;
  std::string mode;
  // Node and open-file records (the ids the kernel holds); outlives table and files.
  std::unique_ptr<Arena> arena;
  std::unique_ptr<InodeTable> table;
  std::unique_ptr<OpenFiles> files;
  // Adopted: what the dead server's in-flight journal says about the requests the kernel
  // resends (docs/dataplane.md 7.3).
  ResendJournal resend;

  // Serialises namespace changes (create, link, unlink, rename, ...) so the accounting of an
  // object losing its last link sees no concurrent change to the same names. Taken before any
  // Inode::mu.
  std::mutex namespace_mu;

  // Files written lately. Backing filesystems with delayed allocation add metadata blocks
  // (an ext4 extent index) at write-back, after the write was measured; statfs measures these
  // files again so that df agrees with du.
  struct RecentWrite {
    dev_t dev;
    ino_t ino;
    std::chrono::steady_clock::time_point since;
  };
  std::mutex recent_mu;  // before InodeTable's locks
  std::vector<RecentWrite> recently_written;  // guarded by recent_mu
  // Set when writes near full have written back and counted the recent writes; cleared by a
  // write with room to spare (see kNearFullBlocks in ops.cc).
  std::atomic<bool> recent_settled{false};

  // Directories have no handles: OPENDIR is answered ENOSYS, so the kernel sends neither
  // OPENDIR nor RELEASEDIR and a READDIR names only the directory and an offset (a cookie of
  // the backing filesystem, which stays valid across opens). Listings in progress keep their
  // stream here between requests, so a listing that goes on where its last reply ended reads on
  // without reopening; a stream is closed when its listing ends or it is evicted.
  struct DirStream {
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t epoch = 0;  // namespace_epoch when opened: a later change may have removed it
    off_t next = 0;      // the offset the kernel asks for to go on
    DIR* dir = nullptr;
    // Read from `dir` but not sent (the reply was full): it comes first when the listing goes
    // on at `next`.
    bool has_pending = false;
    std::string pending_name;
    ino_t pending_ino = 0;
    unsigned char pending_type = 0;
    off_t pending_next = 0;
  };
  static constexpr size_t kMaxDirStreams = 4;
  bool no_opendir = false;  // set by INIT, before any other request: OPENDIR answers ENOSYS
  // Incremented by every change to a name (create, link, unlink, rename, ...), under
  // namespace_mu: a kept stream older than a change is reopened, never read on.
  std::atomic<uint64_t> namespace_epoch{0};
  std::mutex dir_streams_mu;           // a leaf lock
  std::vector<DirStream> dir_streams;  // guarded by dir_streams_mu; oldest first

  dev_t backing_device = 0;
  std::atomic<bool> readahead_pending{true};  // see MatchBackingReadahead

  fuse_session* session = nullptr;
  // Our own fd of the FUSE connection (the session reads through a dup of it, which
  // fuse_session_destroy closes); kept for Bundle() and the resend notification.
  int conn_fd = -1;
  // Adopted: the session's first read returns the saved INIT (compat_io), whose reply is
  // swallowed; then FUSE_NOTIFY_RESEND. Set by Adopt, cleared when the INIT was replayed.
  bool adopted = false;
  std::atomic<bool> replay_init{false};
  bool mounted = false;
  bool handles_signals = false;
  std::thread server;
  std::atomic<bool> loop_running{false};  // Start() without a pool: the loop thread runs
  ServerPool::Impl* pool = nullptr;        // Start(pool): the pool serving the volume
  std::shared_ptr<ServerPool::Impl::Channel> channel;
  std::atomic<bool> stopping{false};

  // A stale nodeid (one that names no live node) gives a stand-in whose every use fails
  // ESTALE (InodeTable::Get).
  Inode* ToInode(fuse_ino_t ino) { return table->Get(ino); }
  fuse_ino_t ToIno(Inode* inode) { return inode->id(); }
};

// Gives the FUSE mount at `mountpoint` the readahead of the backing device `backing`. Must run
// after FUSE INIT, which resets it.
void MatchBackingReadahead(dev_t backing, const std::string& mountpoint);

// Closes the files the kernel never released and the kept directory streams; only once no
// request can arrive any more.
void CloseHandlesLeftOpen(Volume::Impl* v);

// The low-level operations table for a volume.
const fuse_lowlevel_ops& VolumeOperations();

}  // namespace claimfs::fs
