// API-server validation of claimfs objects, on create and on update, with Kubernetes' field
// paths and messages. Pure: nothing here looks anything up except through its parameters.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"
#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/field_error.h"

namespace claimfs::yaml {

// Create validation of a defaulted object (see defaults.h). Returns every problem, or nothing.
ErrorList ValidateStorageClass(const model::StorageClass& sc);
ErrorList ValidatePersistentVolume(const model::PersistentVolume& pv);
ErrorList ValidatePersistentVolumeClaim(const model::PersistentVolumeClaim& pvc);
ErrorList Validate(const Object& object);

// Finds a StorageClass by name; null when there is none. Called only during the call that takes
// it; the pointer need not outlive that call.
using StorageClassLookup = std::function<const model::StorageClass*(const std::string& name)>;

// Update validation: the new object must be valid, and may change only what Kubernetes lets
// change. A claim's spec is immutable except that a Bound claim's storage request may grow, and
// only when its class (found through `classes`) has allowVolumeExpansion; volumeName may be set
// once and a missing storageClassName may be filled in. A PV's volume source and volumeMode are
// immutable. A class's provisioner, parameters, reclaimPolicy and volumeBindingMode are.
// metadata.name and metadata.namespace never change.
ErrorList ValidateStorageClassUpdate(const model::StorageClass& old_sc,
                                     const model::StorageClass& new_sc);
ErrorList ValidatePersistentVolumeUpdate(const model::PersistentVolume& old_pv,
                                         const model::PersistentVolume& new_pv);
ErrorList ValidatePersistentVolumeClaimUpdate(const model::PersistentVolumeClaim& old_pvc,
                                              const model::PersistentVolumeClaim& new_pvc,
                                              const StorageClassLookup& classes);

// Kubernetes' rejection: `PersistentVolumeClaim "data" is invalid: [spec.accessModes: Required
// value, ...]`, as kInvalid. Ok when `errors` is empty.
Status InvalidStatus(std::string_view kind, std::string_view name, const ErrorList& errors);

// Name checks of k8s.io/apimachinery/pkg/util/validation: each returns the messages for what is
// wrong with `value`, empty when it is valid.
std::vector<std::string> IsDNS1123Subdomain(std::string_view value);
std::vector<std::string> IsDNS1123Label(std::string_view value);
std::vector<std::string> IsQualifiedName(std::string_view value);
std::vector<std::string> IsValidLabelValue(std::string_view value);

}  // namespace claimfs::yaml
