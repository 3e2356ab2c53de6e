// Daemon: per-volume statistics, who uses a volume, and the daemon's Prometheus metrics.
#include "daemon.h"

#include <cstdio>
#include <sstream>

namespace claimfs::claimfsd {
namespace {

std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::vector<api::VolumeStats> Daemon::Stats() {
  std::vector<api::VolumeStats> out;
  for (const mount::MountedVolume& m : volumes_->List()) {
    api::VolumeStats s;
    s.volume = m.volume;
    s.claim = m.claim;
    s.mount_path = m.mount_path;
    s.capacity_bytes = m.usage.capacity_bytes.value_or(0);
    s.used_bytes = m.usage.used_bytes;
    s.available_bytes = s.capacity_bytes > s.used_bytes ? s.capacity_bytes - s.used_bytes : 0;
    s.used_inodes = m.usage.used_inodes;
    s.inode_limit = m.usage.inode_limit;
    s.quota_rejections = m.usage.quota_rejections;
    s.read_only = m.read_only;
    s.mode = m.usage.mode;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<api::VolumeUser> Daemon::Users(const std::string& claim_key) {
  std::vector<api::VolumeUser> users;
  for (const mount::MountedVolume& m : volumes_->List()) {
    if (m.claim != claim_key || m.device == 0) continue;
    mount::VolumeUsers found = scanner_.Scan({{m.device, m.mount_path}}, volumes_->ServerPids())[m.device];
    auto add = [&](const char* kind, pid_t pid) {
      api::VolumeUser user{kind, static_cast<int>(pid), found.commands[pid], "", ""};
      if (auto c = found.containers.find(pid); c != found.containers.end()) {
        user.container = c->second;
      }
      users.push_back(std::move(user));
    };
    for (pid_t pid : found.open_files) add("Process", pid);
    for (pid_t pid : found.other_namespaces) add("MountNamespace", pid);
    for (const std::string& path : found.bind_mounts) {
      users.push_back(api::VolumeUser{"BindMount", 0, "", "", path});
    }
  }
  return users;
}

std::string Daemon::DaemonMetrics() {
  std::ostringstream out;
  std::vector<fs::OperationStats> ops = volumes_->OperationStats();
  out << "# HELP claimfs_fuse_requests_total FUSE requests served, by operation, over all volumes.\n"
      << "# TYPE claimfs_fuse_requests_total counter\n";
  for (const fs::OperationStats& op : ops) {
    out << "claimfs_fuse_requests_total{operation=\"" << EscapeLabel(op.operation) << "\"} "
        << op.count << "\n";
  }
  out << "# HELP claimfs_fuse_request_duration_seconds Time to handle and answer a FUSE request.\n"
      << "# TYPE claimfs_fuse_request_duration_seconds histogram\n";
  const std::vector<double>& bounds = fs::LatencyBucketBounds();
  for (const fs::OperationStats& op : ops) {
    std::string label = "operation=\"" + EscapeLabel(op.operation) + "\"";
    for (size_t i = 0; i < bounds.size() && i < op.bucket_counts.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof le, "%g", bounds[i]);
      out << "claimfs_fuse_request_duration_seconds_bucket{" << label << ",le=\"" << le << "\"} "
          << op.bucket_counts[i] << "\n";
    }
    out << "claimfs_fuse_request_duration_seconds_bucket{" << label << ",le=\"+Inf\"} " << op.count
        << "\n";
    out << "claimfs_fuse_request_duration_seconds_sum{" << label << "} " << op.total_seconds << "\n";
    out << "claimfs_fuse_request_duration_seconds_count{" << label << "} " << op.count << "\n";
  }
  size_t leases = 0;
  {
    std::lock_guard lock(leases_mu_);
    leases = leases_.size();
  }
  out << "# HELP claimfs_mounted_volumes Volumes mounted and served now.\n"
      << "# TYPE claimfs_mounted_volumes gauge\n"
      << "claimfs_mounted_volumes " << volumes_->MountedVolumes().size() << "\n"
      << "# HELP claimfs_fuse_threads Threads serving FUSE requests, shared by every volume.\n"
      << "# TYPE claimfs_fuse_threads gauge\n"
      << "claimfs_fuse_threads " << volumes_->threads() << "\n"
      << "# HELP claimfs_leases Leases held on claims (claimctl use, container engines).\n"
      << "# TYPE claimfs_leases gauge\n"
      << "claimfs_leases " << leases << "\n"
      << "# HELP claimfs_reconcile_passes_total Control loop passes.\n"
      << "# TYPE claimfs_reconcile_passes_total counter\n"
      << "claimfs_reconcile_passes_total " << passes_.load() << "\n"
      << "# HELP claimfs_failed_actions_total Provision, mount, expand and reclaim actions that failed.\n"
      << "# TYPE claimfs_failed_actions_total counter\n"
      << "claimfs_failed_actions_total " << failed_actions_.load() << "\n";
  return out.str();
}

}  // namespace claimfs::claimfsd
