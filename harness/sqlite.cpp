#include "harness/sqlite.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "core/params.h"

namespace ctxbench::sqlite {

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
    throw std::runtime_error(fmt::format("sqlite: {} in: {}", sqlite3_errmsg(db), sql));
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
Statement& Statement::bind(int i, int v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
Statement& Statement::bind(int i, double v) { return check(sqlite3_bind_double(stmt_, i, v)); }
Statement& Statement::bind(int i, const std::string& v) {
  return check(sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
}
Statement& Statement::bind_null(int i) { return check(sqlite3_bind_null(stmt_, i)); }
Statement& Statement::bind_finite_or_null(int i, double v) { return std::isfinite(v) ? bind(i, v) : bind_null(i); }

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw std::runtime_error(fmt::format("sqlite: {}", sqlite3_errmsg(db_)));
}

std::int64_t Statement::integer(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::real(int col) const { return sqlite3_column_double(stmt_, col); }
double Statement::real_or(int col, double if_null) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL ? if_null : real(col);
}
std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  return p ? reinterpret_cast<const char*>(p) : "";
}

Statement& Statement::check(int rc) {
  if (rc != SQLITE_OK) throw std::runtime_error(fmt::format("sqlite bind: {}", sqlite3_errmsg(db_)));
  return *this;
}

Database::Database(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw InputError(fmt::format("{}: cannot open database: {}", path, message));
  }
  try {
    configure();
  } catch (...) {
    sqlite3_close(db_);  // the destructor does not run for a constructor that throws
    throw;
  }
}

Database::~Database() { sqlite3_close(db_); }

void Database::configure() {
  sqlite3_busy_timeout(db_, 60000);
  enable_wal();
  exec("PRAGMA synchronous=NORMAL");
  exec("PRAGMA foreign_keys=ON");
}

// Switching a new file to WAL takes an exclusive lock for which SQLite does not call the busy handler, so
// processes that open the same new database together wait here instead of failing.
void Database::enable_wal() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    try {
      exec("PRAGMA journal_mode=WAL");
      return;
    } catch (const std::runtime_error&) {
      if (sqlite3_errcode(db_) != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Database::exec(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    throw std::runtime_error(fmt::format("sqlite: {}", text));
  }
}

std::int64_t Database::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }

}  // namespace ctxbench::sqlite
