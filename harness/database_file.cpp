#include "harness/database_file.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <filesystem>

#include "core/params.h"
#include "harness/store.h"

namespace ctxbench {

void check_readable_database(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    throw InputError(fmt::format("{}: no such database (`ctxbench run SUITE.json --db {}` creates it)", path, path));
  }
  sqlite3* db = nullptr;
  const int opened = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  int version = -1, tables = -1, has_runs = 0;
  if (opened == SQLITE_OK) {
    sqlite3_busy_timeout(db, 60000);
    sqlite3_stmt* stmt = nullptr;
    const char* sql =
        "SELECT (SELECT user_version FROM pragma_user_version), "
        "(SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'), "
        "(SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'runs')";
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
      version = sqlite3_column_int(stmt, 0);
      tables = sqlite3_column_int(stmt, 1);
      has_runs = sqlite3_column_int(stmt, 2);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  if (version < 0) throw InputError(fmt::format("{}: not an SQLite database", path));
  if (version > kSchemaVersion) {
    throw InputError(
        fmt::format("{}: database schema version {} is newer than this ctxbench reads ({}); use a newer ctxbench", path,
                    version, kSchemaVersion));
  }
  if (tables == 0) throw InputError(fmt::format("{}: the database is empty: it holds no runs yet", path));
  if (version == 0 || !has_runs) {
    throw InputError(
        fmt::format("{}: not a ctxbench results database (schema version {}, no ctxbench tables)", path, version));
  }
}

}  // namespace ctxbench
