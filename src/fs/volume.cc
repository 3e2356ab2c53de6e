#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "claimfs/common/log.h"
#include "compat_io.h"
#include "scan.h"
#include "volume_impl.h"

namespace claimfs::fs {
namespace {

// libfuse splits -o lists at commas; a comma or backslash in a value must be escaped.
std::string EscapeOptionValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The share of the fd limit one volume's cache may hold: a quarter of RLIMIT_NOFILE leaves
// room for open files and for other volumes in the same process.
size_t DefaultFdBudget() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 4096;
  return std::max<size_t>(64, limit.rlim_cur / 4);
}

// The device number of the mount at `mountpoint`, read from /proc/self/mountinfo: stat()
// would ask the new FUSE mount itself, which serves nothing yet.
std::optional<dev_t> MountDevice(const std::string& mountpoint) {
  std::FILE* in = std::fopen("/proc/self/mountinfo", "r");
  if (in == nullptr) return std::nullopt;
  std::optional<dev_t> found;
  char line[4096];
  while (std::fgets(line, sizeof line, in)) {
    unsigned major_number = 0, minor_number = 0;
    char point[4096];
    if (std::sscanf(line, "%*u %*u %u:%u %*s %4095s", &major_number, &minor_number, point) == 3 &&
        mountpoint == point) {
      found = makedev(major_number, minor_number);  // the last mount on a path is the visible one
    }
  }
  std::fclose(in);
  return found;
}

// The kernel-enforced limit for `options`' source (`root_fd`, O_PATH), with the capacity set on
// it; null with *why when the daemon has to account the volume itself.
std::unique_ptr<limits::VolumeLimit> KernelLimitFor(int root_fd, const VolumeOptions& options,
                                                    std::string* why) {
  if (options.inode_limit) {
    *why = "an inode limit (inodes=) is counted by the daemon";
    return nullptr;
  }
  char path[32];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", root_fd);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    *why = std::string("cannot open the source: ") + std::strerror(errno);
    return nullptr;
  }
  auto limit = limits::OpenVolumeLimit(fd);
  close(fd);
  if (!limit.ok()) {
    *why = limit.status().message();
    return nullptr;
  }
  Status s = (*limit)->SetLimit(*options.capacity_bytes);
  if (!s.ok()) {
    *why = s.message();
    return nullptr;
  }
  return std::move(*limit);
}

}  // namespace

// The kernel gives a FUSE mount 128 KiB of readahead (and INIT clamps it there again); the
// backing device usually has more. Sequential reads through the volume should prefetch as far
// as reads of the backing device.
void MatchBackingReadahead(dev_t backing, const std::string& mountpoint) {
  std::optional<dev_t> fuse_device = MountDevice(mountpoint);
  if (!fuse_device) return;
  auto bdi_file = [](dev_t dev) {
    return "/sys/class/bdi/" + std::to_string(major(dev)) + ":" + std::to_string(minor(dev)) +
           "/read_ahead_kb";
  };
  std::FILE* in = std::fopen(bdi_file(backing).c_str(), "r");
  if (in == nullptr) return;
  unsigned kb = 0;
  bool read = std::fscanf(in, "%u", &kb) == 1;
  std::fclose(in);
  if (!read || kb <= 128) return;
  if (std::FILE* out = std::fopen(bdi_file(*fuse_device).c_str(), "w")) {
    std::fprintf(out, "%u\n", std::min(kb, 16384u));
    std::fclose(out);
  }
}

Volume::Volume(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

// An adopted volume was mounted by another process: it is detached (as fuse_session_unmount
// would) only when the mount at its mountpoint is still its connection's.
void DetachAdoptedMount(Volume::Impl* impl) {
  std::optional<dev_t> dev = MountDevice(impl->options.mountpoint);
  if (!dev || *dev != impl->arena->header()->fuse_dev) return;
  if (umount2(impl->options.mountpoint.c_str(), MNT_DETACH) != 0) {
    log::Warn("cannot unmount {}: {}", impl->options.mountpoint, std::strerror(errno));
  }
}

}  // namespace

namespace {

// The source's root, opened and checked: root_fd (O_PATH, owned by the caller on success).
struct Source {
  int root_fd = -1;
  struct stat root_stat {};
  struct statvfs backing {};
};

// `check_mountpoint` false: the mountpoint is a live mount nobody serves yet (adoption), and
// any look at it would wait for the server we are about to become.
Result<Source> OpenSource(VolumeOptions* options, bool check_mountpoint) {
  // Absolute paths: the standalone program changes to / when it goes to the background.
  for (std::string* path : {&options->source, &options->mountpoint}) {
    if (path == &options->mountpoint && !check_mountpoint) continue;
    char resolved[PATH_MAX];
    if (realpath(path->c_str(), resolved) != nullptr) *path = resolved;
  }
  Source src;
  src.root_fd = open(options->source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (src.root_fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound("source directory " + options->source + " does not exist");
    if (err == ENOTDIR) return Status::Invalid("source " + options->source + " is not a directory");
    return Status::FromErrno("cannot open source directory " + options->source, err);
  }
  auto fail = [&](Status s) {
    close(src.root_fd);
    return s;
  };
  if (check_mountpoint) {
    struct stat mount_stat;
    if (stat(options->mountpoint.c_str(), &mount_stat) != 0) {
      return fail(Status::FromErrno("mount point " + options->mountpoint, errno));
    }
    if (!S_ISDIR(mount_stat.st_mode)) {
      return fail(Status::Invalid("mount point " + options->mountpoint + " is not a directory"));
    }
  }
  if (fstatat(src.root_fd, "", &src.root_stat, AT_EMPTY_PATH) != 0) {
    return fail(Status::FromErrno("cannot stat " + options->source, errno));
  }
  if (fstatvfs(src.root_fd, &src.backing) != 0) {
    return fail(Status::FromErrno("cannot statfs " + options->source, errno));
  }
  return src;
}

// How the capacity is enforced (kernel limit or our accounting), with the usage scanned for an
// accounted volume.
Status SetUpQuota(Volume::Impl* impl, const Source& src, const VolumeOptions& options) {
  impl->quota_errno = options.quota_errno;
  impl->timeout = options.cache_timeout_seconds;
  impl->block_size = src.backing.f_bsize ? src.backing.f_bsize : 4096;

  std::string accounted_why;
  if (options.capacity_bytes) {
    impl->kernel_limit = KernelLimitFor(src.root_fd, options, &accounted_why);
  }
  if (impl->kernel_limit) {
    impl->mode = "kernel (" + impl->kernel_limit->Describe() + ")";
    auto used = impl->kernel_limit->Usage();
    if (used.ok() && used->used_bytes > *options.capacity_bytes) {
      log::Warn("{} already uses {} bytes, more than its capacity of {}: writes that allocate "
                "will fail until space is freed",
                options.source, used->used_bytes, *options.capacity_bytes);
    }
    log::Info("{}: capacity enforced by the kernel ({} limit {} bytes); regular files opened in "
              "FUSE passthrough",
              options.source, impl->kernel_limit->Describe(), *options.capacity_bytes);
  } else if (options.capacity_bytes) {
    impl->mode = "accounted (" + accounted_why + ")";
    log::Info("{}: capacity accounted by claimfs, not the kernel: {}", options.source,
              accounted_why);
  } else {
    impl->mode = "unlimited";
  }

  TreeUsage usage;
  if (options.capacity_bytes && !impl->kernel_limit) {
    auto scanned = ScanTree(src.root_fd);
    if (!scanned.ok()) return scanned.status();
    usage = *scanned;
    if (usage.bytes > *options.capacity_bytes) {
      log::Warn("{} already uses {} bytes, more than its capacity of {}: writes that allocate "
                "will fail until space is freed",
                options.source, usage.bytes, *options.capacity_bytes);
    }
  }
  // In kernel mode the daemon counts nothing: the kernel refuses at the limit, for writes that
  // never reach the daemon too.
  std::optional<uint64_t> accounted_capacity =
      impl->kernel_limit ? std::nullopt : options.capacity_bytes;
  impl->quota = std::make_unique<Quota>(accounted_capacity, options.inode_limit, usage.bytes,
                                        usage.inodes);
  return Status::Ok();
}

// libfuse's arguments for a session of `options` (mount options matter only to a fresh mount).
std::vector<std::string> SessionArguments(const VolumeOptions& options, bool mount) {
  std::vector<std::string> arguments = {"claimfs"};
  if (mount) {
    std::string mount_options = "default_permissions,subtype=claimfs";
    bool has_fsname = false;
    for (const std::string& o : options.kernel_options) {
      if (o.rfind("fsname=", 0) == 0) has_fsname = true;
      mount_options += "," + o;
    }
    if (!has_fsname) mount_options += ",fsname=" + EscapeOptionValue(options.source);
    if (options.allow_other) mount_options += ",allow_other";
    arguments.push_back("-o");
    arguments.push_back(mount_options);
  }
  if (options.debug) arguments.emplace_back("-d");
  return arguments;
}

fuse_session* NewSession(std::vector<std::string> arguments, Volume::Impl* impl) {
  std::vector<char*> argv;
  for (std::string& a : arguments) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* se = fuse_session_new(&args, &VolumeOperations(), sizeof(fuse_lowlevel_ops), impl);
  fuse_opt_free_args(&args);
  return se;
}

constexpr uint32_t kInitInFlagsOffset = 12;
constexpr uint32_t kInitInFlags2Offset = 16;
constexpr uint32_t kInitExt = 1u << 30;
constexpr uint64_t kHasResend = uint64_t{1} << 39;  // FUSE_HAS_RESEND (protocol 7.40)
constexpr int32_t kNotifyResend = 7;                 // FUSE_NOTIFY_RESEND (protocol 7.40)

bool KernelCanResend(const ArenaHeader& h) {
  if (h.init_in_len < kInitInFlags2Offset + 4) return false;
  uint32_t flags, flags2;
  std::memcpy(&flags, h.init_in + kInitInFlagsOffset, 4);
  std::memcpy(&flags2, h.init_in + kInitInFlags2Offset, 4);
  return (flags & kInitExt) && ((uint64_t{flags2} << 32) & kHasResend);
}

std::string ArenaName(const VolumeOptions& options) {
  std::string name = options.mountpoint;
  if (name.size() > 200) name = name.substr(name.size() - 200);
  return name;
}

}  // namespace

Result<std::unique_ptr<Volume>> Volume::Mount(VolumeOptions options) {
  auto source = OpenSource(&options, true);
  if (!source.ok()) return source.status();
  Source src = *source;
  int root_fd = src.root_fd;
  auto fail = [&](Status s) {
    close(root_fd);
    return s;
  };

  auto impl = std::make_unique<Impl>();
  if (Status s = SetUpQuota(impl.get(), src, options); !s.ok()) return fail(s);
  auto arena = Arena::Create(ArenaName(options));
  if (!arena.ok()) return fail(arena.status());
  impl->arena = std::move(*arena);
  ArenaHeader* header = impl->arena->header();
  header->root_dev = src.root_stat.st_dev;
  header->root_ino = src.root_stat.st_ino;
  header->owner_pid = getpid();
  if (impl->quota->enabled()) header->flags |= kArenaAccounted;

  size_t fd_budget = options.fd_cache_budget ? options.fd_cache_budget : DefaultFdBudget();
  impl->table = std::make_unique<InodeTable>(root_fd, src.root_stat, fd_budget, impl->arena.get());
  impl->files = std::make_unique<OpenFiles>(impl->arena.get());
  {
    std::lock_guard lock(impl->table->root()->mu);
    impl->table->root()->allocated = static_cast<uint64_t>(src.root_stat.st_blocks) * 512;
  }
  if (!impl->table->handles_usable()) {
    log::Warn("{}: file handles are not usable here (not root, or the filesystem cannot export "
              "them): every known inode keeps an open fd, and the volume cannot be adopted",
              options.source);
  }

  // New objects get exactly the mode the kernel sends (it already applied the caller's umask).
  umask(0);
  impl->options = std::move(options);
  const VolumeOptions& o = impl->options;
  impl->session = NewSession(SessionArguments(o, true), impl.get());
  if (impl->session == nullptr) {
    return Status::Invalid("cannot set up a FUSE session for " + o.mountpoint +
                           " (libfuse refused the mount options: " +
                           SessionArguments(o, true)[2] + ")");
  }
  if (fuse_session_mount(impl->session, o.mountpoint.c_str()) != 0) {
    fuse_session_destroy(impl->session);
    impl->session = nullptr;
    return Status::IOError("cannot mount " + o.source + " on " + o.mountpoint +
                           " (is /dev/fuse there, and are we root?)");
  }
  impl->mounted = true;
  impl->backing_device = src.root_stat.st_dev;
  int session_fd = fuse_session_fd(impl->session);
  impl->conn_fd = fcntl(session_fd, F_DUPFD_CLOEXEC, 0);
  if (std::optional<dev_t> dev = MountDevice(o.mountpoint)) header->fuse_dev = *dev;
  if (impl->kernel_limit) {
    impl->passthrough = std::make_unique<Passthrough>(impl->quota_errno, impl->quota.get());
    impl->passthrough->Bind(session_fd);
  }
  // One set of custom I/O hooks per session, on the connection fd (no FUSE_DEV_IOC_CLONE ever:
  // a cloned device's requests die with its process).
  int rv = impl->conn_fd < 0 ? -errno : InstallChannelIo(impl->session, session_fd, !impl->passthrough);
  if (rv < 0) {
    fuse_session_unmount(impl->session);
    fuse_session_destroy(impl->session);
    impl->session = nullptr;
    if (impl->conn_fd >= 0) close(impl->conn_fd);
    return Status::FromErrno("cannot set up the FUSE channel of " + o.mountpoint, -rv);
  }
  header->state = static_cast<uint32_t>(ArenaState::kServing);
  return std::unique_ptr<Volume>(new Volume(std::move(impl)));
}

namespace {

// The orphans of a bundle (files unlinked while open): each fd closes unless taken.
class KeptOrphans {
 public:
  explicit KeptOrphans(std::vector<VolumeBundle::Orphan> orphans) : orphans_(std::move(orphans)) {}
  ~KeptOrphans() {
    for (const VolumeBundle::Orphan& o : orphans_) {
      if (o.fd >= 0) close(o.fd);
    }
  }
  KeptOrphans(const KeptOrphans&) = delete;
  KeptOrphans& operator=(const KeptOrphans&) = delete;
  std::vector<VolumeBundle::Orphan>& list() { return orphans_; }

 private:
  std::vector<VolumeBundle::Orphan> orphans_;
};

// Serves the orphans an OrphanKeeper kept: each becomes its node's only fd (open files on it
// are then reopened from it like the others), and an accounted volume counts what it allocates
// (the rescan walks names; an orphan has none). A kept fd is used only for a node recorded as
// an orphan and only when it is that node's (dev, ino); anything else is stale or forged: it is
// logged, dropped from the keeper and never served. Returns the adopted nodes.
std::vector<Inode*> AdoptOrphans(Volume::Impl* impl, const VolumeOptions& options, KeptOrphans* kept) {
  std::vector<Inode*> adopted;
  for (VolumeBundle::Orphan& o : kept->list()) {
    int fd = std::exchange(o.fd, -1);
    uint64_t id = MakeId(o.slot, o.generation);
    NodeRecord* r = o.slot == kRootSlot ? nullptr : impl->arena->Node(id);
    struct stat st;
    std::string why;
    if (fd < 0) {
      why = "no fd";
    } else if (r == nullptr || !(r->flags & kNodeOrphan)) {
      why = "its node is not an orphan";
    } else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (fcntl(fd, F_GETFL) & O_PATH)) {
      why = "it is not an open regular file";
    } else if (static_cast<uint64_t>(st.st_dev) != r->dev || static_cast<uint64_t>(st.st_ino) != r->ino) {
      why = "it is another file than its node's";
    }
    Inode* inode = why.empty() ? impl->table->Get(id) : nullptr;
    if (inode != nullptr && impl->table->IsStale(inode)) why = "its node is unknown";
    int path_fd = -1;
    if (why.empty()) {
      char path[32];
      std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
      path_fd = open(path, O_PATH | O_CLOEXEC);
      if (path_fd < 0) why = std::string("cannot reopen it: ") + std::strerror(errno);
    }
    if (fd >= 0) close(fd);
    if (!why.empty()) {
      log::Warn("{}: ignoring the kept orphan {}.{}: {}", options.source, o.slot, o.generation, why);
      if (options.orphan_keeper) options.orphan_keeper->Forget(o.slot, o.generation);
      continue;
    }
    impl->table->AdoptOrphan(inode, path_fd);
    uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
    {
      std::lock_guard lock(inode->mu);
      inode->orphan = true;
      inode->allocated = allocated;
    }
    if (impl->quota->enabled()) impl->quota->Adjust(static_cast<int64_t>(allocated), 1);
    adopted.push_back(inode);
  }
  return adopted;
}

// After the open files were reopened: an orphan none of them names was closed for good by a
// server that died before telling its keeper. It goes now.
void ReleaseUnopenedOrphans(Volume::Impl* impl, const std::vector<Inode*>& orphans) {
  for (Inode* inode : orphans) {
    uint64_t freed = 0;
    {
      std::lock_guard lock(inode->mu);
      if (inode->open_count > 0) continue;
      inode->orphan = false;
      freed = std::exchange(inode->allocated, 0);
      inode->record->flags &= static_cast<uint8_t>(~kNodeOrphan);
    }
    if (impl->options.orphan_keeper) impl->options.orphan_keeper->Forget(inode->slot, inode->generation);
    impl->table->CloseOrphanFd(inode);
    if (impl->quota->enabled()) impl->quota->Adjust(-static_cast<int64_t>(freed), -1);
  }
}

}  // namespace

Result<std::unique_ptr<Volume>> Volume::Adopt(VolumeOptions options, VolumeBundle bundle) {
  KeptOrphans kept(std::move(bundle.orphans));
  if (bundle.connection_fd < 0 || bundle.arena_fd < 0) {
    if (bundle.connection_fd >= 0) close(bundle.connection_fd);
    if (bundle.arena_fd >= 0) close(bundle.arena_fd);
    return Status::Invalid("a volume bundle needs a connection fd and an arena fd");
  }
  int conn_fd = bundle.connection_fd;
  auto close_conn = [&](Status s) {
    if (conn_fd >= 0) close(conn_fd);
    return s;
  };
  auto arena = Arena::Open(bundle.arena_fd);
  if (!arena.ok()) return close_conn(arena.status());
  ArenaHeader* header = (*arena)->header();
  auto source = OpenSource(&options, false);
  if (!source.ok()) return close_conn(source.status());
  Source src = *source;
  auto fail = [&](Status s) {
    close(src.root_fd);
    return close_conn(s);
  };
  if (header->root_dev != src.root_stat.st_dev || header->root_ino != src.root_stat.st_ino) {
    return fail(Status::Conflict("the arena is not " + options.source +
                                 "'s (its root was replaced?): the volume must be mounted afresh"));
  }
  if (header->init_in_len == 0 || header->init_out_len == 0) {
    return fail(Status::Unavailable("the connection of " + options.source +
                                    " was never initialised (no INIT saved)"));
  }
  if (!KernelCanResend(*header)) {
    return fail(Status::Unavailable("the kernel cannot resend requests (no FUSE_HAS_RESEND): "
                                    "adopting " + options.source + " could hang its callers"));
  }

  auto impl = std::make_unique<Impl>();
  if (Status s = SetUpQuota(impl.get(), src, options); !s.ok()) return fail(s);
  bool passthrough = (header->flags & kArenaPassthrough) != 0;
  if (passthrough && !impl->kernel_limit) {
    return fail(Status::Conflict("the connection of " + options.source +
                                 " is in FUSE passthrough but the volume is not kernel-enforced now"));
  }
  if (passthrough) {
    impl->passthrough = std::make_unique<Passthrough>(impl->quota_errno, impl->quota.get());
    impl->passthrough->Resume();
  }
  if (impl->quota->enabled() != ((header->flags & kArenaAccounted) != 0)) {
    return fail(Status::Conflict("the options of " + options.source +
                                 " disagree with its arena about the quota accounting"));
  }
  impl->arena = std::move(*arena);
  size_t fd_budget = options.fd_cache_budget ? options.fd_cache_budget : DefaultFdBudget();
  impl->table = std::make_unique<InodeTable>(src.root_fd, src.root_stat, fd_budget, impl->arena.get());
  if (!impl->table->handles_usable()) {
    return close_conn(Status::Unavailable("file handles are not usable for " + options.source +
                                          ": its nodes cannot be found again"));
  }
  {
    std::lock_guard lock(impl->table->root()->mu);
    impl->table->root()->allocated = static_cast<uint64_t>(src.root_stat.st_blocks) * 512;
  }
  int64_t nodes = impl->table->Rebuild();
  std::vector<Inode*> orphans = AdoptOrphans(impl.get(), options, &kept);
  if (impl->passthrough) {
    // The kernel keeps backing ids past the old server: reuse them, never open a second one.
    for (uint32_t slot = kRootSlot + 1; slot < impl->arena->nodes_high(); ++slot) {
      NodeRecord* r = impl->arena->NodeSlot(slot);
      if (r->state != kRecordLive || r->backing_id <= 0 || r->backing_refs == 0) continue;
      Inode* inode = impl->table->Get(MakeId(slot, r->generation));
      if (!impl->table->IsStale(inode)) impl->passthrough->Restore(inode, r->backing_id, r->backing_refs);
    }
  }
  impl->files = std::make_unique<OpenFiles>(impl->arena.get());
  size_t failed = 0;
  size_t files = impl->files->Reopen([&](uint64_t fh, const OpenFileRecord& r) {
    Inode* inode = impl->table->Get(MakeId(r.node_slot, r.node_generation));
    int fd = -ESTALE;
    if (!impl->table->IsStale(inode)) {
      {
        std::lock_guard lock(inode->mu);
        ++inode->open_count;
      }
      FdRef ref;
      fd = impl->table->Acquire(inode, &ref);
      if (fd == 0) {
        char path[32];
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", ref.fd());
        fd = open(path, r.flags | O_CLOEXEC);
        if (fd < 0) fd = -errno;
      }
    }
    if (fd >= 0 && impl->passthrough && r.kind == static_cast<uint8_t>(FileKind::kPassthrough)) {
      impl->passthrough->RestoreHandle(fd, inode);
    }
    if (fd < 0) {
      ++failed;
      log::Warn("{}: cannot reopen open file {:#x} (node {}): {}; it answers EIO", options.source,
                fh, r.node_slot, std::strerror(-fd));
    }
    return fd;
  });

  umask(0);
  impl->options = std::move(options);
  const VolumeOptions& o = impl->options;
  ReleaseUnopenedOrphans(impl.get(), orphans);
  impl->backing_device = src.root_stat.st_dev;
  impl->conn_fd = conn_fd;
  conn_fd = -1;
  auto fail_session = [&](Status s) {
    if (impl->session != nullptr) fuse_session_destroy(impl->session);
    impl->session = nullptr;
    close(impl->conn_fd);
    return s;
  };
  int session_fd = fcntl(impl->conn_fd, F_DUPFD_CLOEXEC, 0);
  if (session_fd < 0) return fail_session(Status::FromErrno("cannot dup the connection of " + o.source, errno));
  impl->session = NewSession(SessionArguments(o, false), impl.get());
  if (impl->session == nullptr) {
    close(session_fd);
    return fail_session(Status::Internal("cannot set up a FUSE session for " + o.source));
  }
  if (impl->passthrough) impl->passthrough->Bind(impl->conn_fd);
  if (int rv = InstallChannelIo(impl->session, session_fd, !impl->passthrough); rv < 0) {
    close(session_fd);
    return fail_session(Status::FromErrno("cannot set up the FUSE channel of " + o.source, -rv));
  }
  impl->adopted = true;
  impl->replay_init = true;
  JournalContents journal = impl->arena->TakeJournal(header->epoch);
  size_t journalled = journal.records.size();
  impl->resend.Load(std::move(journal));
  header->epoch++;
  header->owner_pid = getpid();
  header->state = static_cast<uint32_t>(ArenaState::kServing);
  log::Info("{}: adopted its FUSE connection (epoch {}): {} nodes ({} unlinked while open), {} "
            "open files ({} lost), {} requests in flight journalled",
            o.source, header->epoch, nodes, orphans.size(), files, failed, journalled);
  return std::unique_ptr<Volume>(new Volume(std::move(impl)));
}

Result<VolumeBundle> Volume::Bundle() const {
  if (impl_->session == nullptr || impl_->conn_fd < 0) {
    return Status::Unavailable("the volume " + impl_->options.mountpoint + " is not being served");
  }
  if (!impl_->table->handles_usable()) {
    return Status::Unavailable("the volume " + impl_->options.mountpoint +
                               " cannot be adopted: file handles are not usable");
  }
  VolumeBundle b;
  b.connection_fd = fcntl(impl_->conn_fd, F_DUPFD_CLOEXEC, 0);
  if (b.connection_fd < 0) return Status::FromErrno("cannot dup the FUSE connection", errno);
  b.arena_fd = fcntl(impl_->arena->fd(), F_DUPFD_CLOEXEC, 0);
  if (b.arena_fd < 0) {
    int err = errno;
    close(b.connection_fd);
    return Status::FromErrno("cannot dup the arena", err);
  }
  return b;
}

namespace {

// An adopted session: libfuse gets the saved INIT (compat_io's read hook; the reply is
// swallowed), then the kernel puts the requests the previous server read but did not answer
// back in the queue, marked resent. Before the session's first real read.
Status FinishAdoption(Volume::Impl* impl) {
  if (!impl->replay_init) return Status::Ok();
  fuse_buf buf{};
  int res = fuse_session_receive_buf(impl->session, &buf);
  if (res > 0) fuse_session_process_buf(impl->session, &buf);
  std::free(buf.mem);
  if (res <= 0) return Status::FromErrno("cannot replay the INIT of " + impl->options.source, -res);
  fuse_out_header resend{};
  resend.len = sizeof resend;
  resend.error = kNotifyResend;
  resend.unique = 0;
  if (write(impl->conn_fd, &resend, sizeof resend) != static_cast<ssize_t>(sizeof resend)) {
    // Without it, requests the dead server had read stay unanswered: say so loudly.
    log::Error("{}: FUSE_NOTIFY_RESEND failed: {}; requests in flight at the previous server's "
               "end stay unanswered",
               impl->options.source, std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

Volume::~Volume() { Stop(); }

Status Volume::Serve() {
  if (Status s = FinishAdoption(impl_.get()); !s.ok()) return s;
  fuse_loop_config* config = fuse_loop_cfg_create();
  // Every thread reads the one connection fd: a cloned device (clone_fd) ends its unanswered
  // requests with ECONNABORTED when its process dies, which no adopter could answer.
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_max_threads(config, impl_->options.max_threads);
  // Idle workers are kept up to half the maximum, so bursts of requests do not create and
  // destroy threads.
  fuse_loop_cfg_set_idle_threads(config, std::max(1u, impl_->options.max_threads / 2));
  int rv = fuse_session_loop_mt(impl_->session, config);
  fuse_loop_cfg_destroy(config);
  // A positive value is the signal that ended the loop: a requested stop, not a failure.
  if (rv < 0 && !impl_->stopping) {
    return Status::FromErrno("serving " + impl_->options.mountpoint, -rv);
  }
  return Status::Ok();
}

Status Volume::HandleSignals() {
  if (fuse_set_signal_handlers(impl_->session) != 0) {
    return Status::Internal("cannot install signal handlers");
  }
  impl_->handles_signals = true;
  return Status::Ok();
}

Status Volume::Start() {
  if (impl_->server.joinable()) return Status::Internal("volume is already being served");
  impl_->loop_running = true;
  impl_->server = std::thread([this] {
    Status s = Serve();
    if (!s.ok()) log::Error("{}", s.message());
    impl_->loop_running = false;
  });
  return Status::Ok();
}

Status Volume::Start(ServerPool* pool) {
  if (impl_->server.joinable() || impl_->channel) {
    return Status::Internal("volume is already being served");
  }
  // Set before the pool can read INIT, whose handler looks at it.
  impl_->pool = pool->impl();
  if (Status s = FinishAdoption(impl_.get()); !s.ok()) {
    impl_->pool = nullptr;
    return s;
  }
  auto channel = pool->impl()->Add(impl_->session);
  if (!channel.ok()) {
    impl_->pool = nullptr;
    return channel.status();
  }
  impl_->channel = std::move(*channel);
  return Status::Ok();
}

bool Volume::serving() const {
  if (impl_->session == nullptr) return false;
  if (impl_->channel) return !impl_->channel->ended;
  return impl_->loop_running;
}

void Volume::Stop() {
  if (impl_->session == nullptr) return;
  impl_->stopping = true;
  fuse_session_exit(impl_->session);
  if (impl_->channel) {
    impl_->pool->Remove(impl_->channel);
    impl_->channel.reset();
  }
  if (impl_->handles_signals) fuse_remove_signal_handlers(impl_->session);
  if (impl_->mounted) {
    // Unmounting ends the workers' reads on /dev/fuse, which ends the loop.
    fuse_session_unmount(impl_->session);
    impl_->mounted = false;
  } else if (impl_->adopted) {
    DetachAdoptedMount(impl_.get());
  }
  if (impl_->server.joinable()) impl_->server.join();
  fuse_session_destroy(impl_->session);
  impl_->session = nullptr;
  CloseHandlesLeftOpen(impl_.get());
  if (impl_->conn_fd >= 0) close(impl_->conn_fd);
  impl_->conn_fd = -1;
}

void Volume::Release() {
  if (impl_->session == nullptr) return;
  impl_->stopping = true;
  fuse_session_exit(impl_->session);
  if (impl_->channel) {
    impl_->pool->Remove(impl_->channel);  // waits until no request is in the handlers
    impl_->channel.reset();
  } else if (impl_->server.joinable()) {
    log::Warn("{}: released while served by its own threads, which stop only at the next "
              "request; serve it with a ServerPool to hand it over",
              impl_->options.mountpoint);
    impl_->server.detach();
  }
  if (impl_->handles_signals) fuse_remove_signal_handlers(impl_->session);
  impl_->mounted = false;  // the next server serves it; nothing is unmounted
  ArenaHeader* header = impl_->arena->header();
  header->state = static_cast<uint32_t>(ArenaState::kReleased);
  header->owner_pid = 0;
  // The kernel keeps its backing ids: Passthrough::Forget closes none.
  fuse_session_destroy(impl_->session);
  impl_->session = nullptr;
  CloseHandlesLeftOpen(impl_.get());
  if (impl_->conn_fd >= 0) close(impl_->conn_fd);
  impl_->conn_fd = -1;
}

Status Volume::SetCapacity(uint64_t bytes) {
  if (bytes == 0) return Status::Invalid("capacity must be greater than zero");
  if (impl_->kernel_limit) return impl_->kernel_limit->Resize(bytes);
  return impl_->quota->SetCapacity(bytes);
}

Status Volume::SetInodeLimit(std::optional<uint64_t> limit) {
  return impl_->quota->SetInodeLimit(limit);
}

VolumeUsage Volume::Usage() const {
  Quota::Figures f = impl_->quota->figures();
  VolumeUsage u;
  u.used_bytes = f.used_bytes;
  u.used_inodes = f.used_inodes;
  if (impl_->quota->enabled()) u.capacity_bytes = f.capacity;
  u.inode_limit = f.inode_limit;
  u.quota_rejections = f.rejections;
  u.mode = mode();
  if (impl_->kernel_limit) {
    auto k = impl_->kernel_limit->Usage();
    if (k.ok()) {
      u.used_bytes = k->used_bytes;
      u.capacity_bytes = k->limit_bytes;
    } else {
      u.capacity_bytes = impl_->options.capacity_bytes;
    }
  }
  return u;
}

const VolumeOptions& Volume::options() const { return impl_->options; }

std::string Volume::mode() const {
  if (!impl_->kernel_limit) return impl_->mode;
  std::string base = impl_->kernel_limit->Describe();
  if (!impl_->passthrough) return "kernel (" + base + ", no passthrough)";
  std::string off = impl_->passthrough->off_reason();
  if (!off.empty()) return "kernel (" + base + ", no passthrough: " + off + ")";
  return "kernel (" + base + ", passthrough)";
}

}  // namespace claimfs::fs
