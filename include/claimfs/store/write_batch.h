// WriteBatch: creates, updates, deletes and events that StateStore::Apply() writes in one
// transaction, all or nothing (a bind updates a PersistentVolume and its claim together).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "claimfs/model/objects.h"

namespace claimfs::store {

// The kinds the store keeps as objects (events live beside them, append-only).
enum class Kind { kStorageClass, kPersistentVolume, kPersistentVolumeClaim };

// "StorageClass", "PersistentVolume", "PersistentVolumeClaim".
const char* ToString(Kind kind);
// The resource as Kubernetes names it in messages: "storageclasses.storage.k8s.io",
// "persistentvolumes", "persistentvolumeclaims".
const char* QualifiedResource(Kind kind);
// Whether objects of `kind` live in a namespace (only claims do).
bool IsNamespaced(Kind kind);

// Anything a batch writes or the store returns from one.
using Object = std::variant<model::StorageClass, model::PersistentVolume,
                            model::PersistentVolumeClaim, model::Event>;

// Not thread-safe; build it on one thread, then hand it to Apply().
class WriteBatch {
 public:
  enum class OpType { kCreate, kUpdate, kDelete, kEvent };

  struct Op {
    OpType type;
    Kind kind;                              // unused for kEvent
    std::string namespace_;                 // kDelete: the object to delete
    std::string name;                       // kDelete
    std::string expected_resource_version;  // kDelete: empty = whatever version is stored
    std::optional<Object> object;           // kCreate, kUpdate, kEvent
  };

  // Create: fails the batch with kAlreadyExists when the name is taken. The store sets uid,
  // creationTimestamp, generation (1) and resourceVersion, whatever the object carries.
  void Create(model::StorageClass object);
  void Create(model::PersistentVolume object);
  void Create(model::PersistentVolumeClaim object);

  // Update: replaces the stored object. Its metadata.resourceVersion, when not empty, must equal
  // the stored one (kConflict otherwise), as must a non-empty metadata.uid; a missing object
  // fails with kNotFound. uid and creationTimestamp stay as stored.
  void Update(model::StorageClass object);
  void Update(model::PersistentVolume object);
  void Update(model::PersistentVolumeClaim object);

  // Delete: removes the object (kNotFound when missing; kConflict when
  // `expected_resource_version` is not empty and differs). Finalizers are the caller's business:
  // the store removes what it is told to.
  void Delete(Kind kind, std::string namespace_, std::string name,
              std::string expected_resource_version = "");

  // Records an event; see StateStore::AppendEvent() for naming and repeats.
  void AddEvent(model::Event event);

  const std::vector<Op>& ops() const { return ops_; }
  size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  void Clear() { ops_.clear(); }

 private:
  void Add(OpType type, Kind kind, Object object);
  std::vector<Op> ops_;
};

}  // namespace claimfs::store
