#include "store/sqlite.h"

#include <utility>

namespace claimfs::store::sqlite {

Status Error(sqlite3* db, int rc, std::string_view context) {
  std::string msg(context);
  msg += ": ";
  // The connection's message is the detailed one, but only when it belongs to this failure.
  if (db != nullptr && sqlite3_errcode(db) == rc) {
    msg += sqlite3_errmsg(db);
  } else {
    msg += sqlite3_errstr(rc);
  }
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return Status::Unavailable(std::move(msg));
  }
  if (primary == SQLITE_CONSTRAINT) return Status::AlreadyExists(std::move(msg));
  return Status::IOError(std::move(msg));
}

Database::~Database() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

Result<Database> Database::Open(const std::string& path, bool create) {
  Database db;
  db.path_ = path;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db.db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    return Error(db.db_, rc, "cannot open state database " + path);
  }
  sqlite3_extended_result_codes(db.db_, 1);
  return db;
}

Status Database::Exec(std::string_view sql) {
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(db_, rc, "state database " + path_);
  return Status::Ok();
}

Result<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return Error(db_, rc,
                 "state database " + path_ + ": cannot prepare \"" + std::string(sql) + "\"");
  }
  return Statement(db_, stmt);
}

Result<int64_t> Database::QueryInt(std::string_view sql) {
  Result<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row)
    return Status::Internal("state database " + path_ + ": no result for " + std::string(sql));
  return stmt->ColumnInt(0);
}

Result<std::string> Database::QueryText(std::string_view sql) {
  Result<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row)
    return Status::Internal("state database " + path_ + ": no result for " + std::string(sql));
  return stmt->ColumnText(0);
}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_rc_ = other.bind_rc_;
  }
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  int rc =
      sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Result<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) return Error(db_, bind_rc_, "cannot bind a statement parameter");
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, rc, std::string("state database ") + sqlite3_db_filename(db_, "main"));
}

Status Statement::Run() {
  Result<bool> row = Step();
  while (row.ok() && *row) row = Step();
  return row.ok() ? Status::Ok() : row.status();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = SQLITE_OK;
}

int64_t Statement::ColumnInt(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string Statement::ColumnText(int index) const {
  const unsigned char* text = sqlite3_column_text(stmt_, index);
  int size = sqlite3_column_bytes(stmt_, index);
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text), size);
}

Result<Transaction> Transaction::Begin(Database* db, bool write) {
  Status s = db->Exec(write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  if (!s.ok()) return s;
  return Transaction(db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) {
    // A failed ROLLBACK leaves nothing to do: SQLite rolls back itself when the connection or the
    // process goes away.
    (void)db_->Exec("ROLLBACK");
  }
}

Status Transaction::Commit() {
  Status s = db_->Exec("COMMIT");
  if (s.ok()) db_ = nullptr;
  return s;
}

}  // namespace claimfs::store::sqlite
