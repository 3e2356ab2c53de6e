// Turns Kubernetes JSON into model objects, recording every error and unknown field by path
// instead of stopping at the first.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "claimfs/model/objects.h"
#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/field_error.h"

namespace claimfs::yaml::internal {

// The source text of a number written in a manifest, by JSON pointer, so that "1e9" keeps its
// spelling (JSON would make it 1000000000.0). Returns null when there is none.
using RawNumberText = std::function<const std::string*(const std::string& pointer)>;

class Decoder {
 public:
  explicit Decoder(RawNumberText raw_number = nullptr) : raw_number_(std::move(raw_number)) {}

  // Dispatches on apiVersion/kind; nullopt when they name nothing claimfs serves.
  std::optional<yaml::Object> DecodeObject(const nlohmann::json& json);
  // Each checks apiVersion/kind, then decodes what it can; see errors() for what went wrong.
  model::StorageClass DecodeStorageClass(const nlohmann::json& json);
  model::PersistentVolume DecodePersistentVolume(const nlohmann::json& json);
  model::PersistentVolumeClaim DecodePersistentVolumeClaim(const nlohmann::json& json);
  model::Event DecodeEvent(const nlohmann::json& json);

  ErrorList& errors() { return errors_; }
  std::vector<FieldPath>& unknown_fields() { return unknown_; }

 private:
  using FieldFn =
      std::function<bool(const std::string& key, const nlohmann::json& value, const FieldPath&)>;

  void WrongType(const FieldPath& path, const char* expected, const nlohmann::json& got);
  bool CheckTypeMeta(const nlohmann::json& json, std::string_view api_version,
                     std::string_view kind);
  bool Fields(const nlohmann::json& json, const FieldPath& path, const FieldFn& field);
  void Unknown(const FieldPath& path, const nlohmann::json& value);

  bool String(const nlohmann::json& json, const FieldPath& path, std::string* out);
  bool String(const nlohmann::json& json, const FieldPath& path, std::optional<std::string>* out);
  bool Bool(const nlohmann::json& json, const FieldPath& path, std::optional<bool>* out);
  bool Int64(const nlohmann::json& json, const FieldPath& path, int64_t* out);
  bool Quantity(const nlohmann::json& json, const FieldPath& path,
                std::optional<model::Quantity>* out);
  bool StringList(const nlohmann::json& json, const FieldPath& path, std::vector<std::string>* out);
  bool StringMap(const nlohmann::json& json, const FieldPath& path,
                 std::map<std::string, std::string>* out);
  bool AccessModes(const nlohmann::json& json, const FieldPath& path,
                   std::vector<model::AccessMode>* out);

  void Metadata(const nlohmann::json& json, const FieldPath& path, model::ObjectMeta* out);
  void Reference(const nlohmann::json& json, const FieldPath& path, model::ObjectReference* out);
  void Selector(const nlohmann::json& json, const FieldPath& path, model::LabelSelector* out);
  void StorageResource(const nlohmann::json& json, const FieldPath& path,
                       std::optional<model::Quantity>* out, bool others_are_errors);
  void PersistentVolumeSpec(const nlohmann::json& json, const FieldPath& path,
                            model::PersistentVolumeSpec* out);
  void PersistentVolumeClaimSpec(const nlohmann::json& json, const FieldPath& path,
                                 model::PersistentVolumeClaimSpec* out);

  RawNumberText raw_number_;
  ErrorList errors_;
  std::vector<FieldPath> unknown_;
  nlohmann::json* unknown_root_ = nullptr;  // the unknown_fields of the object being decoded
};

// Puts unknown fields back into an encoded object; fields the encoder wrote win.
void MergeUnknown(nlohmann::json* encoded, const nlohmann::json& unknown);

}  // namespace claimfs::yaml::internal
