#include "store/object_codec.h"

#include "claimfs/yaml/codec.h"

namespace claimfs::store {

nlohmann::json EncodeObject(const Object& object) {
  return std::visit([](const auto& o) { return yaml::ToJson(o); }, object);
}

namespace {

template <typename T>
Result<Object> Wrap(Result<T> decoded) {
  if (!decoded.ok()) return Status::Internal(decoded.status().message());
  return Object(std::move(decoded).value());
}

}  // namespace

Result<Object> DecodeObject(Kind kind, const nlohmann::json& body) {
  switch (kind) {
    case Kind::kStorageClass:
      return Wrap(yaml::StorageClassFromJson(body));
    case Kind::kPersistentVolume:
      return Wrap(yaml::PersistentVolumeFromJson(body));
    case Kind::kPersistentVolumeClaim:
      return Wrap(yaml::PersistentVolumeClaimFromJson(body));
  }
  return Status::Internal("unknown kind");
}

Result<model::Event> DecodeEvent(const nlohmann::json& body) {
  Result<model::Event> event = yaml::EventFromJson(body);
  if (!event.ok()) return Status::Internal("an event does not decode: " + event.status().message());
  return event;
}

}  // namespace claimfs::store
