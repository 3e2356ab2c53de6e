#include "claimfs/yaml/defaults.h"

namespace claimfs::yaml {

void SetDefaults(model::StorageClass* sc) {
  if (!sc->reclaim_policy) sc->reclaim_policy = model::ReclaimPolicy::kDelete;
  if (!sc->volume_binding_mode) sc->volume_binding_mode = model::VolumeBindingMode::kImmediate;
}

void SetDefaults(model::PersistentVolume* pv) {
  if (!pv->spec.volume_mode) pv->spec.volume_mode = model::VolumeMode::kFilesystem;
  if (!pv->spec.reclaim_policy) pv->spec.reclaim_policy = model::ReclaimPolicy::kRetain;
  if (pv->spec.host_path && !pv->spec.host_path->type) pv->spec.host_path->type = "";
}

void SetDefaults(model::PersistentVolumeClaim* pvc) {
  if (pvc->metadata.namespace_.empty()) pvc->metadata.namespace_ = kDefaultNamespace;
  if (!pvc->spec.volume_mode) pvc->spec.volume_mode = model::VolumeMode::kFilesystem;
}

void SetDefaults(Object* object) {
  std::visit([](auto& o) { SetDefaults(&o); }, *object);
}

}  // namespace claimfs::yaml
