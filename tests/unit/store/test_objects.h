// Objects, temporary state directories and binding checks shared by the store's tests and its
// crash writer.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "claimfs/model/objects.h"

namespace claimfs::store::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::filesystem::path base = std::filesystem::temp_directory_path() / "claimfs-store-XXXXXX";
    std::string pattern = base.string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline model::StorageClass MakeClass(std::string name) {
  model::StorageClass sc;
  sc.metadata.name = std::move(name);
  sc.provisioner = model::kProvisionerName;
  sc.parameters["pool"] = "default";
  sc.reclaim_policy = model::ReclaimPolicy::kDelete;
  sc.allow_volume_expansion = true;
  sc.volume_binding_mode = model::VolumeBindingMode::kImmediate;
  return sc;
}

inline model::PersistentVolume MakeVolume(std::string name, int64_t bytes = 1LL << 30) {
  model::PersistentVolume pv;
  pv.metadata.name = std::move(name);
  pv.metadata.labels["type"] = "local";
  pv.spec.capacity = model::Quantity::FromBytes(bytes);
  pv.spec.access_modes = {model::AccessMode::kReadWriteOnce};
  pv.spec.volume_mode = model::VolumeMode::kFilesystem;
  pv.spec.storage_class_name = "manual";
  pv.spec.reclaim_policy = model::ReclaimPolicy::kRetain;
  pv.spec.host_path = model::HostPathVolumeSource{"/mnt/data/" + pv.metadata.name, std::nullopt};
  pv.status.phase = model::VolumePhase::kAvailable;
  return pv;
}

inline model::PersistentVolumeClaim MakeClaim(std::string namespace_, std::string name,
                                              int64_t bytes = 1LL << 30) {
  model::PersistentVolumeClaim pvc;
  pvc.metadata.namespace_ = std::move(namespace_);
  pvc.metadata.name = std::move(name);
  pvc.spec.access_modes = {model::AccessMode::kReadWriteOnce};
  pvc.spec.request = model::Quantity::FromBytes(bytes);
  pvc.spec.storage_class_name = "manual";
  pvc.spec.volume_mode = model::VolumeMode::kFilesystem;
  pvc.status.phase = model::ClaimPhase::kPending;
  return pvc;
}

inline model::ObjectReference ReferenceTo(const model::PersistentVolumeClaim& pvc) {
  model::ObjectReference ref;
  ref.kind = "PersistentVolumeClaim";
  ref.api_version = "v1";
  ref.namespace_ = pvc.metadata.namespace_;
  ref.name = pvc.metadata.name;
  ref.uid = pvc.metadata.uid;
  ref.resource_version = pvc.metadata.resource_version;
  return ref;
}

// Binds as Kubernetes' PV controller does: claimRef on the volume, volumeName on the claim, both
// phases Bound.
inline void Bind(model::PersistentVolume* pv, model::PersistentVolumeClaim* pvc) {
  pv->spec.claim_ref = ReferenceTo(*pvc);
  pv->status.phase = model::VolumePhase::kBound;
  pvc->spec.volume_name = pv->metadata.name;
  pvc->status.phase = model::ClaimPhase::kBound;
  pvc->status.capacity = pv->spec.capacity;
  pvc->status.access_modes = pv->spec.access_modes;
}

}  // namespace claimfs::store::testing
