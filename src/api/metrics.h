// /metrics: Prometheus text exposition format 0.0.4 for volume usage (in kubelet's
// kubelet_volume_stats_* shapes), object counts by phase and API requests.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "claimfs/api/api_server.h"
#include "claimfs/store/state_store.h"

namespace claimfs::api::internal {

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// A label value escaped per the text format: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);

// claimfs_api_requests_total. Thread-safe.
class RequestCounter {
 public:
  // Methods outside the HTTP verbs the API knows count as "OTHER".
  void Add(std::string_view method, int code);
  // (method, code) -> count, sorted.
  std::map<std::pair<std::string, int>, uint64_t> Counts() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> counts_;  // GUARDED_BY(mu_)
};

// The whole exposition. `snapshot` null leaves out the object counts (the store could not be
// read). `daemon_metrics` is appended verbatim.
std::string RenderMetrics(const std::vector<VolumeStats>& volumes, const store::Snapshot* snapshot,
                          const RequestCounter& requests, std::string_view daemon_metrics);

}  // namespace claimfs::api::internal
