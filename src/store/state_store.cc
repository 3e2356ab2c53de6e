#include "claimfs/store/state_store.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <system_error>
#include <utility>

#include "claimfs/common/log.h"
#include "store/lock_file.h"
#include "store/object_codec.h"
#include "store/schema.h"
#include "store/sqlite.h"

namespace claimfs::store {
namespace {

using nlohmann::json;

constexpr char kEventSource[] = "persistentvolume-controller";

// A random (version 4) UUID, as the API server gives every object.
Result<std::string> NewUuid() {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof(b)) {
    ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("cannot read random bytes for a uid", errno);
    }
    got += static_cast<size_t>(n);
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof(out),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return std::string(out);
}

// RFC 3339 in UTC with whole seconds, as metav1.Time marshals: "2026-11-25T10:00:00Z".
std::string Rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char out[32];
  std::strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}

// Makes the directory's entries (a new database file) survive a power loss.
Status SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("cannot open state directory " + dir, errno);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc < 0) return Status::FromErrno("cannot sync state directory " + dir, err);
  return Status::Ok();
}

model::ObjectMeta& MetaOf(Object& object) {
  return std::visit([](auto& o) -> model::ObjectMeta& { return o.metadata; }, object);
}

// The part of an encoded object whose change bumps generation: all but metadata and status.
json SpecPart(json body) {
  if (body.is_object()) {
    body.erase("metadata");
    body.erase("status");
    body.erase("apiVersion");
    body.erase("kind");
  }
  return body;
}

// Kubernetes names the object by its name alone, quoted, after the resource.
std::string Quoted(std::string_view name) { return "\"" + std::string(name) + "\""; }

Status NotFound(Kind kind, std::string_view name) {
  return Status::NotFound(std::string(QualifiedResource(kind)) + " " + Quoted(name) + " not found");
}

Status AlreadyExists(Kind kind, std::string_view name) {
  return Status::AlreadyExists(std::string(QualifiedResource(kind)) + " " + Quoted(name) +
                               " already exists");
}

Status Modified(Kind kind, std::string_view name) {
  return Status::Conflict("Operation cannot be fulfilled on " +
                          std::string(QualifiedResource(kind)) + " " + Quoted(name) +
                          ": the object has been modified; please apply your changes to the "
                          "latest version and try again");
}

// Cluster-scoped kinds have no namespace; a claim without one is in "default", as the API server
// puts it there.
std::string NormalizeNamespace(Kind kind, std::string_view namespace_) {
  if (!IsNamespaced(kind)) return "";
  return namespace_.empty() ? "default" : std::string(namespace_);
}

std::optional<Kind> KindFromString(std::string_view text) {
  for (Kind k : {Kind::kStorageClass, Kind::kPersistentVolume, Kind::kPersistentVolumeClaim}) {
    if (text == ToString(k)) return k;
  }
  return std::nullopt;
}

Result<json> ParseBody(const std::string& text, const std::string& what) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return Status::Internal("state database holds a malformed record for " + what);
  }
  return body;
}

// The text kept for `object`. nlohmann::json refuses strings that are not UTF-8 by throwing;
// that becomes kInvalid here.
Result<std::string> Serialize(const Object& object) {
  try {
    return EncodeObject(object).dump();
  } catch (const nlohmann::json::exception& e) {
    const model::ObjectMeta& meta =
        std::visit([](const auto& o) -> const model::ObjectMeta& { return o.metadata; }, object);
    return Status::Invalid("cannot store " + meta.name + ": " + e.what());
  }
}

}  // namespace

// Everything behind StateStore's mutex.
class StateStore::Impl {
 public:
  Impl(LockFile lock, sqlite::Database db, Options options)
      : lock_(std::move(lock)), db_(std::move(db)), options_(options) {}

  Status Apply(const WriteBatch& batch, std::vector<Object>* written);
  Result<Object> Get(Kind kind, std::string_view namespace_, std::string_view name);
  Result<std::vector<Object>> List(std::optional<Kind> kind, std::string_view namespace_);
  Result<Snapshot> ReadSnapshot();
  Result<std::vector<model::Event>> ListEvents(const model::ObjectReference* involved,
                                               std::string_view namespace_);
  Result<int64_t> ReadCounter();
  Status RecordCreatedDirectory(const CreatedDirectory& directory);
  Status ForgetCreatedDirectory(std::string_view path);
  Result<std::vector<CreatedDirectory>> ListCreatedDirectories();

 private:
  struct Stored {
    int64_t resource_version;
    Object object;
  };
  // Within a write transaction.
  Result<std::optional<Stored>> Find(Kind kind, const std::string& namespace_,
                                     const std::string& name);
  Status Write(const WriteBatch::Op& op, int64_t* counter, Object* out);
  Status Put(Kind kind, const Object& object, bool insert);
  Status WriteEvent(model::Event event, int64_t* counter, Object* out);
  Status PruneEvents();
  std::string Describe(Kind kind, const std::string& namespace_, const std::string& name) const;

  LockFile lock_;  // first member, so it is released last, after the database is closed
  sqlite::Database db_;
  const Options options_;
  int64_t last_event_nanos_ = 0;  // keeps generated event names unique within this process
};

std::string StateStore::Impl::Describe(Kind kind, const std::string& namespace_,
                                       const std::string& name) const {
  std::string what = std::string(ToString(kind)) + " ";
  if (!namespace_.empty()) what += namespace_ + "/";
  return what + name + " in " + db_.path();
}

Result<int64_t> StateStore::Impl::ReadCounter() {
  return db_.QueryInt("SELECT value FROM meta WHERE key = 'resource_version'");
}

Status StateStore::Impl::RecordCreatedDirectory(const CreatedDirectory& directory) {
  Result<sqlite::Statement> stmt = db_.Prepare(
      "INSERT OR REPLACE INTO created_directories (path, volume, device, inode)"
      " VALUES (?, ?, ?, ?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, directory.path)
      .Bind(2, directory.volume)
      .Bind(3, static_cast<int64_t>(directory.device))
      .Bind(4, static_cast<int64_t>(directory.inode));
  return stmt->Run();
}

Status StateStore::Impl::ForgetCreatedDirectory(std::string_view path) {
  Result<sqlite::Statement> stmt = db_.Prepare("DELETE FROM created_directories WHERE path = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, path);
  return stmt->Run();
}

Result<std::vector<CreatedDirectory>> StateStore::Impl::ListCreatedDirectories() {
  Result<sqlite::Statement> stmt =
      db_.Prepare("SELECT path, volume, device, inode FROM created_directories ORDER BY path");
  if (!stmt.ok()) return stmt.status();
  std::vector<CreatedDirectory> out;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({stmt->ColumnText(0), stmt->ColumnText(1),
                   static_cast<uint64_t>(stmt->ColumnInt(2)),
                   static_cast<uint64_t>(stmt->ColumnInt(3))});
  }
  return out;
}

Result<std::optional<StateStore::Impl::Stored>> StateStore::Impl::Find(
    Kind kind, const std::string& namespace_, const std::string& name) {
  Result<sqlite::Statement> stmt = db_.Prepare(
      "SELECT resource_version, body FROM objects WHERE kind = ? AND namespace = ? AND name = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, ToString(kind)).Bind(2, namespace_).Bind(3, name);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Stored>();
  std::string what = Describe(kind, namespace_, name);
  Result<json> body = ParseBody(stmt->ColumnText(1), what);
  if (!body.ok()) return body.status();
  Result<Object> object = DecodeObject(kind, *body);
  if (!object.ok())
    return Status::Internal(what + " does not decode: " + object.status().message());
  return std::optional<Stored>(Stored{stmt->ColumnInt(0), std::move(object).value()});
}

Status StateStore::Impl::Put(Kind kind, const Object& object, bool insert) {
  const model::ObjectMeta& meta =
      std::visit([](const auto& o) -> const model::ObjectMeta& { return o.metadata; }, object);
  Result<sqlite::Statement> stmt = db_.Prepare(
      insert ? "INSERT INTO objects (resource_version, body, uid, generation, kind, namespace, "
               "name) VALUES (?, ?, ?, ?, ?, ?, ?)"
             : "UPDATE objects SET resource_version = ?, body = ?, uid = ?, generation = ? "
               "WHERE kind = ? AND namespace = ? AND name = ?");
  if (!stmt.ok()) return stmt.status();
  Result<std::string> body = Serialize(object);
  if (!body.ok()) return body.status();
  stmt->Bind(1, static_cast<int64_t>(std::stoll(meta.resource_version)))
      .Bind(2, *body)
      .Bind(3, meta.uid)
      .Bind(4, meta.generation)
      .Bind(5, ToString(kind))
      .Bind(6, meta.namespace_)
      .Bind(7, meta.name);
  return stmt->Run();
}

Status StateStore::Impl::Write(const WriteBatch::Op& op, int64_t* counter, Object* out) {
  using OpType = WriteBatch::OpType;
  if (op.type == OpType::kEvent) {
    return WriteEvent(std::get<model::Event>(*op.object), counter, out);
  }
  const Kind kind = op.kind;
  if (op.type == OpType::kDelete) {
    std::string namespace_ = NormalizeNamespace(kind, op.namespace_);
    Result<std::optional<Stored>> stored = Find(kind, namespace_, op.name);
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) return NotFound(kind, op.name);
    if (!op.expected_resource_version.empty() &&
        op.expected_resource_version != std::to_string((*stored)->resource_version)) {
      return Modified(kind, op.name);
    }
    Result<sqlite::Statement> stmt =
        db_.Prepare("DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?");
    if (!stmt.ok()) return stmt.status();
    stmt->Bind(1, ToString(kind)).Bind(2, namespace_).Bind(3, op.name);
    Status s = stmt->Run();
    if (!s.ok()) return s;
    ++*counter;  // a delete is a write: the store-wide version moves
    *out = std::move((*stored)->object);
    return Status::Ok();
  }

  Object object = *op.object;
  model::ObjectMeta& meta = MetaOf(object);
  meta.namespace_ = NormalizeNamespace(kind, meta.namespace_);
  if (meta.name.empty()) {
    return Status::Invalid(std::string(QualifiedResource(kind)) +
                           ": resource name may not be empty");
  }
  Result<std::optional<Stored>> stored = Find(kind, meta.namespace_, meta.name);
  if (!stored.ok()) return stored.status();

  if (op.type == OpType::kCreate) {
    if (stored->has_value()) return AlreadyExists(kind, meta.name);
    Result<std::string> uid = NewUuid();
    if (!uid.ok()) return uid.status();
    meta.uid = *uid;
    meta.creation_timestamp = Rfc3339(std::chrono::system_clock::now());
    meta.deletion_timestamp.reset();
    meta.generation = 1;
    meta.resource_version = std::to_string(++*counter);
    Status s = Put(kind, object, /*insert=*/true);
    if (!s.ok()) return s;
    *out = std::move(object);
    return Status::Ok();
  }

  // Update.
  if (!stored->has_value()) return NotFound(kind, meta.name);
  Stored& old = **stored;
  const model::ObjectMeta& old_meta = MetaOf(old.object);
  if (!meta.resource_version.empty() &&
      meta.resource_version != std::to_string(old.resource_version)) {
    return Modified(kind, meta.name);
  }
  if (!meta.uid.empty() && meta.uid != old_meta.uid) {
    return Status::Conflict("Precondition failed: UID in precondition: " + meta.uid +
                            ", UID in object meta: " + old_meta.uid);
  }
  meta.uid = old_meta.uid;
  meta.creation_timestamp = old_meta.creation_timestamp;
  bool spec_changed = SpecPart(EncodeObject(object)) != SpecPart(EncodeObject(old.object));
  meta.generation = old_meta.generation + (spec_changed ? 1 : 0);
  meta.resource_version = std::to_string(++*counter);
  Status s = Put(kind, object, /*insert=*/false);
  if (!s.ok()) return s;
  *out = std::move(object);
  return Status::Ok();
}

Status StateStore::Impl::WriteEvent(model::Event event, int64_t* counter, Object* out) {
  const model::ObjectReference& ref = event.involved_object;
  std::optional<Kind> involved_kind = KindFromString(ref.kind);
  if (event.metadata.namespace_.empty()) {
    // Events about cluster-scoped objects go to "default", as Kubernetes' recorder puts them.
    event.metadata.namespace_ = ref.namespace_.empty() ? "default" : ref.namespace_;
  }
  auto now = std::chrono::system_clock::now();
  std::string now_text = Rfc3339(now);
  if (event.first_timestamp.empty()) event.first_timestamp = now_text;
  if (event.last_timestamp.empty()) event.last_timestamp = event.first_timestamp;
  if (event.source_component.empty()) event.source_component = kEventSource;
  if (event.count < 1) event.count = 1;
  std::string involved_namespace =
      involved_kind ? NormalizeNamespace(*involved_kind, ref.namespace_) : ref.namespace_;

  // A repeat of an event already kept for this object is folded into it.
  Result<sqlite::Statement> find = db_.Prepare(
      "SELECT seq, body FROM events WHERE involved_kind = ? AND involved_namespace = ? AND "
      "involved_name = ? ORDER BY seq DESC");
  if (!find.ok()) return find.status();
  find->Bind(1, ref.kind).Bind(2, involved_namespace).Bind(3, ref.name);
  for (;;) {
    Result<bool> row = find->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<json> kept_body = ParseBody(find->ColumnText(1), "an event about " + ref.name);
    if (!kept_body.ok()) return kept_body.status();
    Result<model::Event> kept = DecodeEvent(*kept_body);
    if (!kept.ok()) return kept.status();
    if (kept->involved_object.uid != ref.uid || kept->type != event.type ||
        kept->reason != event.reason || kept->message != event.message ||
        kept->source_component != event.source_component) {
      continue;
    }
    kept->count += event.count;
    kept->last_timestamp = event.last_timestamp;
    kept->metadata.resource_version = std::to_string(++*counter);
    Result<sqlite::Statement> update =
        db_.Prepare("UPDATE events SET resource_version = ?, body = ? WHERE seq = ?");
    if (!update.ok()) return update.status();
    Result<std::string> body = Serialize(*kept);
    if (!body.ok()) return body.status();
    update->Bind(1, *counter).Bind(2, *body).Bind(3, find->ColumnInt(0));
    Status s = update->Run();
    if (!s.ok()) return s;
    *out = std::move(kept).value();
    return Status::Ok();
  }

  if (event.metadata.name.empty()) {
    // Kubernetes' recorder: "<object>.<UnixNano in hex>"; kept increasing so names never repeat.
    int64_t nanos =
        std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    if (nanos <= last_event_nanos_) nanos = last_event_nanos_ + 1;
    last_event_nanos_ = nanos;
    char hex[24];
    std::snprintf(hex, sizeof(hex), "%" PRIx64, static_cast<uint64_t>(nanos));
    event.metadata.name = (ref.name.empty() ? std::string("event") : ref.name) + "." + hex;
  }
  Result<std::string> uid = NewUuid();
  if (!uid.ok()) return uid.status();
  event.metadata.uid = *uid;
  event.metadata.creation_timestamp = now_text;
  event.metadata.resource_version = std::to_string(++*counter);
  Result<std::string> body = Serialize(event);
  if (!body.ok()) return body.status();
  Result<sqlite::Statement> insert = db_.Prepare(
      "INSERT INTO events (namespace, name, involved_kind, involved_namespace, involved_name, "
      "resource_version, body) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, event.metadata.namespace_)
      .Bind(2, event.metadata.name)
      .Bind(3, ref.kind)
      .Bind(4, involved_namespace)
      .Bind(5, ref.name)
      .Bind(6, *counter)
      .Bind(7, *body);
  Status s = insert->Run();
  if (!s.ok()) return s;
  *out = std::move(event);
  return Status::Ok();
}

Status StateStore::Impl::PruneEvents() {
  Result<sqlite::Statement> stmt = db_.Prepare(
      "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY resource_version DESC "
      "LIMIT -1 OFFSET ?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, static_cast<int64_t>(options_.max_events < 0 ? 0 : options_.max_events));
  return stmt->Run();
}

Status StateStore::Impl::Apply(const WriteBatch& batch, std::vector<Object>* written) {
  if (batch.empty()) {
    if (written != nullptr) written->clear();
    return Status::Ok();
  }
  Result<sqlite::Transaction> txn = sqlite::Transaction::Begin(&db_, /*write=*/true);
  if (!txn.ok()) return txn.status();
  Result<int64_t> counter = ReadCounter();
  if (!counter.ok()) return counter.status();
  std::vector<Object> out(batch.size());
  bool any_event = false;
  for (size_t i = 0; i < batch.size(); ++i) {
    const WriteBatch::Op& op = batch.ops()[i];
    any_event |= op.type == WriteBatch::OpType::kEvent;
    Status s = Write(op, &*counter, &out[i]);
    if (!s.ok()) return s;  // the transaction rolls back
  }
  if (any_event) {
    Status s = PruneEvents();
    if (!s.ok()) return s;
  }
  Result<sqlite::Statement> bump =
      db_.Prepare("UPDATE meta SET value = ? WHERE key = 'resource_version'");
  if (!bump.ok()) return bump.status();
  bump->Bind(1, *counter);
  Status s = bump->Run();
  if (s.ok()) s = txn->Commit();
  if (!s.ok()) return s;
  if (written != nullptr) *written = std::move(out);
  return Status::Ok();
}

Result<Object> StateStore::Impl::Get(Kind kind, std::string_view namespace_,
                                     std::string_view name) {
  std::string ns = NormalizeNamespace(kind, namespace_);
  std::string n(name);
  Result<std::optional<Stored>> stored = Find(kind, ns, n);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return NotFound(kind, n);
  return std::move((*stored)->object);
}

Result<std::vector<Object>> StateStore::Impl::List(std::optional<Kind> kind,
                                                   std::string_view namespace_) {
  std::string sql = "SELECT kind, namespace, name, body FROM objects";
  if (kind) sql += " WHERE kind = ?1";
  if (kind && !namespace_.empty()) sql += " AND namespace = ?2";
  sql += " ORDER BY kind, namespace, name";
  Result<sqlite::Statement> stmt = db_.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  if (kind) stmt->Bind(1, ToString(*kind));
  if (kind && !namespace_.empty()) stmt->Bind(2, namespace_);
  std::vector<Object> objects;
  for (;;) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string kind_text = stmt->ColumnText(0);
    std::optional<Kind> row_kind = KindFromString(kind_text);
    std::string what =
        kind_text + " " + stmt->ColumnText(1) + "/" + stmt->ColumnText(2) + " in " + db_.path();
    if (!row_kind) return Status::Internal("state database holds an unknown kind: " + what);
    Result<json> body = ParseBody(stmt->ColumnText(3), what);
    if (!body.ok()) return body.status();
    Result<Object> object = DecodeObject(*row_kind, *body);
    if (!object.ok()) {
      return Status::Internal(what + " does not decode: " + object.status().message());
    }
    objects.push_back(std::move(object).value());
  }
  return objects;
}

Result<Snapshot> StateStore::Impl::ReadSnapshot() {
  Result<sqlite::Transaction> txn = sqlite::Transaction::Begin(&db_, /*write=*/false);
  if (!txn.ok()) return txn.status();
  Result<int64_t> counter = ReadCounter();
  if (!counter.ok()) return counter.status();
  Result<std::vector<Object>> objects = List(std::nullopt, "");
  if (!objects.ok()) return objects.status();
  Status s = txn->Commit();
  if (!s.ok()) return s;
  Snapshot snapshot;
  snapshot.resource_version = std::to_string(*counter);
  for (Object& object : *objects) {
    if (auto* sc = std::get_if<model::StorageClass>(&object)) {
      snapshot.storage_classes.push_back(std::move(*sc));
    } else if (auto* pv = std::get_if<model::PersistentVolume>(&object)) {
      snapshot.volumes.push_back(std::move(*pv));
    } else if (auto* pvc = std::get_if<model::PersistentVolumeClaim>(&object)) {
      snapshot.claims.push_back(std::move(*pvc));
    }
  }
  return snapshot;
}

Result<std::vector<model::Event>> StateStore::Impl::ListEvents(
    const model::ObjectReference* involved, std::string_view namespace_) {
  std::string sql = "SELECT body FROM events";
  std::string involved_namespace;
  if (involved != nullptr) {
    std::optional<Kind> kind = KindFromString(involved->kind);
    involved_namespace =
        kind ? NormalizeNamespace(*kind, involved->namespace_) : involved->namespace_;
    sql += " WHERE involved_kind = ?1 AND involved_namespace = ?2 AND involved_name = ?3";
  } else if (!namespace_.empty()) {
    sql += " WHERE namespace = ?1";
  }
  sql += " ORDER BY seq";
  Result<sqlite::Statement> stmt = db_.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  if (involved != nullptr) {
    stmt->Bind(1, involved->kind).Bind(2, involved_namespace).Bind(3, involved->name);
  } else if (!namespace_.empty()) {
    stmt->Bind(1, namespace_);
  }
  std::vector<model::Event> events;
  for (;;) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<json> body = ParseBody(stmt->ColumnText(0), "an event in " + db_.path());
    if (!body.ok()) return body.status();
    Result<model::Event> event = DecodeEvent(*body);
    if (!event.ok()) return event.status();
    if (involved != nullptr && !involved->uid.empty() &&
        event->involved_object.uid != involved->uid) {
      continue;  // about an earlier object of the same name
    }
    events.push_back(std::move(event).value());
  }
  return events;
}

namespace {

// The state directory holds every object and lease: root's alone. An older claimfsd left it 0755
// with state.db 0644; tighten what is there, and create the database 0600 whatever the umask
// (SQLite gives its -wal and -shm files the database file's mode).
Status RestrictStateDirectory(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Status::FromErrno("cannot stat " + dir, errno);
  if ((st.st_mode & 07777) != kStateDirectoryMode) {
    if (::chmod(dir.c_str(), kStateDirectoryMode) != 0) {
      return Status::FromErrno("cannot set the mode of state directory " + dir, errno);
    }
    log::Info("state directory {}: mode {:04o} -> {:04o}", dir, st.st_mode & 07777,
              kStateDirectoryMode);
  }
  std::string db = dir + "/" + kDatabaseFileName;
  int fd = ::open(db.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, kStateFileMode);
  if (fd < 0) return Status::FromErrno("cannot create state database " + db, errno);
  ::close(fd);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string path = entry.path().string();
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if ((st.st_mode & 07777) == kStateFileMode) continue;
    if (::chmod(path.c_str(), kStateFileMode) != 0) {
      return Status::FromErrno("cannot set the mode of " + path, errno);
    }
    log::Info("{}: mode {:04o} -> {:04o}", path, st.st_mode & 07777, kStateFileMode);
  }
  if (ec) return Status::FromErrno("cannot list state directory " + dir, ec.value());
  return Status::Ok();
}

std::string TrimTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// Once per database: the volumes an earlier claimfsd carved from a pool (path <pool>/<name>)
// become records of directories it created, identified by what is there now.
Status AdoptPoolVolumes(sqlite::Database* db, const std::vector<std::string>& pool_paths) {
  Result<sqlite::Transaction> txn = sqlite::Transaction::Begin(db, /*write=*/true);
  if (!txn.ok()) return txn.status();
  Result<int64_t> adopted =
      db->QueryInt("SELECT value FROM meta WHERE key = 'pool_volumes_adopted'");
  if (!adopted.ok()) return adopted.status();
  if (*adopted != 0) return Status::Ok();
  Result<sqlite::Statement> volumes = db->Prepare(
      "SELECT name, coalesce(json_extract(body, '$.spec.hostPath.path'),"
      " json_extract(body, '$.spec.local.path'), '') FROM objects"
      " WHERE kind = 'PersistentVolume'");
  if (!volumes.ok()) return volumes.status();
  Result<sqlite::Statement> insert = db->Prepare(
      "INSERT OR IGNORE INTO created_directories (path, volume, device, inode)"
      " VALUES (?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  while (true) {
    Result<bool> row = volumes->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string name = volumes->ColumnText(0);
    std::string path = volumes->ColumnText(1);
    bool in_pool = false;
    for (const std::string& pool : pool_paths) {
      in_pool = in_pool || path == TrimTrailingSlashes(pool) + "/" + name;
    }
    struct stat st;
    if (!in_pool || ::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    insert->Reset();
    insert->Bind(1, path)
        .Bind(2, name)
        .Bind(3, static_cast<int64_t>(st.st_dev))
        .Bind(4, static_cast<int64_t>(st.st_ino));
    Status s = insert->Run();
    if (!s.ok()) return s;
    log::Info("volume {}: {} counts as a directory claimfsd created (carved from a pool)", name,
              path);
  }
  Status s = db->Exec("UPDATE meta SET value = 1 WHERE key = 'pool_volumes_adopted'");
  if (!s.ok()) return s;
  return txn->Commit();
}

}  // namespace

StateStore::StateStore(std::filesystem::path state_dir, std::unique_ptr<Impl> impl)
    : state_dir_(std::move(state_dir)), impl_(std::move(impl)) {}

StateStore::~StateStore() = default;

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::filesystem::path& state_dir,
                                                     const Options& options) {
  const std::string dir = state_dir.string();
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return Status::FromErrno("cannot create state directory " + dir, ec.value());
  Status restricted = RestrictStateDirectory(dir);
  if (!restricted.ok()) return restricted;

  Result<LockFile> lock = LockFile::Acquire((state_dir / kLockFileName).string(), dir);
  if (!lock.ok()) return lock.status();

  Result<sqlite::Database> db =
      sqlite::Database::Open((state_dir / kDatabaseFileName).string(), /*create=*/true);
  if (!db.ok()) return db.status();
  sqlite3_busy_timeout(db->get(), static_cast<int>(options.busy_timeout.count()));

  // Refuse a database from a newer claimfsd before anything below writes to it.
  Status s = CheckSchema(&*db);
  if (!s.ok()) return s;
  Result<std::string> mode = db->QueryText("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") {
    return Status::IOError("state database " + db->path() +
                           ": cannot switch to WAL journaling (journal_mode is " + *mode + ")");
  }
  // FULL: a transaction that committed survives a power loss, not only a crash.
  s = db->Exec("PRAGMA synchronous = FULL");
  if (!s.ok()) return s;
  Result<int64_t> from = db->QueryInt("PRAGMA user_version");
  if (!from.ok()) return from.status();
  s = Migrate(&*db);
  if (!s.ok()) return s;
  if (!options.pool_paths.empty()) {
    s = AdoptPoolVolumes(&*db, options.pool_paths);
    if (!s.ok()) return s;
  }
  if (*from == 0) {
    s = SyncDirectory(dir);
    if (!s.ok()) return s;
    log::Info("created state database {} (schema version {})", db->path(), LatestSchemaVersion());
  } else if (*from != LatestSchemaVersion()) {
    log::Info("state database {} migrated from schema version {} to {}", db->path(), *from,
              LatestSchemaVersion());
  }
  auto impl = std::make_unique<Impl>(std::move(lock).value(), std::move(db).value(), options);
  return std::unique_ptr<StateStore>(new StateStore(state_dir, std::move(impl)));
}

Status StateStore::Apply(const WriteBatch& batch, std::vector<Object>* written) {
  std::lock_guard lock(mu_);
  return impl_->Apply(batch, written);
}

namespace {

template <typename T>
Result<T> ApplyOne(StateStore* store, const WriteBatch& batch) {
  std::vector<Object> written;
  Status s = store->Apply(batch, &written);
  if (!s.ok()) return s;
  return std::get<T>(std::move(written[0]));
}

template <typename T>
Result<T> As(Result<Object> object) {
  if (!object.ok()) return object.status();
  return std::get<T>(std::move(object).value());
}

template <typename T>
Result<std::vector<T>> AllAs(Result<std::vector<Object>> objects) {
  if (!objects.ok()) return objects.status();
  std::vector<T> out;
  out.reserve(objects->size());
  for (Object& o : *objects) out.push_back(std::get<T>(std::move(o)));
  return out;
}

}  // namespace

Result<model::StorageClass> StateStore::Create(model::StorageClass object) {
  WriteBatch batch;
  batch.Create(std::move(object));
  return ApplyOne<model::StorageClass>(this, batch);
}

Result<model::PersistentVolume> StateStore::Create(model::PersistentVolume object) {
  WriteBatch batch;
  batch.Create(std::move(object));
  return ApplyOne<model::PersistentVolume>(this, batch);
}

Result<model::PersistentVolumeClaim> StateStore::Create(model::PersistentVolumeClaim object) {
  WriteBatch batch;
  batch.Create(std::move(object));
  return ApplyOne<model::PersistentVolumeClaim>(this, batch);
}

Result<model::StorageClass> StateStore::Update(model::StorageClass object) {
  WriteBatch batch;
  batch.Update(std::move(object));
  return ApplyOne<model::StorageClass>(this, batch);
}

Result<model::PersistentVolume> StateStore::Update(model::PersistentVolume object) {
  WriteBatch batch;
  batch.Update(std::move(object));
  return ApplyOne<model::PersistentVolume>(this, batch);
}

Result<model::PersistentVolumeClaim> StateStore::Update(model::PersistentVolumeClaim object) {
  WriteBatch batch;
  batch.Update(std::move(object));
  return ApplyOne<model::PersistentVolumeClaim>(this, batch);
}

Status StateStore::Delete(Kind kind, std::string_view namespace_, std::string_view name,
                          std::string_view expected_resource_version) {
  WriteBatch batch;
  batch.Delete(kind, std::string(namespace_), std::string(name),
               std::string(expected_resource_version));
  return Apply(batch);
}

Result<Object> StateStore::Get(Kind kind, std::string_view namespace_, std::string_view name) {
  std::lock_guard lock(mu_);
  return impl_->Get(kind, namespace_, name);
}

Result<std::vector<Object>> StateStore::List(Kind kind, std::string_view namespace_) {
  std::lock_guard lock(mu_);
  return impl_->List(kind, namespace_);
}

Result<model::StorageClass> StateStore::GetStorageClass(std::string_view name) {
  std::lock_guard lock(mu_);
  return As<model::StorageClass>(impl_->Get(Kind::kStorageClass, "", name));
}

Result<model::PersistentVolume> StateStore::GetPersistentVolume(std::string_view name) {
  std::lock_guard lock(mu_);
  return As<model::PersistentVolume>(impl_->Get(Kind::kPersistentVolume, "", name));
}

Result<model::PersistentVolumeClaim> StateStore::GetPersistentVolumeClaim(
    std::string_view namespace_, std::string_view name) {
  std::lock_guard lock(mu_);
  return As<model::PersistentVolumeClaim>(
      impl_->Get(Kind::kPersistentVolumeClaim, namespace_, name));
}

Result<std::vector<model::StorageClass>> StateStore::ListStorageClasses() {
  std::lock_guard lock(mu_);
  return AllAs<model::StorageClass>(impl_->List(Kind::kStorageClass, ""));
}

Result<std::vector<model::PersistentVolume>> StateStore::ListPersistentVolumes() {
  std::lock_guard lock(mu_);
  return AllAs<model::PersistentVolume>(impl_->List(Kind::kPersistentVolume, ""));
}

Result<std::vector<model::PersistentVolumeClaim>> StateStore::ListPersistentVolumeClaims(
    std::string_view namespace_) {
  std::lock_guard lock(mu_);
  return AllAs<model::PersistentVolumeClaim>(impl_->List(Kind::kPersistentVolumeClaim, namespace_));
}

Result<Snapshot> StateStore::ReadSnapshot() {
  std::lock_guard lock(mu_);
  return impl_->ReadSnapshot();
}

Result<model::Event> StateStore::AppendEvent(model::Event event) {
  WriteBatch batch;
  batch.AddEvent(std::move(event));
  return ApplyOne<model::Event>(this, batch);
}

Result<std::vector<model::Event>> StateStore::ListEvents(
    const model::ObjectReference& involved_object) {
  std::lock_guard lock(mu_);
  return impl_->ListEvents(&involved_object, "");
}

Result<std::vector<model::Event>> StateStore::ListAllEvents(std::string_view namespace_) {
  std::lock_guard lock(mu_);
  return impl_->ListEvents(nullptr, namespace_);
}

Status StateStore::RecordCreatedDirectory(const CreatedDirectory& directory) {
  std::lock_guard lock(mu_);
  return impl_->RecordCreatedDirectory(directory);
}

Status StateStore::ForgetCreatedDirectory(std::string_view path) {
  std::lock_guard lock(mu_);
  return impl_->ForgetCreatedDirectory(path);
}

Result<std::vector<CreatedDirectory>> StateStore::ListCreatedDirectories() {
  std::lock_guard lock(mu_);
  return impl_->ListCreatedDirectories();
}

Result<std::string> StateStore::ResourceVersion() {
  std::lock_guard lock(mu_);
  Result<int64_t> counter = impl_->ReadCounter();
  if (!counter.ok()) return counter.status();
  return std::to_string(*counter);
}

}  // namespace claimfs::store
