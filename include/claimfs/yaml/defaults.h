// The defaults the Kubernetes API server fills in before validating an object.
#pragma once

#include "claimfs/model/objects.h"
#include "claimfs/yaml/codec.h"

namespace claimfs::yaml {

// StorageClass: reclaimPolicy Delete, volumeBindingMode Immediate.
void SetDefaults(model::StorageClass* sc);
// PersistentVolume: volumeMode Filesystem, persistentVolumeReclaimPolicy Retain, hostPath.type "".
// (A provisioned PV gets its class's policy from the controller, not from here.)
void SetDefaults(model::PersistentVolume* pv);
// PersistentVolumeClaim: namespace "default", volumeMode Filesystem.
void SetDefaults(model::PersistentVolumeClaim* pvc);
void SetDefaults(Object* object);

inline constexpr char kDefaultNamespace[] = "default";

}  // namespace claimfs::yaml
