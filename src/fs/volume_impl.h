// Per-volume state shared by the FUSE handlers (ops.cc) and the Volume lifecycle (volume.cc).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "claimfs/fs/volume.h"
#include "claimfs/limits/limit_backend.h"
#include "compat_passthrough.h"
#include "inode_table.h"
#include "quota.h"
#include "server_pool_impl.h"

namespace claimfs::fs {

struct DirHandle;

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
  std::unique_ptr<InodeTable> table;

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

  // Handles the kernel holds: a file's fd, a directory stream. The kernel sends no RELEASE for
  // a handle still open when its connection ends (a release queued behind the unmount, an
  // abort), so Stop() closes what is left once no request can arrive.
  std::mutex handles_mu;                   // a leaf lock
  std::unordered_set<int> open_files;      // guarded by handles_mu
  std::unordered_set<DirHandle*> open_dirs;  // guarded by handles_mu

  dev_t backing_device = 0;
  std::atomic<bool> readahead_pending{true};  // see MatchBackingReadahead

  fuse_session* session = nullptr;
  bool mounted = false;
  bool handles_signals = false;
  std::thread server;
  std::atomic<bool> loop_running{false};  // Start() without a pool: the loop thread runs
  ServerPool::Impl* pool = nullptr;        // Start(pool): the pool serving the volume
  std::shared_ptr<ServerPool::Impl::Channel> channel;
  std::atomic<bool> stopping{false};

  Inode* ToInode(fuse_ino_t ino) {
    return ino == FUSE_ROOT_ID ? table->root() : reinterpret_cast<Inode*>(ino);
  }
  fuse_ino_t ToIno(Inode* inode) {
    return inode == table->root() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(inode);
  }
};

// Gives the FUSE mount at `mountpoint` the readahead of the backing device `backing`. Must run
// after FUSE INIT, which resets it.
void MatchBackingReadahead(dev_t backing, const std::string& mountpoint);

// Closes the handles the kernel never released; only once no request can arrive any more.
void CloseHandlesLeftOpen(Volume::Impl* v);

// The low-level operations table for a volume.
const fuse_lowlevel_ops& VolumeOperations();

}  // namespace claimfs::fs
