// What claimctl prints, as pure functions of objects and a clock: kubectl get's tables,
// kubectl describe's pages, and the df table. Nothing here talks to the daemon.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "claimctl/duration.h"
#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"

namespace claimfs::claimctl {

// One mounted volume as GET /apis/claimfs.io/v1/volumestats reports it.
struct VolumeStats {
  std::string volume;  // PV name
  std::string claim;   // "namespace/name"
  std::string mount_path;
  int64_t capacity_bytes = 0;
  int64_t used_bytes = 0;
  int64_t available_bytes = 0;
  int64_t used_inodes = 0;
  std::optional<int64_t> inode_limit;
  int64_t quota_rejections = 0;
  bool read_only = false;
  std::string mode;  // "kernel (...)", "accounted (...)", "unlimited"; empty from older daemons
};

// Decodes the volumestats response ({"items":[...]}). Fails with kInvalid naming the item and
// field that has the wrong type or is missing.
Result<std::vector<VolumeStats>> VolumeStatsFromJson(const nlohmann::json& json);
const VolumeStats* FindStatsByVolume(const std::vector<VolumeStats>& stats,
                                     const std::string& volume);
const VolumeStats* FindStatsByClaim(const std::vector<VolumeStats>& stats, const std::string& ns,
                                    const std::string& name);

struct TableOptions {
  Clock::time_point now;
  bool wide = false;            // -o wide: VOLUMEMODE, USED, MOUNT (and MODE for PVs)
  bool with_namespace = false;  // -A: a leading NAMESPACE column (namespaced kinds only)
  bool with_kind = false;       // NAME as persistentvolume/NAME, as kubectl does for several kinds
  bool headers = true;
  const std::vector<VolumeStats>* stats = nullptr;  // for the wide USED and MOUNT columns
};

using model::AccessModesText;

// The rows of kubectl get, header first (when options.headers): see the column lists in each
// function. Cells kubectl leaves blank are empty strings.
// NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS REASON AGE
//   [VOLUMEMODE USED MOUNT MODE]   MODE: kernel, accounted or unlimited (claimfs's)
std::vector<std::vector<std::string>> PersistentVolumeRows(
    const std::vector<model::PersistentVolume>& pvs, const TableOptions& options);
// [NAMESPACE] NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS AGE [VOLUMEMODE USED MOUNT]
std::vector<std::vector<std::string>> PersistentVolumeClaimRows(
    const std::vector<model::PersistentVolumeClaim>& pvcs, const TableOptions& options);
// NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE
std::vector<std::vector<std::string>> StorageClassRows(
    const std::vector<model::StorageClass>& classes, const TableOptions& options);

// The same rows laid out by kubectl's tabwriter.
std::string PrintPersistentVolumes(const std::vector<model::PersistentVolume>& pvs,
                                   const TableOptions& options);
std::string PrintPersistentVolumeClaims(const std::vector<model::PersistentVolumeClaim>& pvcs,
                                        const TableOptions& options);
std::string PrintStorageClasses(const std::vector<model::StorageClass>& classes,
                                const TableOptions& options);

// kubectl describe. `events` null means they could not be fetched (no Events section, as
// kubectl); empty prints "Events: <none>". `stats` (may be null) adds the mount path.
// `used_by` lists a claim's lease holders under "Used By" (kubectl lists pods there).
std::string DescribePersistentVolume(const model::PersistentVolume& pv,
                                     const std::vector<model::Event>* events, Clock::time_point now,
                                     const VolumeStats* stats);
std::string DescribePersistentVolumeClaim(const model::PersistentVolumeClaim& pvc,
                                          const std::vector<model::Event>* events,
                                          Clock::time_point now, const VolumeStats* stats,
                                          const std::vector<std::string>& used_by = {});
std::string DescribeStorageClass(const model::StorageClass& sc,
                                 const std::vector<model::Event>* events, Clock::time_point now);

// Sizes as `df -h` prints them: powers of 1024, rounded up, one decimal below 10 ("1.5G",
// "64M", "512", "0").
std::string HumanBytes(int64_t bytes);

// NAMESPACE CLAIM VOLUME CAPACITY USED AVAIL USE% MOUNTED ON, one row per volume in the given
// order; sizes human-readable unless `bytes`. USE% is used/(used+avail) rounded up, as df does.
std::string FormatDf(const std::vector<VolumeStats>& stats, bool bytes);

}  // namespace claimfs::claimctl
