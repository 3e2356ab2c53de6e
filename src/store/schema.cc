#include "store/schema.h"

#include <string>

namespace claimfs::store {
namespace {

// Never edit a step that has shipped: a database at that version already ran it. Add a step.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('resource_version', 0);
CREATE TABLE objects (
  kind TEXT NOT NULL,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  resource_version INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
)sql"},
    {2, R"sql(
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  involved_kind TEXT NOT NULL,
  involved_namespace TEXT NOT NULL,
  involved_name TEXT NOT NULL,
  resource_version INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE UNIQUE INDEX events_by_name ON events (namespace, name);
CREATE INDEX events_by_object ON events (involved_kind, involved_namespace, involved_name);
CREATE INDEX events_by_version ON events (resource_version);
)sql"},
    // uid and generation move out of the JSON body into columns, so an object can be found by
    // its uid (a claimRef names one) and two objects can never share one.
    {3, R"sql(
ALTER TABLE objects ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
UPDATE objects SET
  uid = coalesce(json_extract(body, '$.metadata.uid'), ''),
  generation = coalesce(json_extract(body, '$.metadata.generation'), 0);
CREATE UNIQUE INDEX objects_by_uid ON objects (uid) WHERE uid != '';
)sql"},
    // The directories claimfsd made, the only ones Delete and Recycle may empty. No API client
    // writes here (an annotation, which any client may set, decided before). The volumes that
    // earlier versions carved from a pool are adopted once, at the first open that knows the
    // pools (StateStore::Open): meta 'pool_volumes_adopted' goes from 0 to 1.
    {4, R"sql(
CREATE TABLE created_directories (
  path TEXT PRIMARY KEY,
  volume TEXT NOT NULL,
  device INTEGER NOT NULL,
  inode INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('pool_volumes_adopted', 0);
)sql"},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

int LatestSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

Status CheckSchema(sqlite::Database* db) {
  const std::string& path = db->path();
  Result<int64_t> version = db->QueryInt("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (*version > LatestSchemaVersion()) {
    return Status::Unavailable("state database " + path + " has schema version " +
                               std::to_string(*version) +
                               ", newer than this claimfsd understands (" +
                               std::to_string(LatestSchemaVersion()) + "); upgrade claimfsd");
  }
  if (*version == 0) {
    Result<int64_t> tables = db->QueryInt("SELECT count(*) FROM sqlite_schema");
    if (!tables.ok()) return tables.status();
    if (*tables > 0) {
      return Status::Invalid("state database " + path +
                             " is an SQLite database but not a claimfs one (it has tables and no "
                             "schema version); refusing to touch it");
    }
  }
  return Status::Ok();
}

Status Migrate(sqlite::Database* db) {
  const std::string& path = db->path();
  Status s = CheckSchema(db);
  if (!s.ok()) return s;
  Result<int64_t> version = db->QueryInt("PRAGMA user_version");
  if (!version.ok()) return version.status();
  for (const Migration& step : kMigrations) {
    if (step.version <= *version) continue;
    Result<sqlite::Transaction> txn = sqlite::Transaction::Begin(db, /*write=*/true);
    if (!txn.ok()) return txn.status();
    // Another connection may have migrated while this one waited for the write lock.
    Result<int64_t> now = db->QueryInt("PRAGMA user_version");
    if (!now.ok()) return now.status();
    if (*now >= step.version) continue;
    s = db->Exec(step.sql);
    if (s.ok()) s = db->Exec("PRAGMA user_version = " + std::to_string(step.version));
    if (s.ok()) s = txn->Commit();
    if (!s.ok()) {
      return Status(s.code(), "cannot migrate state database " + path + " to schema version " +
                                  std::to_string(step.version) + ": " + s.message());
    }
  }
  return Status::Ok();
}

}  // namespace claimfs::store
