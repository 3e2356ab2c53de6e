// The ServerPool's machinery, shared with volume.cc, which adds and removes its sessions.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "claimfs/fs/server_pool.h"

namespace claimfs::fs {

class ServerPool::Impl {
 public:
  // One volume's FUSE channel as the pool serves it.
  struct Channel {
    fuse_session* session = nullptr;
    int fd = -1;
    uint64_t id = 0;
    int in_flight = 0;               // threads inside this channel; guarded by Impl::mu
    std::atomic<bool> ended{false};  // the kernel side went away (unmounted from outside)
  };

  Impl() = default;
  ~Impl();
  Status Start(unsigned threads);

  // Serves `session` from now on; its fd is made non-blocking.
  Result<std::shared_ptr<Channel>> Add(fuse_session* session);
  // Stops serving the channel and returns once no thread is inside it any more.
  void Remove(const std::shared_ptr<Channel>& channel);

  std::vector<OperationStats> Stats() const;
  void WaitUntilNoRequestInProgress() const;
  unsigned threads() const { return static_cast<unsigned>(workers_.size()); }

 private:
  static constexpr size_t kOpcodes = 64;
  struct OpCounters {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> nanoseconds{0};
    std::array<std::atomic<uint64_t>, 12> buckets{};  // per LatencyBucketBounds(), not cumulative
  };

  void Work();
  void Record(uint32_t opcode, uint64_t nanoseconds);

  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd, readable once the pool stops; never disarmed
  std::vector<std::thread> workers_;

  mutable std::mutex mu_;  // a leaf lock: nothing else is taken while it is held
  mutable std::condition_variable channel_idle_;
  std::unordered_map<uint64_t, std::shared_ptr<Channel>> channels_;  // guarded by mu_
  uint64_t next_id_ = 1;                                             // guarded by mu_

  std::array<OpCounters, kOpcodes> ops_;
};

}  // namespace claimfs::fs
