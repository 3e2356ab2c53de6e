// StateStore: claimfsd's crash-safe record of StorageClasses, PersistentVolumes, claims and
// events, kept in SQLite (WAL, synchronous=FULL) in the state directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"
#include "claimfs/store/write_batch.h"

namespace claimfs::store {

struct Options {
  // How many events are kept; past it the least recently written ones are dropped.
  int max_events = 1000;
  // How long a statement waits for SQLite's lock before failing with kUnavailable (only another
  // process opening the database behind the lock file's back could hold it).
  std::chrono::milliseconds busy_timeout{5000};
  // The pools' directories. A database that has not adopted pool volumes yet (one written by a
  // claimfsd that did not record the directories it made) records, once, every PersistentVolume
  // whose path is <pool>/<its name> as a directory claimfsd created.
  std::vector<std::string> pool_paths;
};

// A directory claimfsd created for a volume (a dynamically provisioned one, or a hostPath that
// was missing), identified by device and inode as well as by path, so that a directory removed
// and made again by someone else is not taken for it.
struct CreatedDirectory {
  std::string path;
  std::string volume;  // the PersistentVolume it was made for
  uint64_t device = 0;
  uint64_t inode = 0;

  bool operator==(const CreatedDirectory&) const = default;
};

// Every object, read in one transaction: a consistent view.
struct Snapshot {
  std::string resource_version;                      // the store-wide version when it was read
  std::vector<model::StorageClass> storage_classes;  // by name
  std::vector<model::PersistentVolume> volumes;      // by name
  std::vector<model::PersistentVolumeClaim> claims;  // by namespace, then name
};

// The database file and the lock file inside a state directory.
inline constexpr char kDatabaseFileName[] = "state.db";
inline constexpr char kLockFileName[] = "lock";
// The state directory and every file in it are root's alone (Open enforces both).
inline constexpr mode_t kStateDirectoryMode = 0700;
inline constexpr mode_t kStateFileMode = 0600;

// Objects carry metadata as the Kubernetes API server sets it: uid (random UUID v4) and
// creationTimestamp (RFC 3339, UTC) on create; resourceVersion from one store-wide counter,
// bumped by every write; generation 1 on create and +1 on each update that changes anything
// outside metadata and status (for a StorageClass, anything outside metadata).
//
// Errors read as the API server's: `persistentvolumeclaims "data" not found`,
// `... already exists`, `Operation cannot be fulfilled on ...: the object has been modified;
// ...`. A claim with no namespace is in "default"; PVs and classes have none.
//
// Thread-safe: every call holds mu_ for its whole length.
class StateStore {
 public:
  // Opens the store in `state_dir` (created if missing; made kStateDirectoryMode, its files
  // kStateFileMode), creating or migrating the database;
  // the directory stays locked until the store is destroyed. Fails with kUnavailable when
  // another process (or another StateStore in this one) has the directory, naming the directory
  // and the holder's pid, or when the database's schema is newer than this binary's; with
  // kInvalid when state.db is some other SQLite database; with kIOError when it is not a
  // database at all. A database it refuses is not modified.
  static Result<std::unique_ptr<StateStore>> Open(const std::filesystem::path& state_dir,
                                                  const Options& options = {});
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Writes the batch in one transaction: every op in order, each seeing the ones before it. On
  // success, when `written` is not null, it gets one object per op, as stored (for a delete, the
  // object as it was). On any failure nothing is written and the failing op's Status is
  // returned.
  Status Apply(const WriteBatch& batch, std::vector<Object>* written = nullptr);

  // One-op batches, returning the object as stored.
  Result<model::StorageClass> Create(model::StorageClass object);
  Result<model::PersistentVolume> Create(model::PersistentVolume object);
  Result<model::PersistentVolumeClaim> Create(model::PersistentVolumeClaim object);
  Result<model::StorageClass> Update(model::StorageClass object);
  Result<model::PersistentVolume> Update(model::PersistentVolume object);
  Result<model::PersistentVolumeClaim> Update(model::PersistentVolumeClaim object);
  Status Delete(Kind kind, std::string_view namespace_, std::string_view name,
                std::string_view expected_resource_version = "");

  // By kind, for callers that hold a kind as a value (an API path); kNotFound when missing.
  Result<Object> Get(Kind kind, std::string_view namespace_, std::string_view name);
  // Sorted by namespace, then name; `namespace_` empty = every namespace.
  Result<std::vector<Object>> List(Kind kind, std::string_view namespace_ = "");

  // kNotFound when missing.
  Result<model::StorageClass> GetStorageClass(std::string_view name);
  Result<model::PersistentVolume> GetPersistentVolume(std::string_view name);
  Result<model::PersistentVolumeClaim> GetPersistentVolumeClaim(std::string_view namespace_,
                                                                std::string_view name);

  // Sorted by name (claims by namespace, then name); `namespace_` empty = every namespace.
  Result<std::vector<model::StorageClass>> ListStorageClasses();
  Result<std::vector<model::PersistentVolume>> ListPersistentVolumes();
  Result<std::vector<model::PersistentVolumeClaim>> ListPersistentVolumeClaims(
      std::string_view namespace_ = "");

  Result<Snapshot> ReadSnapshot();

  // Records an event and returns it as stored. An empty name becomes "<object>.<hex>" as
  // Kubernetes' recorder names events; empty timestamps become now. An event repeating the last
  // one kept for the same object (same type, reason, message and source) is folded into it, as
  // Kubernetes' event correlator does: its count grows and lastTimestamp moves.
  Result<model::Event> AppendEvent(model::Event event);
  // Events about one object (kind, namespace, name; and uid when the reference has one), oldest
  // first.
  Result<std::vector<model::Event>> ListEvents(const model::ObjectReference& involved_object);
  // Every event, oldest first; `namespace_` empty = every namespace.
  Result<std::vector<model::Event>> ListAllEvents(std::string_view namespace_ = "");

  // Records (or replaces, by path) a directory claimfsd created.
  Status RecordCreatedDirectory(const CreatedDirectory& directory);
  // Forgets the record of `path`, if there is one (its directory was deleted).
  Status ForgetCreatedDirectory(std::string_view path);
  // Every record, by path.
  Result<std::vector<CreatedDirectory>> ListCreatedDirectories();

  // The store-wide version: the resourceVersion of the latest write.
  Result<std::string> ResourceVersion();

  const std::filesystem::path& state_dir() const { return state_dir_; }

 private:
  class Impl;
  StateStore(std::filesystem::path state_dir, std::unique_ptr<Impl> impl);

  const std::filesystem::path state_dir_;
  std::mutex mu_;                     // guards impl_'s connection and counters; the only lock
  const std::unique_ptr<Impl> impl_;  // GUARDED_BY(mu_)
};

}  // namespace claimfs::store
