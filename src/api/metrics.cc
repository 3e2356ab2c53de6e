#include "metrics.h"

#include <array>

namespace claimfs::api::internal {
namespace {

void Header(std::string* out, std::string_view name, std::string_view help, std::string_view type) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

void Sample(std::string* out, std::string_view name,
            const std::vector<std::pair<std::string_view, std::string_view>>& labels,
            uint64_t value) {
  *out += name;
  if (!labels.empty()) {
    *out += '{';
    bool first = true;
    for (const auto& [label, label_value] : labels) {
      if (!first) *out += ',';
      first = false;
      *out += label;
      *out += "=\"";
      *out += EscapeLabelValue(label_value);
      *out += '"';
    }
    *out += '}';
  }
  *out += ' ';
  *out += std::to_string(value);
  *out += '\n';
}

struct ClaimLabels {
  std::string namespace_;
  std::string name;
};

ClaimLabels SplitClaim(const std::string& key) {
  size_t slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void RequestCounter::Add(std::string_view method, int code) {
  static constexpr std::array<std::string_view, 7> kKnown = {"GET",   "HEAD",   "POST",   "PUT",
                                                             "PATCH", "DELETE", "OPTIONS"};
  std::string label = "OTHER";
  for (std::string_view known : kKnown) {
    if (method == known) label = std::string(known);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[{std::move(label), code}];
}

std::map<std::pair<std::string, int>, uint64_t> RequestCounter::Counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

std::string RenderMetrics(const std::vector<VolumeStats>& volumes, const store::Snapshot* snapshot,
                          const RequestCounter& requests, std::string_view daemon_metrics) {
  std::string out;
  // Kubelet reports volumes by the claim a pod mounts; a volume without a claim (none is
  // mounted, but Stats() may say otherwise) has no series of its own.
  std::vector<std::pair<ClaimLabels, const VolumeStats*>> claimed;
  for (const VolumeStats& volume : volumes) {
    if (!volume.claim.empty()) claimed.emplace_back(SplitClaim(volume.claim), &volume);
  }
  struct Gauge {
    const char* name;
    const char* help;
    const char* type;
    bool (*has)(const VolumeStats&);
    uint64_t (*value)(const VolumeStats&);
  };
  const Gauge gauges[] = {
      {"kubelet_volume_stats_capacity_bytes", "Capacity in bytes of the volume", "gauge",
       [](const VolumeStats&) { return true; },
       [](const VolumeStats& v) { return v.capacity_bytes; }},
      {"kubelet_volume_stats_available_bytes", "Number of available bytes in the volume", "gauge",
       [](const VolumeStats&) { return true; },
       [](const VolumeStats& v) { return v.available_bytes; }},
      {"kubelet_volume_stats_used_bytes", "Number of used bytes in the volume", "gauge",
       [](const VolumeStats&) { return true; }, [](const VolumeStats& v) { return v.used_bytes; }},
      {"kubelet_volume_stats_inodes", "Maximum number of inodes in the volume", "gauge",
       [](const VolumeStats& v) { return v.inode_limit.has_value(); },
       [](const VolumeStats& v) { return v.inode_limit.value_or(0); }},
      {"kubelet_volume_stats_inodes_free", "Number of free inodes in the volume", "gauge",
       [](const VolumeStats& v) { return v.inode_limit.has_value(); },
       [](const VolumeStats& v) {
         uint64_t limit = v.inode_limit.value_or(0);
         return limit > v.used_inodes ? limit - v.used_inodes : 0;
       }},
      {"kubelet_volume_stats_inodes_used", "Number of used inodes in the volume", "gauge",
       [](const VolumeStats&) { return true; }, [](const VolumeStats& v) { return v.used_inodes; }},
      {"claimfs_volume_quota_rejections_total",
       "Operations refused because they would take the volume past its capacity", "counter",
       [](const VolumeStats&) { return true; },
       [](const VolumeStats& v) { return v.quota_rejections; }},
  };
  for (const Gauge& gauge : gauges) {
    Header(&out, gauge.name, gauge.help, gauge.type);
    for (const auto& [labels, volume] : claimed) {
      if (!gauge.has(*volume)) continue;
      Sample(&out, gauge.name,
             {{"namespace", labels.namespace_}, {"persistentvolumeclaim", labels.name}},
             gauge.value(*volume));
    }
  }

  // One series per mounted claim: mode "kernel" (the file system enforces the capacity; I/O in
  // FUSE passthrough), "accounted" (claimfs counts every allocation) or "unlimited"; `detail`
  // says which limit, or why the kernel could not enforce it.
  Header(&out, "claimfs_volume_mode",
         "How the volume's capacity is enforced (kernel or accounted); quota rejections of a "
         "kernel-mode volume count only the operations claimfs served, not passthrough writes "
         "the kernel refused",
         "gauge");
  for (const auto& [labels, volume] : claimed) {
    if (volume->mode.empty()) continue;
    std::string_view mode = volume->mode;
    std::string_view detail;
    if (size_t paren = mode.find(" ("); paren != std::string_view::npos) {
      detail = mode.substr(paren + 2);
      if (!detail.empty() && detail.back() == ')') detail.remove_suffix(1);
      mode = mode.substr(0, paren);
    }
    Sample(&out, "claimfs_volume_mode",
           {{"namespace", labels.namespace_},
            {"persistentvolumeclaim", labels.name},
            {"mode", mode},
            {"detail", detail}},
           1);
  }
  if (snapshot) {
    using model::ClaimPhase;
    using model::VolumePhase;
    Header(&out, "claimfs_persistentvolumes", "PersistentVolumes by phase", "gauge");
    for (VolumePhase phase : {VolumePhase::kPending, VolumePhase::kAvailable, VolumePhase::kBound,
                              VolumePhase::kReleased, VolumePhase::kFailed}) {
      uint64_t count = 0;
      for (const model::PersistentVolume& pv : snapshot->volumes) count += pv.status.phase == phase;
      Sample(&out, "claimfs_persistentvolumes", {{"phase", model::ToString(phase)}}, count);
    }
    Header(&out, "claimfs_persistentvolumeclaims", "PersistentVolumeClaims by phase", "gauge");
    for (ClaimPhase phase : {ClaimPhase::kPending, ClaimPhase::kBound, ClaimPhase::kLost}) {
      uint64_t count = 0;
      for (const model::PersistentVolumeClaim& pvc : snapshot->claims) {
        count += pvc.status.phase == phase;
      }
      Sample(&out, "claimfs_persistentvolumeclaims", {{"phase", model::ToString(phase)}}, count);
    }
  }

  Header(&out, "claimfs_api_requests_total", "API requests answered, by method and HTTP code",
         "counter");
  for (const auto& [key, count] : requests.Counts()) {
    std::string code = std::to_string(key.second);
    Sample(&out, "claimfs_api_requests_total", {{"method", key.first}, {"code", code}}, count);
  }

  out += daemon_metrics;
  if (!daemon_metrics.empty() && daemon_metrics.back() != '\n') out += '\n';
  return out;
}

}  // namespace claimfs::api::internal
