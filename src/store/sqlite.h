// A thin RAII layer over the SQLite C API: one connection, prepared statements, and the one
// place an SQLite result code becomes a Status.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "claimfs/common/status.h"

namespace claimfs::store::sqlite {

// "context: <sqlite message>"; SQLITE_BUSY/LOCKED map to kUnavailable, the rest to kIOError.
Status Error(sqlite3* db, int rc, std::string_view context);

class Statement;

// An open database connection. Not thread-safe: the owner serializes every use.
class Database {
 public:
  Database() = default;
  ~Database();
  Database(Database&& other) noexcept : db_(other.db_), path_(std::move(other.path_)) {
    other.db_ = nullptr;
  }
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Opens (creating when `create`) the database file at `path`.
  static Result<Database> Open(const std::string& path, bool create);

  // Runs one or more statements that return no rows.
  Status Exec(std::string_view sql);
  // Runs a statement whose first row's first column is an integer (e.g. "PRAGMA user_version").
  Result<int64_t> QueryInt(std::string_view sql);
  // The same for a text result.
  Result<std::string> QueryText(std::string_view sql);
  Result<Statement> Prepare(std::string_view sql);

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

// A prepared statement. Bind indexes start at 1, column indexes at 0, as in SQLite.
class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, int64_t value);

  // Advances to the next row: true when there is one, false when done, an error otherwise.
  // Errors from binding surface here.
  Result<bool> Step();
  // Runs a statement that returns no rows to completion.
  Status Run();
  // Makes the statement reusable with new bindings.
  void Reset();

  int64_t ColumnInt(int index) const;
  std::string ColumnText(int index) const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = SQLITE_OK;  // first failure of a Bind(), reported by Step()
};

// A transaction that rolls back unless committed. Begin() with `write` takes SQLite's write lock
// at once (BEGIN IMMEDIATE), so a writer never fails half-way with a lock upgrade.
class Transaction {
 public:
  static Result<Transaction> Begin(Database* db, bool write);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();

  Status Commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;  // null once committed or rolled back
};

}  // namespace claimfs::store::sqlite
