// kubectl's printers (pkg/printers/internalversion) and describers (pkg/describe), rewritten for
// claimfs' model objects.
#include "claimctl/printers.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "claimctl/tabwriter.h"

namespace claimfs::claimctl {
namespace {

using Rows = std::vector<std::vector<std::string>>;

std::string QuantityText(const std::optional<model::Quantity>& q) { return q ? q->ToString() : ""; }

std::string VolumeModeText(const std::optional<model::VolumeMode>& mode) {
  return mode ? model::ToString(*mode) : "<unset>";
}

std::string NameCell(const char* singular, const std::string& name, const TableOptions& options) {
  return options.with_kind ? std::string(singular) + "/" + name : name;
}

std::string UsedCell(const VolumeStats* stats) {
  return stats != nullptr ? HumanBytes(stats->used_bytes) : "";
}

std::string MountCell(const VolumeStats* stats) {
  return stats != nullptr ? stats->mount_path : "";
}

// Go's fmt %v of a []string: "[a b]".
std::string GoStringSlice(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += " ";
    out += items[i];
  }
  return out + "]";
}

// labels.FormatLabels: "k=v,k2=v2" sorted, "<none>" when empty.
std::string FormatLabels(const std::map<std::string, std::string>& labels) {
  if (labels.empty()) return "<none>";
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ",";
    out += k + "=" + v;
  }
  return out;
}

constexpr char kLastApplied[] = "kubectl.kubernetes.io/last-applied-configuration";
constexpr size_t kMaxAnnotationLen = 140;

// kubectl's printLabelsMultiline.
void WriteLabels(TabWriter* w, const std::map<std::string, std::string>& labels) {
  w->Write("Labels:\t");
  if (labels.empty()) {
    w->Write("<none>\n");
    return;
  }
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) w->Write("\t");
    first = false;
    w->Write(k + "=" + v + "\n");
  }
}

// kubectl's printAnnotationsMultiline: last-applied-configuration is left out, long or multi-line
// values go on their own lines, shortened.
void WriteAnnotations(TabWriter* w, const std::map<std::string, std::string>& annotations) {
  w->Write("Annotations:\t");
  bool first = true;
  for (const auto& [key, raw] : annotations) {
    if (key == kLastApplied) continue;
    if (!first) w->Write("\t");
    first = false;
    std::string value = raw;
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (value.size() + key.size() + 2 > kMaxAnnotationLen ||
        value.find('\n') != std::string::npos) {
      w->Write(key + ":\n");
      size_t start = 0;
      while (true) {
        size_t end = value.find('\n', start);
        std::string line = value.substr(start, end == std::string::npos ? end : end - start);
        if (line.size() > kMaxAnnotationLen - 2) {
          line = line.substr(0, kMaxAnnotationLen - 2 - 3) + "...";
        }
        w->Write("\t  " + line + "\n");
        if (end == std::string::npos) break;
        start = end + 1;
      }
    } else {
      w->Write(key + ": " + value + "\n");
    }
  }
  if (first) w->Write("<none>\n");
}

void WriteStatus(TabWriter* w, const model::ObjectMeta& meta, const char* phase,
                 Clock::time_point now) {
  if (meta.deletion_timestamp) {
    w->Write("Status:\tTerminating (lasts " + Age(*meta.deletion_timestamp, now) + ")\n");
  } else {
    w->Write(std::string("Status:\t") + phase + "\n");
  }
}

// kubectl's DescribeEvents: flushes the page so far, then the events table, oldest first.
void WriteEvents(TabWriter* w, std::string* out, const std::vector<model::Event>* events,
                 Clock::time_point now) {
  if (events == nullptr) return;
  if (events->empty()) {
    w->Write("Events:\t<none>\n");
    return;
  }
  *out += w->Flush();
  std::vector<model::Event> sorted = *events;
  std::stable_sort(sorted.begin(), sorted.end(), [](const model::Event& a, const model::Event& b) {
    std::optional<Clock::time_point> ta = ParseTimestamp(a.last_timestamp);
    std::optional<Clock::time_point> tb = ParseTimestamp(b.last_timestamp);
    return ta.value_or(Clock::time_point()) < tb.value_or(Clock::time_point());
  });
  w->Write("Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
  w->Write("  ----\t------\t----\t----\t-------\n");
  for (const model::Event& e : sorted) {
    std::string interval = Age(e.first_timestamp, now);
    if (e.count > 1) {
      interval =
          Age(e.last_timestamp, now) + " (x" + std::to_string(e.count) + " over " + interval + ")";
    }
    std::string message = e.message;
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) {
      message.pop_back();
    }
    size_t lead = 0;
    while (lead < message.size() && std::isspace(static_cast<unsigned char>(message[lead]))) {
      ++lead;
    }
    w->Write("  " + e.type + "\t" + e.reason + "\t" + interval + "\t" + e.source_component + "\t" +
             message.substr(lead) + "\n");
  }
}

std::string FormatRfc1123Z(const std::string& timestamp) {
  std::optional<Clock::time_point> t = ParseTimestamp(timestamp);
  if (!t) return "Mon, 01 Jan 0001 00:00:00 +0000";
  std::time_t tt = Clock::to_time_t(*t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

}  // namespace

Result<std::vector<VolumeStats>> VolumeStatsFromJson(const nlohmann::json& json) {
  if (!json.is_object() || !json.contains("items") || !json["items"].is_array()) {
    return Status::Invalid("volumestats: the response has no \"items\" list");
  }
  std::vector<VolumeStats> out;
  size_t index = 0;
  for (const nlohmann::json& item : json["items"]) {
    auto field_error = [&](const char* field) {
      return Status::Invalid("volumestats: items[" + std::to_string(index) + "]." + field +
                             ": missing or of the wrong type");
    };
    if (!item.is_object()) return field_error("");
    VolumeStats s;
    auto str = [&](const char* field, std::string* dst, bool required) {
      auto it = item.find(field);
      if (it == item.end()) return !required;
      if (!it->is_string()) return false;
      *dst = it->get<std::string>();
      return true;
    };
    auto num = [&](const char* field, int64_t* dst, bool required) {
      auto it = item.find(field);
      if (it == item.end() || it->is_null()) return !required;
      if (!it->is_number_integer()) return false;
      *dst = it->get<int64_t>();
      return true;
    };
    if (!str("volume", &s.volume, true)) return field_error("volume");
    if (!str("claim", &s.claim, false)) return field_error("claim");
    if (!str("mountPath", &s.mount_path, false)) return field_error("mountPath");
    if (!str("mode", &s.mode, false)) return field_error("mode");
    if (!num("capacityBytes", &s.capacity_bytes, false)) return field_error("capacityBytes");
    if (!num("usedBytes", &s.used_bytes, false)) return field_error("usedBytes");
    if (!num("availableBytes", &s.available_bytes, false)) return field_error("availableBytes");
    if (!num("usedInodes", &s.used_inodes, false)) return field_error("usedInodes");
    if (!num("quotaRejections", &s.quota_rejections, false)) {
      return field_error("quotaRejections");
    }
    int64_t limit = 0;
    if (item.contains("inodeLimit") && !item["inodeLimit"].is_null()) {
      if (!num("inodeLimit", &limit, true)) return field_error("inodeLimit");
      s.inode_limit = limit;
    }
    if (item.contains("readOnly")) {
      if (!item["readOnly"].is_boolean()) return field_error("readOnly");
      s.read_only = item["readOnly"].get<bool>();
    }
    out.push_back(std::move(s));
    ++index;
  }
  return out;
}

const VolumeStats* FindStatsByVolume(const std::vector<VolumeStats>& stats,
                                     const std::string& volume) {
  for (const VolumeStats& s : stats) {
    if (s.volume == volume) return &s;
  }
  return nullptr;
}

const VolumeStats* FindStatsByClaim(const std::vector<VolumeStats>& stats, const std::string& ns,
                                    const std::string& name) {
  const std::string key = ns + "/" + name;
  for (const VolumeStats& s : stats) {
    if (s.claim == key) return &s;
  }
  return nullptr;
}

std::vector<std::vector<std::string>> PersistentVolumeRows(
    const std::vector<model::PersistentVolume>& pvs, const TableOptions& options) {
  Rows rows;
  if (options.headers) {
    rows.push_back({"NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
                    "STORAGECLASS", "REASON", "AGE"});
    if (options.wide) {
      for (const char* h : {"VOLUMEMODE", "USED", "MOUNT", "MODE"}) rows.back().push_back(h);
    }
  }
  for (const model::PersistentVolume& pv : pvs) {
    std::string claim;
    if (pv.spec.claim_ref) claim = pv.spec.claim_ref->namespace_ + "/" + pv.spec.claim_ref->name;
    std::string phase =
        pv.metadata.deletion_timestamp ? "Terminating" : model::ToString(pv.status.phase);
    rows.push_back({NameCell("persistentvolume", pv.metadata.name, options),
                    QuantityText(pv.spec.capacity), AccessModesText(pv.spec.access_modes),
                    pv.spec.reclaim_policy ? model::ToString(*pv.spec.reclaim_policy) : "", phase,
                    claim, pv.spec.storage_class_name, pv.status.reason,
                    Age(pv.metadata.creation_timestamp, options.now)});
    if (options.wide) {
      const VolumeStats* stats =
          options.stats ? FindStatsByVolume(*options.stats, pv.metadata.name) : nullptr;
      rows.back().push_back(VolumeModeText(pv.spec.volume_mode));
      rows.back().push_back(UsedCell(stats));
      rows.back().push_back(MountCell(stats));
      std::string mode = stats != nullptr ? stats->mode : "";
      rows.back().push_back(mode.substr(0, mode.find(' ')));
    }
  }
  return rows;
}

std::vector<std::vector<std::string>> PersistentVolumeClaimRows(
    const std::vector<model::PersistentVolumeClaim>& pvcs, const TableOptions& options) {
  Rows rows;
  if (options.headers) {
    rows.push_back({"NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"});
    if (options.with_namespace) rows.back().insert(rows.back().begin(), "NAMESPACE");
    if (options.wide) {
      for (const char* h : {"VOLUMEMODE", "USED", "MOUNT"}) rows.back().push_back(h);
    }
  }
  for (const model::PersistentVolumeClaim& pvc : pvcs) {
    std::string capacity;
    std::string modes;
    if (!pvc.spec.volume_name.empty()) {
      capacity = QuantityText(pvc.status.capacity);
      modes = AccessModesText(pvc.status.access_modes);
    }
    std::string phase =
        pvc.metadata.deletion_timestamp ? "Terminating" : model::ToString(pvc.status.phase);
    rows.push_back({NameCell("persistentvolumeclaim", pvc.metadata.name, options), phase,
                    pvc.spec.volume_name, capacity, modes, pvc.spec.storage_class_name.value_or(""),
                    Age(pvc.metadata.creation_timestamp, options.now)});
    if (options.with_namespace) rows.back().insert(rows.back().begin(), pvc.metadata.namespace_);
    if (options.wide) {
      const VolumeStats* stats =
          options.stats
              ? FindStatsByClaim(*options.stats, pvc.metadata.namespace_, pvc.metadata.name)
              : nullptr;
      rows.back().push_back(VolumeModeText(pvc.spec.volume_mode));
      rows.back().push_back(UsedCell(stats));
      rows.back().push_back(MountCell(stats));
    }
  }
  return rows;
}

std::vector<std::vector<std::string>> StorageClassRows(
    const std::vector<model::StorageClass>& classes, const TableOptions& options) {
  Rows rows;
  if (options.headers) {
    rows.push_back({"NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                    "ALLOWVOLUMEEXPANSION", "AGE"});
  }
  for (const model::StorageClass& sc : classes) {
    std::string name = NameCell("storageclass.storage.k8s.io", sc.metadata.name, options);
    auto it = sc.metadata.annotations.find(model::kDefaultClassAnnotation);
    if (it != sc.metadata.annotations.end() && it->second == "true") name += " (default)";
    rows.push_back(
        {name, sc.provisioner,
         model::ToString(sc.reclaim_policy.value_or(model::ReclaimPolicy::kDelete)),
         model::ToString(sc.volume_binding_mode.value_or(model::VolumeBindingMode::kImmediate)),
         sc.allow_volume_expansion.value_or(false) ? "true" : "false",
         Age(sc.metadata.creation_timestamp, options.now)});
  }
  return rows;
}

std::string PrintPersistentVolumes(const std::vector<model::PersistentVolume>& pvs,
                                   const TableOptions& options) {
  return FormatTable(PersistentVolumeRows(pvs, options));
}

std::string PrintPersistentVolumeClaims(const std::vector<model::PersistentVolumeClaim>& pvcs,
                                        const TableOptions& options) {
  return FormatTable(PersistentVolumeClaimRows(pvcs, options));
}

std::string PrintStorageClasses(const std::vector<model::StorageClass>& classes,
                                const TableOptions& options) {
  return FormatTable(StorageClassRows(classes, options));
}

std::string DescribePersistentVolume(const model::PersistentVolume& pv,
                                     const std::vector<model::Event>* events, Clock::time_point now,
                                     const VolumeStats* stats) {
  TabWriter w = TabWriter::ForDescribe();
  std::string out;
  w.Write("Name:\t" + pv.metadata.name + "\n");
  WriteLabels(&w, pv.metadata.labels);
  WriteAnnotations(&w, pv.metadata.annotations);
  w.Write("Finalizers:\t" + GoStringSlice(pv.metadata.finalizers) + "\n");
  w.Write("StorageClass:\t" + pv.spec.storage_class_name + "\n");
  WriteStatus(&w, pv.metadata, model::ToString(pv.status.phase), now);
  std::string claim;
  if (pv.spec.claim_ref) claim = pv.spec.claim_ref->namespace_ + "/" + pv.spec.claim_ref->name;
  w.Write("Claim:\t" + claim + "\n");
  w.Write(std::string("Reclaim Policy:\t") +
          (pv.spec.reclaim_policy ? model::ToString(*pv.spec.reclaim_policy) : "") + "\n");
  w.Write("Access Modes:\t" + AccessModesText(pv.spec.access_modes) + "\n");
  if (pv.spec.volume_mode) {
    w.Write(std::string("VolumeMode:\t") + model::ToString(*pv.spec.volume_mode) + "\n");
  }
  w.Write("Capacity:\t" + QuantityText(pv.spec.capacity) + "\n");
  if (stats != nullptr) {
    w.Write("Used:\t" + HumanBytes(stats->used_bytes) + "\n");
    w.Write("Mount:\t" + stats->mount_path + "\n");
    if (!stats->mode.empty()) w.Write("Mode:\t" + stats->mode + "\n");
  }
  w.Write("Node Affinity:\t<none>\n");
  w.Write("Message:\t" + pv.status.message + "\n");
  w.Write("Source:\n");
  if (pv.spec.host_path) {
    w.Write("    Type:\tHostPath (bare host directory volume)\n");
    w.Write("    Path:\t" + pv.spec.host_path->path + "\n");
    w.Write("    HostPathType:\t" + pv.spec.host_path->type.value_or("<none>") + "\n");
  } else if (pv.spec.local) {
    w.Write("    Type:\tLocalVolume (a persistent volume backed by local storage on a node)\n");
    w.Write("    Path:\t" + pv.spec.local->path + "\n");
  }
  WriteEvents(&w, &out, events, now);
  return out + w.Flush();
}

std::string DescribePersistentVolumeClaim(const model::PersistentVolumeClaim& pvc,
                                          const std::vector<model::Event>* events,
                                          Clock::time_point now, const VolumeStats* stats,
                                          const std::vector<std::string>& used_by) {
  TabWriter w = TabWriter::ForDescribe();
  std::string out;
  w.Write("Name:\t" + pvc.metadata.name + "\n");
  w.Write("Namespace:\t" + pvc.metadata.namespace_ + "\n");
  w.Write("StorageClass:\t" + pvc.spec.storage_class_name.value_or("") + "\n");
  WriteStatus(&w, pvc.metadata, model::ToString(pvc.status.phase), now);
  w.Write("Volume:\t" + pvc.spec.volume_name + "\n");
  WriteLabels(&w, pvc.metadata.labels);
  WriteAnnotations(&w, pvc.metadata.annotations);
  w.Write("Finalizers:\t" + GoStringSlice(pvc.metadata.finalizers) + "\n");
  std::string capacity;
  std::string modes;
  if (!pvc.spec.volume_name.empty()) {
    capacity = QuantityText(pvc.status.capacity);
    modes = AccessModesText(pvc.status.access_modes);
  }
  w.Write("Capacity:\t" + capacity + "\n");
  w.Write("Access Modes:\t" + modes + "\n");
  if (pvc.spec.volume_mode) {
    w.Write(std::string("VolumeMode:\t") + model::ToString(*pvc.spec.volume_mode) + "\n");
  }
  if (stats != nullptr) {
    w.Write("Used:\t" + HumanBytes(stats->used_bytes) + "\n");
    w.Write("Mount:\t" + stats->mount_path + "\n");
  }
  if (used_by.empty()) {
    w.Write("Used By:\t<none>\n");
  } else {
    for (size_t i = 0; i < used_by.size(); ++i) {
      w.Write((i == 0 ? "Used By:\t" : "\t") + used_by[i] + "\n");
    }
  }
  if (!pvc.status.conditions.empty()) {
    w.Write("Conditions:\n");
    w.Write("  Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage\n");
    w.Write("  ----\t------\t-----------------\t------------------\t------\t-------\n");
    for (const auto& c : pvc.status.conditions) {
      w.Write("  " + c.type + " \t" + c.status + " \t" + FormatRfc1123Z("") + " \t" +
              FormatRfc1123Z(c.last_transition_time) + " \t" + c.reason + " \t" + c.message + "\n");
    }
  }
  WriteEvents(&w, &out, events, now);
  return out + w.Flush();
}

std::string DescribeStorageClass(const model::StorageClass& sc,
                                 const std::vector<model::Event>* events, Clock::time_point now) {
  TabWriter w = TabWriter::ForDescribe();
  std::string out;
  w.Write("Name:\t" + sc.metadata.name + "\n");
  auto it = sc.metadata.annotations.find(model::kDefaultClassAnnotation);
  bool is_default = it != sc.metadata.annotations.end() && it->second == "true";
  w.Write(std::string("IsDefaultClass:\t") + (is_default ? "Yes" : "No") + "\n");
  w.Write("Annotations:\t" + FormatLabels(sc.metadata.annotations) + "\n");
  w.Write("Provisioner:\t" + sc.provisioner + "\n");
  w.Write("Parameters:\t" + FormatLabels(sc.parameters) + "\n");
  std::string expansion = "<unset>";
  if (sc.allow_volume_expansion) expansion = *sc.allow_volume_expansion ? "True" : "False";
  w.Write("AllowVolumeExpansion:\t" + expansion + "\n");
  if (sc.mount_options.empty()) {
    w.Write("MountOptions:\t<none>\n");
  } else {
    w.Write("MountOptions:\n");
    for (const std::string& option : sc.mount_options) w.Write("  " + option + "\n");
  }
  if (sc.reclaim_policy) {
    w.Write(std::string("ReclaimPolicy:\t") + model::ToString(*sc.reclaim_policy) + "\n");
  }
  if (sc.volume_binding_mode) {
    w.Write(std::string("VolumeBindingMode:\t") + model::ToString(*sc.volume_binding_mode) + "\n");
  }
  WriteEvents(&w, &out, events, now);
  return out + w.Flush();
}

std::string HumanBytes(int64_t bytes) {
  if (bytes < 0) return "-" + HumanBytes(-bytes);
  if (bytes < 1024) return std::to_string(bytes);
  static const char kUnits[] = "KMGTPE";
  // Exact integer arithmetic: df rounds up, one decimal below 10, a whole number from 10 on.
  using u128 = unsigned __int128;
  const u128 value = static_cast<u128>(bytes);
  int unit = 0;
  u128 scale = 1024;
  while (unit < 5 && value >= scale * 1024) {
    scale *= 1024;
    ++unit;
  }
  const u128 tenths = (value * 10 + scale - 1) / scale;  // ceil(value / scale * 10)
  char buf[32];
  if (tenths < 100) {
    std::snprintf(buf, sizeof buf, "%d.%d%c", static_cast<int>(tenths / 10),
                  static_cast<int>(tenths % 10), kUnits[unit]);
    return buf;
  }
  const u128 whole = (value + scale - 1) / scale;
  if (whole >= 1024 && unit < 5) {
    std::snprintf(buf, sizeof buf, "1.0%c", kUnits[unit + 1]);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%llu%c", static_cast<unsigned long long>(whole), kUnits[unit]);
  return buf;
}

std::string FormatDf(const std::vector<VolumeStats>& stats, bool bytes) {
  Rows rows;
  rows.push_back(
      {"NAMESPACE", "CLAIM", "VOLUME", "CAPACITY", "USED", "AVAIL", "USE%", "MOUNTED ON"});
  auto size = [bytes](int64_t n) { return bytes ? std::to_string(n) : HumanBytes(n); };
  for (const VolumeStats& s : stats) {
    std::string ns, claim = s.claim;
    size_t slash = s.claim.find('/');
    if (slash != std::string::npos) {
      ns = s.claim.substr(0, slash);
      claim = s.claim.substr(slash + 1);
    }
    std::string use = "-";
    int64_t total = s.used_bytes + s.available_bytes;
    if (total > 0) {
      // ceil(used * 100 / total) without overflow for large volumes
      long double pct = static_cast<long double>(s.used_bytes) * 100 / total;
      use = std::to_string(static_cast<int64_t>(std::ceil(pct - 1e-12L))) + "%";
    }
    rows.push_back({ns, claim, s.volume, size(s.capacity_bytes), size(s.used_bytes),
                    size(s.available_bytes), use, s.mount_path});
  }
  return FormatTable(rows);
}

}  // namespace claimfs::claimctl
