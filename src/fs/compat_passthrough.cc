#include "compat_passthrough.h"

#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "claimfs/common/log.h"
#include "claimfs/limits/resource_cap.h"
#include "compat_io.h"
#include "inode_table.h"
#include "quota.h"
#include "volume_impl.h"

namespace claimfs::fs {
namespace {

// Protocol 7.40 pieces that bookworm's linux/fuse.h (7.38) and libfuse 3.14 lack.
constexpr uint64_t kPassthroughInitFlag = 1ULL << 37;  // FUSE_PASSTHROUGH, in flags2 as bit 5
constexpr uint32_t kInitExt = 1u << 30;                // FUSE_INIT_EXT
constexpr uint32_t kOpenPassthrough = 1u << 7;         // FOPEN_PASSTHROUGH
constexpr uint32_t kMaxStackDepth = 1;  // backing files on a non-stacked fs (btrfs: depth 0)

struct BackingMap {  // struct fuse_backing_map
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(FUSE_DEV_IOC_MAGIC, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t);

struct OpenOut740 {  // fuse_open_out, 7.40: 3.14's `padding` is the backing id
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut740) == sizeof(fuse_open_out));
static_assert(offsetof(OpenOut740, backing_id) == offsetof(fuse_open_out, padding));

// fuse_init_out, 7.40: 3.14's unused[0] is max_stack_depth.
constexpr size_t kInitFlagsOffset = offsetof(fuse_init_out, flags);
constexpr size_t kInitFlags2Offset = offsetof(fuse_init_out, flags2);
constexpr size_t kInitMaxStackDepthOffset = offsetof(fuse_init_out, unused);
static_assert(kInitMaxStackDepthOffset == 36);

// fuse_init_in: flags at 12, flags2 (7.36+, with FUSE_INIT_EXT) at 16.
constexpr size_t kInitInFlagsOffset = offsetof(fuse_init_in, flags);
constexpr size_t kInitInFlags2Offset = offsetof(fuse_init_in, flags2);

uint32_t Load32(const void* base, size_t offset) {
  uint32_t v;
  std::memcpy(&v, static_cast<const char*>(base) + offset, sizeof v);
  return v;
}
void Store32(void* base, size_t offset, uint32_t v) {
  std::memcpy(static_cast<char*>(base) + offset, &v, sizeof v);
}

unsigned long TimeoutSeconds(double t) { return t <= 0 ? 0 : static_cast<unsigned long>(t); }
uint32_t TimeoutNanoseconds(double t) {
  double f = t - static_cast<double>(TimeoutSeconds(t));
  if (f <= 0) return 0;
  return f >= 0.999999999 ? 999999999u : static_cast<uint32_t>(f * 1e9);
}

// libfuse's fill_entry()/convert_stat(), which 3.14 does not export.
void FillEntryOut(const fuse_entry_param& e, fuse_entry_out* out) {
  out->nodeid = e.ino;
  out->generation = e.generation;
  out->entry_valid = TimeoutSeconds(e.entry_timeout);
  out->entry_valid_nsec = TimeoutNanoseconds(e.entry_timeout);
  out->attr_valid = TimeoutSeconds(e.attr_timeout);
  out->attr_valid_nsec = TimeoutNanoseconds(e.attr_timeout);
  const struct stat& st = e.attr;
  fuse_attr& a = out->attr;
  a.ino = st.st_ino;
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = static_cast<uint32_t>(st.st_rdev);
  a.size = static_cast<uint64_t>(st.st_size);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
}

OpenOut740 MakeOpenOut(uint64_t fh, int backing_id, bool direct_io) {
  OpenOut740 out{};
  out.fh = fh;
  // FOPEN_DIRECT_IO overrides passthrough for read and write, not for mmap. Never KEEP_CACHE.
  out.open_flags = kOpenPassthrough | (direct_io ? FOPEN_DIRECT_IO : 0u);
  out.backing_id = backing_id;
  return out;
}

}  // namespace

Passthrough::Passthrough(int quota_errno, Quota* quota) : quota_errno_(quota_errno), quota_(quota) {
  // The serving threads run already (the pool is shared): CAP_SYS_RESOURCE, if there, is left
  // out of the credentials at each BACKING_OPEN (Attach) rather than dropped.
  if (auto caps = limits::ReadCapabilities(); caps.ok()) {
    limits::ResourceCapDecision d = limits::DecideResourceCap(*caps, true, false);
    if (d.action != limits::ResourceCapAction::kNone) log::Info("passthrough: {}", d.why);
  }
}

std::string Passthrough::off_reason() const {
  std::lock_guard lock(mu_);
  return off_reason_;
}

void Passthrough::TurnOff(std::string reason) {
  enabled_.store(false, std::memory_order_release);
  log::Warn("FUSE passthrough off for this volume: {}; the kernel still enforces the capacity, "
            "reads and writes go through claimfs",
            reason);
  std::lock_guard lock(mu_);
  if (off_reason_.empty()) off_reason_ = std::move(reason);
}

void Passthrough::SeeRequest(const void* buf, size_t len) {
  if (len < sizeof(fuse_in_header)) return;
  fuse_in_header in;
  std::memcpy(&in, buf, sizeof in);
  if (in.opcode != FUSE_INIT) return;
  const char* arg = static_cast<const char*>(buf) + sizeof in;
  size_t arg_len = len - sizeof in;
  bool offered = false;
  if (arg_len >= kInitInFlags2Offset + 4) {
    uint32_t flags = Load32(arg, kInitInFlagsOffset);
    uint64_t flags2 = Load32(arg, kInitInFlags2Offset);
    offered = (flags & kInitExt) && ((flags2 << 32) & kPassthroughInitFlag);
    killpriv_offered_.store(flags & FUSE_HANDLE_KILLPRIV_V2, std::memory_order_relaxed);
  }
  offered_.store(offered, std::memory_order_relaxed);
  init_unique_.store(in.unique, std::memory_order_release);
}

void Passthrough::PatchReply(struct iovec* iov, int count) {
  auto* out = static_cast<fuse_out_header*>(iov[0].iov_base);
  if (out->unique == 0) return;  // a notification
  if (out->error == -EDQUOT) {
    // A request the daemon served hit the kernel-enforced limit.
    if (quota_ != nullptr) quota_->RecordRejection();
    out->error = -quota_errno_;
    return;
  }
  uint64_t init_unique = init_unique_.load(std::memory_order_acquire);
  if (init_unique == 0 || out->unique != init_unique || out->error != 0) return;
  init_unique_.store(0, std::memory_order_relaxed);
  if (!offered_.load(std::memory_order_relaxed)) {
    TurnOff("the kernel did not offer FUSE passthrough in INIT");
    return;
  }
  if (count < 2 || iov[1].iov_len < kInitMaxStackDepthOffset + 4) {
    TurnOff("the INIT reply is too short to carry passthrough (protocol minor < 36)");
    return;
  }
  void* arg = iov[1].iov_base;
  uint32_t flags = Load32(arg, kInitFlagsOffset);
  if (flags & FUSE_WRITEBACK_CACHE) {
    TurnOff("write-back caching is on, which the kernel does not combine with passthrough");
    return;
  }
  if (killpriv_offered_.load(std::memory_order_relaxed)) flags |= FUSE_HANDLE_KILLPRIV_V2;
  Store32(arg, kInitFlagsOffset, flags | kInitExt);
  Store32(arg, kInitFlags2Offset,
          Load32(arg, kInitFlags2Offset) | static_cast<uint32_t>(kPassthroughInitFlag >> 32));
  Store32(arg, kInitMaxStackDepthOffset, kMaxStackDepth);
  enabled_.store(true, std::memory_order_release);
}

int Passthrough::Attach(Inode* inode, int fd) {
  std::lock_guard lock(mu_);
  Backing& b = by_node_[inode];
  if (b.refs == 0) {
    BackingMap map{};
    map.fd = fd;
    int id;
    int err = EIO;
    {
      // The kernel keeps these credentials for all I/O on the backing file.
      limits::ResourceCapLowered lowered;
      id = ioctl(session_fd_, kBackingOpen, &map);
      if (id < 0) err = errno;
    }
    if (id <= 0) {
      by_node_.erase(inode);
      if (!gave_up_ && (err == EPERM || err == ENOTTY || err == EOPNOTSUPP || err == ELOOP)) {
        gave_up_ = true;
        enabled_.store(false, std::memory_order_release);
        off_reason_ = std::string("FUSE_DEV_IOC_BACKING_OPEN refused: ") + std::strerror(err);
        log::Warn("passthrough off for this volume: {}", off_reason_);
      }
      return -err;
    }
    b.id = id;
  }
  ++b.refs;
  by_handle_[fd] = inode;
  // Mirrored in the arena before the open's reply names the id: the kernel keeps backing ids
  // past our death, and an adopter must reuse them (a second BACKING_OPEN for the node would
  // make its later opens fail EIO).
  inode->record->backing_id = b.id;
  inode->record->backing_refs = b.refs;
  return b.id;
}

void Passthrough::Detach(int fd) {
  std::lock_guard lock(mu_);
  auto h = by_handle_.find(fd);
  if (h == by_handle_.end()) return;
  Inode* inode = h->second;
  auto n = by_node_.find(inode);
  by_handle_.erase(h);
  if (n == by_node_.end()) return;
  inode->record->backing_refs = --n->second.refs;
  if (n->second.refs > 0) return;
  uint32_t id = static_cast<uint32_t>(n->second.id);
  by_node_.erase(n);
  inode->record->backing_id = 0;
  if (ioctl(session_fd_, kBackingClose, &id) != 0 && errno != ENOTCONN) {
    log::Warn("cannot close FUSE backing id {}: {}", id, std::strerror(errno));
  }
}

void Passthrough::Restore(Inode* inode, int backing_id, uint32_t refs) {
  std::lock_guard lock(mu_);
  by_node_[inode] = Backing{backing_id, refs};
}

void Passthrough::RestoreHandle(int fd, Inode* inode) {
  std::lock_guard lock(mu_);
  by_handle_[fd] = inode;
}

void Passthrough::Forget() {
  std::lock_guard lock(mu_);
  by_node_.clear();
  by_handle_.clear();
}

int Passthrough::ReplyOpen(fuse_req_t req, uint64_t fh, int backing_id, bool direct_io) {
  OpenOut740 out = MakeOpenOut(fh, backing_id, direct_io);
  return fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof out);
}

int Passthrough::ReplyCreate(fuse_req_t req, const fuse_entry_param& e, uint64_t fh,
                             int backing_id, bool direct_io) {
  struct {
    fuse_entry_out entry;
    OpenOut740 open;
  } out{};
  static_assert(sizeof(out) == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  FillEntryOut(e, &out.entry);
  out.open = MakeOpenOut(fh, backing_id, direct_io);
  return fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof out);
}

}  // namespace claimfs::fs
