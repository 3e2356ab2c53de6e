// The state database's schema: an ordered list of migrations, one per schema version, tracked in
// PRAGMA user_version.
#pragma once

#include <span>
#include <string_view>

#include "claimfs/common/status.h"
#include "store/sqlite.h"

namespace claimfs::store {

struct Migration {
  int version;           // user_version once this step is applied
  std::string_view sql;  // the step, run in one transaction together with the version bump
};

// Every migration in order; the last one's version is the schema this binary writes.
std::span<const Migration> Migrations();
int LatestSchemaVersion();

// Fails (kUnavailable) on a database whose version is newer than this binary knows, and
// (kInvalid) on a non-empty SQLite file with no version (not a claimfs database). Reads only.
Status CheckSchema(sqlite::Database* db);

// Brings `db` to LatestSchemaVersion(), one transaction per step, so a crash leaves it at a whole
// version. Runs CheckSchema() first and leaves a database it refuses untouched.
Status Migrate(sqlite::Database* db);

}  // namespace claimfs::store
