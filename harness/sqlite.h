// The one SQLite wrapper of the results database: a connection set up for several processes writing one file
// (busy timeout, WAL, foreign keys), prepared statements, and write transactions. Each process opens one
// connection (the Store's); everything that keeps state in the database works on it.
#pragma once

#include <cstdint>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace ctxbench::sqlite {

// One prepared statement; binds by position (from 1), reads columns by index (from 0), finalizes on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, int v);
  Statement& bind(int i, double v);
  Statement& bind(int i, const std::string& v);
  Statement& bind_null(int i);
  // SQL has no infinities or NaN: a non-finite value is stored as NULL.
  Statement& bind_finite_or_null(int i, double v);
  // Ready to be bound and stepped again.
  void reset();

  // True while there is a row.
  bool step();
  std::int64_t integer(int col) const;
  double real(int col) const;
  // The value, or `if_null` for NULL.
  double real_or(int col, double if_null) const;
  std::string text(int col) const;

 private:
  Statement& check(int rc);
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  // Opens or creates the file in WAL mode. Throws InputError when it cannot be opened, std::runtime_error when
  // it is not a database.
  explicit Database(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }
  void exec(const std::string& sql);
  Statement prepare(const std::string& sql) { return Statement(db_, sql); }
  std::int64_t last_insert_id() const;
  // Rows changed by the last statement.
  int changes() const;

  // Runs f inside a write transaction that takes the lock up front, so concurrent writers queue on the busy
  // timeout instead of failing half-way.
  template <typename F>
  void transaction(F&& f) {
    exec("BEGIN IMMEDIATE");
    try {
      f();
      exec("COMMIT");
    } catch (...) {
      exec("ROLLBACK");
      throw;
    }
  }

 private:
  void configure();
  void enable_wal();

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace ctxbench::sqlite
