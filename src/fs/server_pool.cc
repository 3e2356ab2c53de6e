#include "claimfs/fs/server_pool.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "claimfs/common/log.h"
#include "server_pool_impl.h"

namespace claimfs::fs {
namespace {

constexpr uint64_t kWakeToken = 0;

const char* OperationName(uint32_t opcode) {
  switch (opcode) {
    case FUSE_LOOKUP: return "lookup";
    case FUSE_FORGET: return "forget";
    case FUSE_GETATTR: return "getattr";
    case FUSE_SETATTR: return "setattr";
    case FUSE_READLINK: return "readlink";
    case FUSE_SYMLINK: return "symlink";
    case FUSE_MKNOD: return "mknod";
    case FUSE_MKDIR: return "mkdir";
    case FUSE_UNLINK: return "unlink";
    case FUSE_RMDIR: return "rmdir";
    case FUSE_RENAME: return "rename";
    case FUSE_LINK: return "link";
    case FUSE_OPEN: return "open";
    case FUSE_READ: return "read";
    case FUSE_WRITE: return "write";
    case FUSE_STATFS: return "statfs";
    case FUSE_RELEASE: return "release";
    case FUSE_FSYNC: return "fsync";
    case FUSE_SETXATTR: return "setxattr";
    case FUSE_GETXATTR: return "getxattr";
    case FUSE_LISTXATTR: return "listxattr";
    case FUSE_REMOVEXATTR: return "removexattr";
    case FUSE_FLUSH: return "flush";
    case FUSE_INIT: return "init";
    case FUSE_OPENDIR: return "opendir";
    case FUSE_READDIR: return "readdir";
    case FUSE_RELEASEDIR: return "releasedir";
    case FUSE_FSYNCDIR: return "fsyncdir";
    case FUSE_GETLK: return "getlk";
    case FUSE_SETLK: return "setlk";
    case FUSE_SETLKW: return "setlkw";
    case FUSE_ACCESS: return "access";
    case FUSE_CREATE: return "create";
    case FUSE_INTERRUPT: return "interrupt";
    case FUSE_BMAP: return "bmap";
    case FUSE_DESTROY: return "destroy";
    case FUSE_IOCTL: return "ioctl";
    case FUSE_POLL: return "poll";
    case FUSE_NOTIFY_REPLY: return "notify_reply";
    case FUSE_BATCH_FORGET: return "batch_forget";
    case FUSE_FALLOCATE: return "fallocate";
    case FUSE_READDIRPLUS: return "readdirplus";
    case FUSE_RENAME2: return "rename2";
    case FUSE_LSEEK: return "lseek";
    case FUSE_COPY_FILE_RANGE: return "copy_file_range";
    default: return nullptr;
  }
}

}  // namespace

const std::vector<double>& LatencyBucketBounds() {
  static const std::vector<double> bounds = {0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                             0.0025,  0.005,   0.01,   0.05,    0.25,   1.0};
  return bounds;
}

ServerPool::Impl::~Impl() {
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) log::Error("cannot wake the FUSE server threads");
  }
  for (std::thread& t : workers_) t.join();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status ServerPool::Impl::Start(unsigned threads) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Status::FromErrno("cannot create the FUSE server's epoll set", errno);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Status::FromErrno("cannot create the FUSE server's eventfd", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: once written, every thread sees it
  ev.data.u64 = kWakeToken;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return Status::FromErrno("cannot watch the FUSE server's eventfd", errno);
  }
  for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  return Status::Ok();
}

Result<std::shared_ptr<ServerPool::Impl::Channel>> ServerPool::Impl::Add(fuse_session* session) {
  auto channel = std::make_shared<Channel>();
  channel->session = session;
  channel->fd = fuse_session_fd(session);
  int flags = fcntl(channel->fd, F_GETFL);
  if (flags < 0 || fcntl(channel->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Status::FromErrno("cannot make the FUSE channel non-blocking", errno);
  }
  std::lock_guard lock(mu_);
  channel->id = next_id_++;
  epoll_event ev{};
  // One-shot: the thread that takes a request re-arms the channel once it has read it, so
  // several threads serve one volume while no two read the same readiness.
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = channel->id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, channel->fd, &ev) != 0) {
    return Status::FromErrno("cannot watch the FUSE channel", errno);
  }
  channels_[channel->id] = channel;
  return channel;
}

void ServerPool::Impl::Remove(const std::shared_ptr<Channel>& channel) {
  std::unique_lock lock(mu_);
  if (channels_.erase(channel->id) != 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, channel->fd, nullptr);
  }
  channel_idle_.wait(lock, [&] { return channel->in_flight == 0; });
}

void ServerPool::Impl::Work() {
  fuse_buf buf{};  // libfuse allocates the request buffer on first use; reused after
  while (true) {
    epoll_event ev{};
    int n = epoll_wait(epoll_fd_, &ev, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log::Error("FUSE server thread: epoll_wait: {}", std::strerror(errno));
      break;
    }
    if (n == 0) continue;
    if (ev.data.u64 == kWakeToken) break;
    std::shared_ptr<Channel> channel;
    {
      std::lock_guard lock(mu_);
      auto it = channels_.find(ev.data.u64);
      if (it == channels_.end()) continue;  // removed after the event was queued
      channel = it->second;
      ++channel->in_flight;
    }
    int res = fuse_session_receive_buf(channel->session, &buf);
    if (res == 0 || fuse_session_exited(channel->session)) {
      // ENODEV: the mount is gone (umount from outside, or an abort); libfuse marked the
      // session exited. The channel stays disarmed.
      channel->ended = true;
    } else {
      epoll_event rearm{};
      rearm.events = EPOLLIN | EPOLLONESHOT;
      rearm.data.u64 = channel->id;
      {
        std::lock_guard lock(mu_);
        if (channels_.count(channel->id)) epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, channel->fd, &rearm);
      }
      if (res > 0) {
        uint32_t opcode = 0;
        if (!(buf.flags & FUSE_BUF_IS_FD) && static_cast<size_t>(res) >= sizeof(fuse_in_header)) {
          opcode = static_cast<const fuse_in_header*>(buf.mem)->opcode;
        }
        auto start = std::chrono::steady_clock::now();
        fuse_session_process_buf(channel->session, &buf);
        auto elapsed = std::chrono::steady_clock::now() - start;
        Record(opcode, std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
      } else if (res != -EAGAIN && res != -EINTR) {
        log::Warn("FUSE channel {}: cannot read a request: {}", channel->id, std::strerror(-res));
      }
    }
    {
      std::lock_guard lock(mu_);
      --channel->in_flight;
    }
    channel_idle_.notify_all();
  }
  std::free(buf.mem);
}

void ServerPool::Impl::Record(uint32_t opcode, uint64_t nanoseconds) {
  if (opcode >= kOpcodes) return;
  OpCounters& c = ops_[opcode];
  c.count.fetch_add(1, std::memory_order_relaxed);
  c.nanoseconds.fetch_add(nanoseconds, std::memory_order_relaxed);
  const std::vector<double>& bounds = LatencyBucketBounds();
  double seconds = static_cast<double>(nanoseconds) / 1e9;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (seconds <= bounds[i]) {
      c.buckets[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
}

void ServerPool::Impl::WaitUntilNoRequestInProgress() const {
  std::unique_lock lock(mu_);
  channel_idle_.wait(lock, [&] {
    return std::all_of(channels_.begin(), channels_.end(),
                       [](const auto& entry) { return entry.second->in_flight == 0; });
  });
}

std::vector<OperationStats> ServerPool::Impl::Stats() const {
  std::vector<OperationStats> out;
  for (uint32_t opcode = 0; opcode < kOpcodes; ++opcode) {
    const OpCounters& c = ops_[opcode];
    uint64_t count = c.count.load(std::memory_order_relaxed);
    const char* name = OperationName(opcode);
    if (count == 0 || name == nullptr) continue;
    OperationStats s;
    s.operation = name;
    s.count = count;
    s.total_seconds = static_cast<double>(c.nanoseconds.load(std::memory_order_relaxed)) / 1e9;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LatencyBucketBounds().size(); ++i) {
      cumulative += c.buckets[i].load(std::memory_order_relaxed);
      s.bucket_counts.push_back(cumulative);
    }
    out.push_back(std::move(s));
  }
  return out;
}

ServerPool::ServerPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServerPool::~ServerPool() = default;

Result<std::unique_ptr<ServerPool>> ServerPool::Create(unsigned threads) {
  if (threads == 0) return Status::Invalid("a FUSE server pool needs at least one thread");
  auto impl = std::make_unique<Impl>();
  Status s = impl->Start(threads);
  if (!s.ok()) return s;
  return std::unique_ptr<ServerPool>(new ServerPool(std::move(impl)));
}

std::vector<OperationStats> ServerPool::Stats() const { return impl_->Stats(); }
void ServerPool::WaitUntilNoRequestInProgress() const { impl_->WaitUntilNoRequestInProgress(); }
unsigned ServerPool::threads() const { return impl_->threads(); }

}  // namespace claimfs::fs
