#include <fcntl.h>
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

Result<std::unique_ptr<Volume>> Volume::Mount(VolumeOptions options) {
  // Absolute paths: the standalone program changes to / when it goes to the background.
  for (std::string* path : {&options.source, &options.mountpoint}) {
    char resolved[PATH_MAX];
    if (realpath(path->c_str(), resolved) != nullptr) *path = resolved;
  }
  int root_fd = open(options.source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound("source directory " + options.source + " does not exist");
    if (err == ENOTDIR) return Status::Invalid("source " + options.source + " is not a directory");
    return Status::FromErrno("cannot open source directory " + options.source, err);
  }
  auto fail = [&](Status s) {
    close(root_fd);
    return s;
  };
  struct stat mount_stat;
  if (stat(options.mountpoint.c_str(), &mount_stat) != 0) {
    return fail(Status::FromErrno("mount point " + options.mountpoint, errno));
  }
  if (!S_ISDIR(mount_stat.st_mode)) {
    return fail(Status::Invalid("mount point " + options.mountpoint + " is not a directory"));
  }
  struct stat root_stat;
  if (fstatat(root_fd, "", &root_stat, AT_EMPTY_PATH) != 0) {
    return fail(Status::FromErrno("cannot stat " + options.source, errno));
  }
  struct statvfs backing;
  if (fstatvfs(root_fd, &backing) != 0) {
    return fail(Status::FromErrno("cannot statfs " + options.source, errno));
  }

  auto impl = std::make_unique<Impl>();
  impl->quota_errno = options.quota_errno;
  impl->timeout = options.cache_timeout_seconds;
  impl->block_size = backing.f_bsize ? backing.f_bsize : 4096;

  std::string accounted_why;
  if (options.capacity_bytes) {
    impl->kernel_limit = KernelLimitFor(root_fd, options, &accounted_why);
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
    auto scanned = ScanTree(root_fd);
    if (!scanned.ok()) return fail(scanned.status());
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
  size_t fd_budget = options.fd_cache_budget ? options.fd_cache_budget : DefaultFdBudget();
  impl->table = std::make_unique<InodeTable>(root_fd, root_stat, fd_budget);
  {
    std::lock_guard lock(impl->table->root()->mu);
    impl->table->root()->allocated = static_cast<uint64_t>(root_stat.st_blocks) * 512;
  }
  if (!impl->table->handles_usable()) {
    log::Warn("{}: file handles are not usable here (not root, or the filesystem cannot export "
              "them): every known inode keeps an open fd",
              options.source);
  }

  std::string mount_options = "default_permissions,subtype=claimfs";
  bool has_fsname = false;
  for (const std::string& o : options.kernel_options) {
    if (o.rfind("fsname=", 0) == 0) has_fsname = true;
    mount_options += "," + o;
  }
  if (!has_fsname) mount_options += ",fsname=" + EscapeOptionValue(options.source);
  if (options.allow_other) mount_options += ",allow_other";
  std::vector<std::string> arguments = {"claimfs", "-o", mount_options};
  if (options.debug) arguments.emplace_back("-d");
  std::vector<char*> argv;
  for (std::string& a : arguments) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  // New objects get exactly the mode the kernel sends (it already applied the caller's umask).
  umask(0);
  impl->options = std::move(options);
  const VolumeOptions& o = impl->options;
  impl->session = fuse_session_new(&args, &VolumeOperations(), sizeof(fuse_lowlevel_ops), impl.get());
  fuse_opt_free_args(&args);
  if (impl->session == nullptr) {
    return Status::Invalid("cannot set up a FUSE session for " + o.mountpoint +
                           " (libfuse refused the mount options: " + mount_options + ")");
  }
  if (fuse_session_mount(impl->session, o.mountpoint.c_str()) != 0) {
    fuse_session_destroy(impl->session);
    impl->session = nullptr;
    return Status::IOError("cannot mount " + o.source + " on " + o.mountpoint +
                           " (is /dev/fuse there, and are we root?)");
  }
  impl->mounted = true;
  impl->backing_device = root_stat.st_dev;
  // One set of custom I/O hooks per session: Passthrough's on a kernel-mode volume (they keep
  // compat_io's duties), compat_io's otherwise.
  if (impl->kernel_limit) {
    impl->passthrough = std::make_unique<Passthrough>(impl->quota_errno, impl->quota.get());
    if (impl->passthrough->Install(impl->session) != 0) {
      log::Warn("{}: cannot take over the FUSE session's I/O: no passthrough (the kernel still "
                "enforces the capacity)",
                o.source);
      impl->passthrough.reset();
    }
  }
  if (!impl->passthrough) {
    if (int rv = InstallCompatIo(impl->session); rv < 0) {
      fuse_session_unmount(impl->session);
      fuse_session_destroy(impl->session);
      impl->session = nullptr;
      return Status::FromErrno("cannot set up the FUSE channel of " + o.mountpoint, -rv);
    }
  }
  return std::unique_ptr<Volume>(new Volume(std::move(impl)));
}

Volume::~Volume() { Stop(); }

Status Volume::Serve() {
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 1);
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
  }
  if (impl_->server.joinable()) impl_->server.join();
  fuse_session_destroy(impl_->session);
  impl_->session = nullptr;
  CloseHandlesLeftOpen(impl_.get());
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
