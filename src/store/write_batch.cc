#include "claimfs/store/write_batch.h"

#include <utility>

namespace claimfs::store {

const char* ToString(Kind kind) {
  switch (kind) {
    case Kind::kStorageClass:
      return "StorageClass";
    case Kind::kPersistentVolume:
      return "PersistentVolume";
    case Kind::kPersistentVolumeClaim:
      return "PersistentVolumeClaim";
  }
  return "Unknown";
}

const char* QualifiedResource(Kind kind) {
  switch (kind) {
    case Kind::kStorageClass:
      return "storageclasses.storage.k8s.io";
    case Kind::kPersistentVolume:
      return "persistentvolumes";
    case Kind::kPersistentVolumeClaim:
      return "persistentvolumeclaims";
  }
  return "unknown";
}

bool IsNamespaced(Kind kind) { return kind == Kind::kPersistentVolumeClaim; }

void WriteBatch::Add(OpType type, Kind kind, Object object) {
  ops_.push_back(Op{type, kind, "", "", "", std::move(object)});
}

void WriteBatch::Create(model::StorageClass object) {
  Add(OpType::kCreate, Kind::kStorageClass, std::move(object));
}
void WriteBatch::Create(model::PersistentVolume object) {
  Add(OpType::kCreate, Kind::kPersistentVolume, std::move(object));
}
void WriteBatch::Create(model::PersistentVolumeClaim object) {
  Add(OpType::kCreate, Kind::kPersistentVolumeClaim, std::move(object));
}
void WriteBatch::Update(model::StorageClass object) {
  Add(OpType::kUpdate, Kind::kStorageClass, std::move(object));
}
void WriteBatch::Update(model::PersistentVolume object) {
  Add(OpType::kUpdate, Kind::kPersistentVolume, std::move(object));
}
void WriteBatch::Update(model::PersistentVolumeClaim object) {
  Add(OpType::kUpdate, Kind::kPersistentVolumeClaim, std::move(object));
}

void WriteBatch::Delete(Kind kind, std::string namespace_, std::string name,
                        std::string expected_resource_version) {
  ops_.push_back(Op{OpType::kDelete, kind, std::move(namespace_), std::move(name),
                    std::move(expected_resource_version), std::nullopt});
}

void WriteBatch::AddEvent(model::Event event) {
  ops_.push_back(Op{OpType::kEvent, Kind::kPersistentVolumeClaim, "", "", "", std::move(event)});
}

}  // namespace claimfs::store
