#include "btrfs_qgroup.h"

#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

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
  BtrfsQgroup(int qgroup_dir_fd, int volume_fd, uint64_t subvolume_id)
      : qgroup_dir_fd_(qgroup_dir_fd),
        volume_fd_(volume_fd),
        subvolume_id_(subvolume_id) {}
  ~BtrfsQgroup() override {
    close(qgroup_dir_fd_);
    close(volume_fd_);
  }

  std::string Describe() const override {
    return "btrfs qgroup 0/" + std::to_string(subvolume_id_);
  }

  Status SetLimit(uint64_t bytes) override {
    if (bytes == 0) return Status::Invalid("a qgroup limit must be greater than zero");
    btrfs_ioctl_qgroup_limit_args args{};
    args.qgroupid = subvolume_id_;  // level 0: the subvolume's own qgroup
    args.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
    args.lim.max_rfer = bytes;
    if (ioctl(volume_fd_, BTRFS_IOC_QGROUP_LIMIT, &args) != 0) {
      return Status::FromErrno("cannot set the limit of " + Describe(), errno);
    }
    return Status::Ok();
  }

  Status Resize(uint64_t bytes) override {
    auto usage = Usage();
    if (!usage.ok()) return usage.status();
    if (bytes < usage->used_bytes) {
      return Status::Forbidden("cannot shrink " + Describe() + " to " + std::to_string(bytes) +
                               " bytes: " + std::to_string(usage->used_bytes) + " are in use");
    }
    return SetLimit(bytes);
  }

  Result<LimitUsage> Usage() const override {
    LimitUsage u;
    int rv = ReadUsage(&u);
    if (rv < 0) return Status::FromErrno("cannot read the usage of " + Describe(), -rv);
    return u;
  }

  int ReadUsage(LimitUsage* out) const noexcept override {
    uint64_t referenced = 0, reserved = 0, limit = 0;
    int rv = ReadNumberAt(qgroup_dir_fd_, "referenced", &referenced);
    if (rv < 0) return rv;
    // Data written since the last commit is in rsv_data, not yet in referenced.
    if (ReadNumberAt(qgroup_dir_fd_, "rsv_data", &reserved) < 0) reserved = 0;
    rv = ReadNumberAt(qgroup_dir_fd_, "max_referenced", &limit);
    if (rv < 0) return rv;
    out->used_bytes = referenced + reserved;
    out->limit_bytes = limit;
    return 0;
  }

 private:
  const int qgroup_dir_fd_;  // /sys/fs/btrfs/<fsid>/qgroups/0_<id>
  const int volume_fd_;      // the subvolume's root, for the ioctls
  const uint64_t subvolume_id_;
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
  int qgroup_dir = openat(fs_dir, qgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (qgroup_dir < 0) {
    return fail(Status::FromErrno("no qgroup 0/" + std::to_string(id) + " (" + fs_path + "/" +
                                      qgroup + ")",
                                  errno));
  }
  int64_t parent = ParentQgroup(dir_fd, id);
  if (parent < 0) {
    return fail(Status::FromErrno("cannot read the qgroup relations of 0/" + std::to_string(id),
                                  static_cast<int>(-parent)),
                qgroup_dir);
  }
  if (parent > 0) {
    uint64_t p = static_cast<uint64_t>(parent);
    return fail(Status::Invalid("qgroup 0/" + std::to_string(id) + " is shared: it belongs to qgroup " +
                                std::to_string(p >> 48) + "/" +
                                std::to_string(p & ((1ULL << 48) - 1)) +
                                ", whose limit the volume's size would not show"),
                qgroup_dir);
  }
  int volume_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (volume_fd < 0) return fail(Status::FromErrno("cannot keep the volume fd", errno), qgroup_dir);
  close(fs_dir);
  return std::unique_ptr<VolumeLimit>(new BtrfsQgroup(qgroup_dir, volume_fd, id));
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

}  // namespace claimfs::limits
