// The JSON form of claimfs objects, field for field as Kubernetes writes them: what the store
// keeps, what the API serves, and what decoding from it gives back exactly.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"
#include "claimfs/yaml/field_error.h"
#include "claimfs/yaml/json_text.h"

namespace claimfs::yaml {

// One object of a kind a manifest may hold.
using Object =
    std::variant<model::StorageClass, model::PersistentVolume, model::PersistentVolumeClaim>;

// Complete Kubernetes JSON (apiVersion, kind, metadata, spec, status), empty fields omitted,
// unknown fields merged back where they stood. Never fails.
nlohmann::json ToJson(const model::StorageClass& sc);
nlohmann::json ToJson(const model::PersistentVolume& pv);
nlohmann::json ToJson(const model::PersistentVolumeClaim& pvc);
nlohmann::json ToJson(const model::Event& event);
nlohmann::json ToJson(const Object& object);

// Decodes what ToJson wrote, or a Kubernetes JSON body: FromJson(ToJson(x)) == x. Applies no
// defaults and no validation (see defaults.h, validation.h); unknown fields are kept silently.
// Fails with kInvalid listing every field error (wrong kind/apiVersion, wrong JSON types,
// unsupported enum values, malformed quantities).
Result<model::StorageClass> StorageClassFromJson(const nlohmann::json& json);
Result<model::PersistentVolume> PersistentVolumeFromJson(const nlohmann::json& json);
Result<model::PersistentVolumeClaim> PersistentVolumeClaimFromJson(const nlohmann::json& json);
Result<model::Event> EventFromJson(const nlohmann::json& json);
// Picks the kind from apiVersion/kind.
Result<Object> ObjectFromJson(const nlohmann::json& json);

// The same decoding with its findings itemised: every error and every unknown field's path.
// Returns the object when `errors` stayed empty. `numbers`, when given, holds the text of the
// JSON numbers (see ParseJsonKeepingNumbers): a quantity written as a number is read from it.
struct DecodeReport {
  ErrorList errors;
  std::vector<FieldPath> unknown_fields;
};
std::optional<Object> DecodeObject(const nlohmann::json& json, DecodeReport* report,
                                   const NumberTexts* numbers = nullptr);

// "PersistentVolume", "PersistentVolumeClaim", "StorageClass".
std::string_view KindOf(const Object& object);
const model::ObjectMeta& MetadataOf(const Object& object);
model::ObjectMeta& MetadataOf(Object& object);

}  // namespace claimfs::yaml
