// ServerPool: one fixed set of threads that serves the FUSE requests of many volumes, so a daemon
// with hundreds of mounted volumes runs a bounded number of threads (a volume served on its own
// runs a loop and workers of its own instead; see Volume::Start()).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::fs {

// Request counts and latency per FUSE operation, over every volume of a pool.
struct OperationStats {
  std::string operation;  // libfuse's name: "lookup", "write", ...
  uint64_t count = 0;
  double total_seconds = 0;  // summed handler time, reply included
  std::vector<uint64_t> bucket_counts;  // cumulative, one per LatencyBucketBounds() entry
};

// Upper bounds (seconds) of the latency histogram buckets, Prometheus style (+Inf implied).
const std::vector<double>& LatencyBucketBounds();

class ServerPool {
 public:
  // Starts `threads` (≥ 1) serving threads; they wait until volumes are added.
  static Result<std::unique_ptr<ServerPool>> Create(unsigned threads);
  // Stops the threads. Every volume served by the pool must have been stopped first.
  ~ServerPool();
  ServerPool(const ServerPool&) = delete;
  ServerPool& operator=(const ServerPool&) = delete;

  // Operations seen so far, in opcode order; operations never requested are left out.
  std::vector<OperationStats> Stats() const;
  // Returns once no thread is inside a request. A request is counted in Stats() just after its
  // reply, which the caller may see first: wait here for a reading that includes it.
  void WaitUntilNoRequestInProgress() const;
  unsigned threads() const;

  class Impl;
  Impl* impl() { return impl_.get(); }

 private:
  explicit ServerPool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace claimfs::fs
