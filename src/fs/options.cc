#include <cerrno>
#include <charconv>
#include <string>
#include <string_view>

#include "claimfs/fs/volume.h"
#include "claimfs/model/quantity.h"

namespace claimfs::fs {
namespace {

// Options the kernel (through libfuse's mount) understands as they are.
constexpr std::string_view kKernelFlags[] = {
    "rw",    "nosuid",     "suid",       "nodev",      "dev",           "noexec",
    "exec",  "noatime",    "atime",      "relatime",   "norelatime",    "strictatime",
    "nodiratime", "diratime", "sync",    "async",      "dirsync",       "lazytime",
    "nolazytime"};
// Options with a value passed to libfuse's mount as they are.
constexpr std::string_view kKernelValued[] = {"fsname", "max_read", "blksize"};
// Words mount(8) and fstab add that mean nothing to the filesystem itself.
constexpr std::string_view kMountHelperNoise[] = {"defaults", "auto", "noauto", "nofail",
                                                  "_netdev", "user", "users", "nouser"};

template <size_t N>
bool OneOf(std::string_view word, const std::string_view (&set)[N]) {
  for (auto s : set) {
    if (word == s) return true;
  }
  return false;
}

Status Bad(std::string_view option, std::string_view why) {
  return Status::Invalid("invalid mount option \"" + std::string(option) + "\": " +
                         std::string(why));
}

Status ParseOne(std::string_view option, VolumeOptions* o) {
  size_t eq = option.find('=');
  std::string_view key = option.substr(0, eq);
  std::string_view value = eq == std::string_view::npos ? std::string_view() : option.substr(eq + 1);
  bool has_value = eq != std::string_view::npos;

  if (key == "capacity" || key == "size") {
    if (!has_value || value.empty()) return Bad(option, "capacity needs a size, e.g. capacity=1Gi");
    auto q = model::Quantity::Parse(value);
    if (!q.ok()) return Bad(option, q.status().message());
    if (q->value() <= 0) return Bad(option, "capacity must be greater than zero");
    o->capacity_bytes = static_cast<uint64_t>(q->value());
    return Status::Ok();
  }
  if (key == "inodes") {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (!has_value || ec != std::errc() || end != value.data() + value.size() || n == 0) {
      return Bad(option, "inodes needs a whole number greater than zero, e.g. inodes=10000");
    }
    o->inode_limit = n;
    return Status::Ok();
  }
  if (key == "quota_errno") {
    if (value == "ENOSPC") {
      o->quota_errno = ENOSPC;
    } else if (value == "EDQUOT") {
      o->quota_errno = EDQUOT;
    } else {
      return Bad(option, "quota_errno is ENOSPC or EDQUOT");
    }
    return Status::Ok();
  }
  if (key == "ro" && !has_value) {
    o->read_only = true;
    o->kernel_options.emplace_back("ro");
    return Status::Ok();
  }
  if (key == "allow_other" && !has_value) {
    o->allow_other = true;
    return Status::Ok();
  }
  if (key == "debug" && !has_value) {
    o->debug = true;
    return Status::Ok();
  }
  if (key == "cache_timeout") {
    double seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (!has_value || ec != std::errc() || end != value.data() + value.size() || seconds < 0) {
      return Bad(option, "cache_timeout needs seconds, e.g. cache_timeout=1");
    }
    o->cache_timeout_seconds = seconds;
    return Status::Ok();
  }
  if (key == "threads") {
    unsigned n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (!has_value || ec != std::errc() || end != value.data() + value.size() || n == 0 ||
        n > 256) {
      return Bad(option, "threads needs a number from 1 to 256");
    }
    o->max_threads = n;
    return Status::Ok();
  }
  if (!has_value && OneOf(key, kKernelFlags)) {
    if (key == "rw") o->read_only = false;
    o->kernel_options.emplace_back(key);
    return Status::Ok();
  }
  if (has_value && OneOf(key, kKernelValued)) {
    if (value.empty()) return Bad(option, "needs a value");
    o->kernel_options.emplace_back(option);
    return Status::Ok();
  }
  if (!has_value && OneOf(key, kMountHelperNoise)) return Status::Ok();
  if (key == "default_permissions" || key == "subtype") return Status::Ok();  // always set
  return Status::Invalid("unknown mount option \"" + std::string(option) + "\"");
}

}  // namespace

Status ParseMountOptions(std::string_view list, VolumeOptions* options) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view option = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (option.empty()) continue;
    Status s = ParseOne(option, options);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace claimfs::fs
