#include "btrfs_qgroup.h"

#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "claimfs/common/log.h"

namespace claimfs::limits {
namespace {

// Reads a whole small sysfs file under `dir_fd`: 0 or -errno.
int ReadNumberAt(int dir_fd, const char* name, uint64_t* out) noexcept {
  int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  char buf[64];
  ssize_t n = read(fd, buf, sizeof buf);
  int err = errno;
  close(fd);
  if (n < 0) return -err;
  return ParseSysfsNumber(buf, static_cast<size_t>(n), out) ? 0 : -EINVAL;
}

class BtrfsQgroup final : public VolumeLimit {
 public:
  BtrfsQgroup(int fs_dir_fd, int volume_fd, uint64_t subvolume_id)
      : fs_dir_fd_(fs_dir_fd), volume_fd_(volume_fd), subvolume_id_(subvolume_id) {
    std::snprintf(referenced_, sizeof referenced_, "qgroups/0_%llu/referenced",
                  static_cast<unsigned long long>(subvolume_id));
    std::snprintf(rsv_data_, sizeof rsv_data_, "qgroups/0_%llu/rsv_data",
                  static_cast<unsigned long long>(subvolume_id));
    std::snprintf(max_referenced_, sizeof max_referenced_, "qgroups/0_%llu/max_referenced",
                  static_cast<unsigned long long>(subvolume_id));
  }
  ~BtrfsQgroup() override {
    close(fs_dir_fd_);
    close(volume_fd_);
  }

  std::string Describe() const override {
    LimitUsage ignored;
    ReadUsage(&ignored);  // brings state_ up to date
    switch (state_.load(std::memory_order_relaxed)) {
      case kQuotasOff:
        return Name() + ", limit gone: btrfs quotas were turned off";
      case kInconsistent:
        return Name() + ", figures unreliable: btrfs qgroups are inconsistent";
      default:
        return Name();
    }
  }

  Status SetLimit(uint64_t bytes) override {
    if (bytes == 0) return Status::Invalid("a qgroup limit must be greater than zero");
    if (int rv = ApplyLimit(bytes); rv < 0) {
      return Status::FromErrno("cannot set the limit of " + Name(), -rv);
    }
    limit_.store(bytes, std::memory_order_relaxed);
    return Status::Ok();
  }

  Status Resize(uint64_t bytes) override {
    auto usage = Usage();
    if (!usage.ok()) return usage.status();
    if (!usage->enforced) {
      return Status::Unavailable("cannot resize " + Describe() + " (btrfs quota enable)");
    }
    if (bytes < usage->used_bytes) {
      return Status::Forbidden("cannot shrink " + Name() + " to " + std::to_string(bytes) +
                               " bytes: " + std::to_string(usage->used_bytes) + " are in use");
    }
    return SetLimit(bytes);
  }

  Result<LimitUsage> Usage() const override {
    LimitUsage u;
    int rv = ReadUsage(&u);
    if (rv < 0) return Status::FromErrno("cannot read the usage of " + Name(), -rv);
    return u;
  }

  int ReadUsage(LimitUsage* out) const noexcept override {
    uint64_t referenced = 0, reserved = 0, limit = 0, inconsistent = 0;
    int rv = ReadNumberAt(fs_dir_fd_, referenced_, &referenced);
    if (rv == -ENOENT) {
      // Quotas turned off (the qgroups directory went with them), or the qgroup removed.
      Enter(kQuotasOff);
      out->used_bytes = last_used_.load(std::memory_order_relaxed);
      out->limit_bytes = limit_.load(std::memory_order_relaxed);
      out->enforced = false;
      return 0;
    }
    if (rv < 0) return rv;
    // Data written since the last commit is in rsv_data, not yet in referenced.
    if (ReadNumberAt(fs_dir_fd_, rsv_data_, &reserved) < 0) reserved = 0;
    rv = ReadNumberAt(fs_dir_fd_, max_referenced_, &limit);
    if (rv < 0) return rv;
    uint64_t used = referenced + reserved;
    uint64_t wanted = limit_.load(std::memory_order_relaxed);
    if (limit == 0 && wanted != 0 && ApplyLimit(wanted) == 0) {
      // Quotas on again: btrfs made the qgroup anew, without the volume's limit.
      limit = wanted;
      Note("btrfs qgroup limit set again: quotas are on again");
    }
    if (ReadNumberAt(fs_dir_fd_, "qgroups/inconsistent", &inconsistent) == 0 && inconsistent) {
      // A rescan counts again from zero: keep the last consistent figure as a floor.
      Enter(kInconsistent);
      uint64_t last = last_used_.load(std::memory_order_relaxed);
      if (used < last) used = last;
    } else {
      Enter(kEnforced);
      last_used_.store(used, std::memory_order_relaxed);
    }
    out->used_bytes = used;
    out->limit_bytes = limit;
    out->enforced = true;
    return 0;
  }

 private:
  enum State : int { kEnforced, kQuotasOff, kInconsistent };

  std::string Name() const { return "btrfs qgroup 0/" + std::to_string(subvolume_id_); }

  int ApplyLimit(uint64_t bytes) const noexcept {
    btrfs_ioctl_qgroup_limit_args args{};
    args.qgroupid = subvolume_id_;  // level 0: the subvolume's own qgroup
    args.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
    args.lim.max_rfer = bytes;
    return ioctl(volume_fd_, BTRFS_IOC_QGROUP_LIMIT, &args) == 0 ? 0 : -errno;
  }

  // One log line per change of state, not per statfs.
  void Enter(State next) const noexcept {
    int before = state_.exchange(next, std::memory_order_relaxed);
    if (before == next) return;
    switch (next) {
      case kQuotasOff:
        Warn("the kernel no longer enforces the capacity: btrfs quotas were turned off; df and "
             "usage show the last figures read (btrfs quota enable restores the limit)");
        break;
      case kInconsistent:
        Warn("btrfs qgroups are inconsistent (a rescan is running or needed): usage figures may "
             "lag until it ends");
        break;
      case kEnforced:
        Note("the capacity is enforced by the kernel again");
        break;
    }
  }
  void Warn(const char* what) const noexcept {
    try {
      log::Warn("{}: {}", Name(), what);
    } catch (...) {
    }
  }
  void Note(const char* what) const noexcept {
    try {
      log::Info("{}: {}", Name(), what);
    } catch (...) {
    }
  }

  const int fs_dir_fd_;  // /sys/fs/btrfs/<fsid>: qgroups/ is made anew when quotas are enabled
  const int volume_fd_;  // the subvolume's root, for the ioctls
  const uint64_t subvolume_id_;
  char referenced_[64], rsv_data_[64], max_referenced_[64];  // paths under fs_dir_fd_
  std::atomic<uint64_t> limit_{0};             // the limit last set; 0 before SetLimit
  mutable std::atomic<uint64_t> last_used_{0};  // the last consistent usage
  mutable std::atomic<int> state_{kEnforced};
};

// The first higher-level qgroup that qgroup 0/`subvolume_id` belongs to: 0 if none, -errno if
// the quota tree cannot be searched. A parent's limit may stop writes before the subvolume's own,
// and then df would promise room the kernel refuses.
int64_t ParentQgroup(int dir_fd, uint64_t subvolume_id) {
  btrfs_ioctl_search_args args{};
  btrfs_ioctl_search_key& key = args.key;
  key.tree_id = BTRFS_QUOTA_TREE_OBJECTID;
  key.min_objectid = key.max_objectid = subvolume_id;  // (child, RELATION, parent) items
  key.min_type = key.max_type = BTRFS_QGROUP_RELATION_KEY;
  key.min_offset = 0;
  key.max_offset = UINT64_MAX;
  key.min_transid = 0;
  key.max_transid = UINT64_MAX;
  key.nr_items = 1;
  if (ioctl(dir_fd, BTRFS_IOC_TREE_SEARCH, &args) != 0) return -errno;
  if (key.nr_items == 0) return 0;
  btrfs_ioctl_search_header header;
  std::memcpy(&header, args.buf, sizeof header);
  return static_cast<int64_t>(header.offset);
}

}  // namespace

std::string FormatFsid(const uint8_t (&fsid)[16]) {
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", fsid[0],
                fsid[1], fsid[2], fsid[3], fsid[4], fsid[5], fsid[6], fsid[7], fsid[8], fsid[9],
                fsid[10], fsid[11], fsid[12], fsid[13], fsid[14], fsid[15]);
  return out;
}

bool ParseSysfsNumber(const char* text, size_t length, uint64_t* out) {
  uint64_t value = 0;
  size_t i = 0;
  for (; i < length && text[i] >= '0' && text[i] <= '9'; ++i) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  if (i == 0) return false;
  if (i < length && !(text[i] == '\n' && i + 1 == length)) return false;
  *out = value;
  return true;
}

Result<std::unique_ptr<VolumeLimit>> OpenBtrfsQgroup(int dir_fd) {
  struct statfs fs;
  if (fstatfs(dir_fd, &fs) != 0) return Status::FromErrno("cannot statfs the volume", errno);
  if (static_cast<uint64_t>(fs.f_type) != BTRFS_SUPER_MAGIC) {
    return Status::Invalid("not on btrfs");
  }
  struct stat st;
  if (fstat(dir_fd, &st) != 0) return Status::FromErrno("cannot stat the volume", errno);
  if (!S_ISDIR(st.st_mode) || st.st_ino != BTRFS_FIRST_FREE_OBJECTID) {
    return Status::Invalid("a plain directory on btrfs, not a subvolume");
  }
  btrfs_ioctl_ino_lookup_args lookup{};
  lookup.treeid = 0;
  lookup.objectid = BTRFS_FIRST_FREE_OBJECTID;
  if (ioctl(dir_fd, BTRFS_IOC_INO_LOOKUP, &lookup) != 0) {
    return Status::FromErrno("cannot find the subvolume id", errno);
  }
  uint64_t id = lookup.treeid;
  if (id == BTRFS_FS_TREE_OBJECTID) {
    return Status::Invalid("the file system's top-level subvolume, which has no limit of its own");
  }
  btrfs_ioctl_fs_info_args info{};
  if (ioctl(dir_fd, BTRFS_IOC_FS_INFO, &info) != 0) {
    return Status::FromErrno("cannot read the btrfs file system id", errno);
  }
  std::string fs_path = "/sys/fs/btrfs/" + FormatFsid(info.fsid);
  int fs_dir = open(fs_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs_dir < 0) return Status::FromErrno("cannot open " + fs_path, errno);
  auto fail = [&](Status s, int more = -1) {
    close(fs_dir);
    if (more >= 0) close(more);
    return s;
  };
  uint64_t enabled = 0, inconsistent = 0;
  if (ReadNumberAt(fs_dir, "qgroups/enabled", &enabled) < 0 || enabled != 1) {
    return fail(Status::Unavailable("btrfs quotas are off (btrfs quota enable)"));
  }
  if (ReadNumberAt(fs_dir, "qgroups/inconsistent", &inconsistent) == 0 && inconsistent != 0) {
    return fail(Status::Unavailable("btrfs qgroups are inconsistent (btrfs quota rescan)"));
  }
  std::string qgroup = "qgroups/0_" + std::to_string(id);
  struct stat qgroup_stat;
  if (fstatat(fs_dir, qgroup.c_str(), &qgroup_stat, 0) != 0) {
    return fail(Status::FromErrno("no qgroup 0/" + std::to_string(id) + " (" + fs_path + "/" +
                                      qgroup + ")",
                                  errno));
  }
  int64_t parent = ParentQgroup(dir_fd, id);
  if (parent < 0) {
    return fail(Status::FromErrno("cannot read the qgroup relations of 0/" + std::to_string(id),
                                  static_cast<int>(-parent)));
  }
  if (parent > 0) {
    uint64_t p = static_cast<uint64_t>(parent);
    return fail(Status::Invalid("qgroup 0/" + std::to_string(id) + " is shared: it belongs to qgroup " +
                                std::to_string(p >> 48) + "/" +
                                std::to_string(p & ((1ULL << 48) - 1)) +
                                ", whose limit the volume's size would not show"));
  }
  int volume_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (volume_fd < 0) return fail(Status::FromErrno("cannot keep the volume fd", errno));
  return std::unique_ptr<VolumeLimit>(new BtrfsQgroup(fs_dir, volume_fd, id));
}

Result<std::unique_ptr<VolumeLimit>> OpenVolumeLimit(int dir_fd) { return OpenBtrfsQgroup(dir_fd); }

std::string PoolLimitProblem(int pool_fd) {
  struct statfs fs;
  if (fstatfs(pool_fd, &fs) != 0) return std::string("cannot statfs the pool: ") + std::strerror(errno);
  if (static_cast<uint64_t>(fs.f_type) != BTRFS_SUPER_MAGIC) return "not on btrfs";
  btrfs_ioctl_fs_info_args info{};
  if (ioctl(pool_fd, BTRFS_IOC_FS_INFO, &info) != 0) {
    return std::string("cannot read the btrfs file system id: ") + std::strerror(errno);
  }
  std::string fs_path = "/sys/fs/btrfs/" + FormatFsid(info.fsid);
  int fs_dir = open(fs_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs_dir < 0) return "cannot open " + fs_path + ": " + std::strerror(errno);
  uint64_t enabled = 0, inconsistent = 0;
  std::string problem;
  if (ReadNumberAt(fs_dir, "qgroups/enabled", &enabled) < 0 || enabled != 1) {
    problem = "btrfs quotas are off (btrfs quota enable)";
  } else if (ReadNumberAt(fs_dir, "qgroups/inconsistent", &inconsistent) == 0 && inconsistent) {
    problem = "btrfs qgroups are inconsistent (btrfs quota rescan)";
  }
  close(fs_dir);
  return problem;
}

Status CreateSubvolume(int pool_fd, const std::string& name) {
  btrfs_ioctl_vol_args args{};
  if (name.empty() || name.size() > BTRFS_PATH_NAME_MAX || name.find('/') != std::string::npos) {
    return Status::Invalid("invalid subvolume name \"" + name + "\"");
  }
  std::memcpy(args.name, name.data(), name.size());
  if (ioctl(pool_fd, BTRFS_IOC_SUBVOL_CREATE, &args) != 0) {
    return Status::FromErrno("cannot create btrfs subvolume " + name, errno);
  }
  if (fchmodat(pool_fd, name.c_str(), 0700, 0) != 0) {
    int err = errno;
    unlinkat(pool_fd, name.c_str(), AT_REMOVEDIR);
    return Status::FromErrno("cannot set the mode of btrfs subvolume " + name, err);
  }
  return Status::Ok();
}

Status DestroyVolume(int pool_fd, const std::string& name, int wait_ms) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return Status::Invalid("invalid volume name \"" + name + "\"");
  }
  uint64_t subvolume_id = 0;
  int fd = openat(pool_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("cannot open volume " + name, errno);
  struct statfs fs;
  struct stat st;
  if (fstatfs(fd, &fs) == 0 && static_cast<uint64_t>(fs.f_type) == BTRFS_SUPER_MAGIC &&
      fstat(fd, &st) == 0 && st.st_ino == BTRFS_FIRST_FREE_OBJECTID) {
    btrfs_ioctl_ino_lookup_args lookup{};
    lookup.objectid = BTRFS_FIRST_FREE_OBJECTID;
    if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &lookup) == 0 && lookup.treeid != BTRFS_FS_TREE_OBJECTID) {
      subvolume_id = lookup.treeid;
    }
  }
  close(fd);
  if (unlinkat(pool_fd, name.c_str(), AT_REMOVEDIR) != 0) {
    return Status::FromErrno("cannot remove volume " + name, errno);
  }
  if (subvolume_id == 0) return Status::Ok();
  // btrfs drops a deleted subvolume in the background; until then its qgroup is busy.
  for (int waited = 0;; waited += 50) {
    btrfs_ioctl_qgroup_create_args args{};
    args.create = 0;
    args.qgroupid = subvolume_id;
    if (ioctl(pool_fd, BTRFS_IOC_QGROUP_CREATE, &args) == 0) return Status::Ok();
    int err = errno;
    // ENOENT: btrfs removed it itself; ENOTCONN or EINVAL: quotas are off, no qgroups at all.
    if (err == ENOENT || err == ENOTCONN || err == EINVAL) return Status::Ok();
    if (err != EBUSY) {
      return Status::FromErrno("cannot remove qgroup 0/" + std::to_string(subvolume_id) +
                                   " of deleted volume " + name,
                               err);
    }
    if (waited >= wait_ms) {
      return Status::Unavailable("qgroup 0/" + std::to_string(subvolume_id) + " of deleted volume " +
                                 name + " is still in use: btrfs has not dropped the subvolume yet");
    }
    ioctl(pool_fd, BTRFS_IOC_SYNC, nullptr);  // a commit wakes the cleaner that drops it
    usleep(50 * 1000);
  }
}

}  // namespace claimfs::limits
