// A quota-limited FUSE passthrough of one backing directory: the volume filesystem that serves
// every claimfs volume, one FUSE session per volume, many volumes per process.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/fs/server_pool.h"

namespace claimfs::fs {

// Keeps files unlinked while open ("orphans") alive apart from the serving process: a handle
// cannot reopen them, so their fds travel with the volume's bundle (docs/dataplane.md 6, 7.5).
// Called from FUSE worker threads (any number at once) on the unlink, rename and release paths,
// while the calling request waits: implementations must be thread-safe and quick.
class OrphanKeeper {
 public:
  virtual ~OrphanKeeper() = default;
  // Keeps its own copy of `fd` (a regular file, never O_PATH; it stays the caller's) for the
  // node (slot, generation). 0 or -errno.
  virtual int Keep(uint32_t slot, uint32_t generation, int fd) = 0;
  // Drops the copy kept for (slot, generation), if any.
  virtual void Forget(uint32_t slot, uint32_t generation) = 0;
};

struct VolumeOptions {
  std::string source;      // backing directory; must exist and be a directory
  std::string mountpoint;  // must exist
  // Hard limit on allocated bytes (st_blocks × 512 of every object). nullopt: no quota and no
  // accounting at all; statfs then reports the backing filesystem. When the source is a btrfs
  // subvolume with quotas on (and no inode limit is asked), the kernel enforces it instead:
  // the subvolume's qgroup limit is set to it (and left in place), and regular files are
  // opened in FUSE passthrough (see mode()).
  std::optional<uint64_t> capacity_bytes;
  std::optional<uint64_t> inode_limit;  // nullopt: no inode limit
  bool read_only = false;
  int quota_errno = ENOSPC;  // or EDQUOT
  bool allow_other = false;
  bool debug = false;  // libfuse request tracing
  // Passed to the kernel mount: noexec, nosuid, nodev, noatime, fsname=..., and so on.
  std::vector<std::string> kernel_options;
  // Kernel attribute/entry cache lifetime. Long is correct because the daemon is the only
  // writer of the backing directory while it is mounted.
  double cache_timeout_seconds = 86400;
  unsigned max_threads = 16;  // FUSE worker threads for this volume (Start() without a pool)
  // Open fds the volume's inode cache may keep; 0: a quarter of RLIMIT_NOFILE. A process that
  // hosts many volumes divides its fd limit between them.
  size_t fd_cache_budget = 0;
  // Where files unlinked while open are kept so that an adopter can serve them; null: they die
  // with the serving process (their node answers ESTALE after an adoption).
  std::shared_ptr<OrphanKeeper> orphan_keeper;
};

// Parses a comma-separated -o list ("capacity=1Gi,ro,noatime") into `options`, on top of what
// it holds. Fails with kInvalid naming the first option that is unknown or malformed; nothing
// is mounted then.
Status ParseMountOptions(std::string_view list, VolumeOptions* options);

struct VolumeUsage {
  uint64_t used_bytes = 0;
  uint64_t used_inodes = 0;
  std::optional<uint64_t> capacity_bytes;
  std::optional<uint64_t> inode_limit;
  uint64_t quota_rejections = 0;  // operations refused with the quota errno
  std::string mode;               // Volume::mode()
};

// A live volume's kernel side, for another process to serve it (Volume::Adopt): the FUSE
// connection fd and the arena memfd holding the ids the kernel knows (docs/dataplane.md 5-7).
struct VolumeBundle {
  int connection_fd = -1;
  int arena_fd = -1;
  // Files unlinked while open, as an OrphanKeeper kept them: the node and a regular fd of it.
  struct Orphan {
    uint32_t slot = 0;
    uint32_t generation = 0;
    int fd = -1;
  };
  std::vector<Orphan> orphans;
};

class Volume {
 public:
  // Checks the options, scans the source's usage and mounts. A source already over its
  // capacity still mounts (reads and frees work; allocations fail until space is freed). On success the mount is usable at once, but requests are served only
  // after Serve() or Start(). Must be called before any fork (see Serve()).
  static Result<std::unique_ptr<Volume>> Mount(VolumeOptions options);

  // Serves a volume whose connection another process served (crashed, or Release()d): maps the
  // arena, checks it is this volume's (format, the source's root, the options the kernel
  // negotiated), makes its nodes known again, reopens its open files by handle (one that
  // cannot be reopened answers EIO; the open files of an orphan are reopened from its kept fd),
  // and rescans the usage of an accounted volume (plus what the orphans allocate). A kept
  // orphan whose node is not recorded as an orphan, or whose fd is not that node's (dev, ino),
  // is ignored with a warning, never served, and dropped from options.orphan_keeper. Mounts
  // nothing: `options.mountpoint` is informational (Stop() detaches it if the connection is
  // mounted there). Takes ownership of every fd of the bundle, also on failure. The caller makes sure no
  // other process serves the connection. Serving starts with Start()/Serve(): the saved INIT is
  // replayed to libfuse, then the kernel is asked to resend the requests the previous server
  // read but did not answer. Fails (kUnavailable) when the kernel cannot resend. A volume in
  // FUSE passthrough keeps the backing ids the kernel holds.
  static Result<std::unique_ptr<Volume>> Adopt(VolumeOptions options, VolumeBundle bundle);

  // Dups of the connection and arena fds (O_CLOEXEC), owned by the caller. Fails when the
  // volume cannot be adopted (no usable file handles: not root, or the file system cannot
  // export them) or is not mounted.
  Result<VolumeBundle> Bundle() const;

  // Stops serving without unmounting or aborting the connection: waits until no request is in
  // the handlers (a volume served by a ServerPool), marks the arena released, closes this
  // process's fds and keeps the kernel's state (backing ids). Another process then Adopt()s
  // the bundle it kept. Requests that arrive meanwhile wait in the kernel.
  void Release();

  // Unmounts (if still mounted) and stops the serving threads.
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // Serves requests on the calling thread (plus workers) until the volume is unmounted from
  // outside (fusermount3 -u, umount) or Stop() is called. Returns the loop's status.
  Status Serve();
  // Lets SIGINT, SIGTERM and SIGHUP end Serve() (the standalone program; a daemon that hosts
  // many volumes handles signals itself).
  Status HandleSignals();
  // Serves on a background thread; returns at once.
  Status Start();
  // Serves with `pool`'s threads instead of threads of its own; returns at once. The pool must
  // outlive the volume (or Stop()).
  Status Start(ServerPool* pool);
  // False once the mount went away behind the volume's back (umount from outside, a FUSE
  // connection abort) or after Stop().
  bool serving() const;
  // Ends serving and unmounts. Safe to call from any thread and more than once.
  void Stop();

  // Changes the quota live: a larger capacity shows in statfs at once; a capacity below the
  // current usage is refused with kForbidden and changes nothing. Thread-safe.
  Status SetCapacity(uint64_t bytes);
  Status SetInodeLimit(std::optional<uint64_t> limit);
  VolumeUsage Usage() const;
  const VolumeOptions& options() const;
  // How the capacity is enforced: "kernel (btrfs qgroup 0/257, passthrough)" when the backing
  // file system enforces it and regular files are opened in FUSE passthrough, "kernel (...,
  // no passthrough: <why>)", "accounted (<why the kernel cannot>)", or "unlimited".
  std::string mode() const;

  class Impl;

 private:
  explicit Volume(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace claimfs::fs
