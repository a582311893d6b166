#include <fmt/format.h>
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <limits>

#include "harness/environment.h"
#include "harness/sqlite.h"
#include "harness/store.h"
#include "harness/suite.h"
#include "tests/helpers.h"

using namespace ctxbench;

namespace {

Suite tiny_suite() {
  return parse_suite(Json::parse(R"({"name": "tiny", "engines": [{"name": "dense"}],
      "tasks": [{"name": "attention_needle"}], "context_lengths": [32, 64]})"),
                     "tiny.json");
}

void set_user_version(const std::string& path, int version) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, ("PRAGMA user_version = " + std::to_string(version)).c_str(), nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  sqlite3_close(db);
}

}  // namespace

TEST_CASE("a new database is created at the current schema version", "[store]") {
  testing::TempDir dir;
  Store store(dir.file("a.db"));
  CHECK(store.schema_version() == kSchemaVersion);
  CHECK(store.runs().empty());
}

TEST_CASE("a database of a newer schema is refused with a clear message", "[store]") {
  testing::TempDir dir;
  { Store store(dir.file("new.db")); }
  set_user_version(dir.file("new.db"), kSchemaVersion + 1);
  CHECK_THROWS_WITH(Store(dir.file("new.db")),
                    Catch::Contains("new.db") && Catch::Contains("newer than this ctxbench"));
}

TEST_CASE("a file that is not a database is refused naming the file", "[store]") {
  testing::TempDir dir;
  testing::write_file(dir.file("text.db"), std::string(4096, 'x'));
  CHECK_THROWS_AS(Store(dir.file("text.db")), InputError);
}

TEST_CASE("cells round-trip with their measurements, a retried cell replaces the failed attempt", "[store]") {
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  const Suite suite = tiny_suite();
  const auto cells = suite.cells();
  const auto run = store.begin_run(suite, current_environment());
  store.save_cell(run, cells[0], "failed", "boom", 0.5, {});
  CHECK(store.finished_keys(run).empty());
  store.save_cell(run, cells[0], "ok", "", 1.0,
                  {{"needle_recall", "ratio", {1.0}}, {"decode_seconds_per_step", "s", {3, 1, 2}}});
  store.save_cell(run, cells[1], "failed", "out of memory", 0.1, {});
  const auto stored = store.cells(run);
  REQUIRE(stored.size() == 2);
  CHECK(stored[0].key == cells[0].key);
  CHECK(stored[0].status == "ok");
  REQUIRE(stored[0].measurements.size() == 2);
  CHECK(stored[0].measurements[0].metric == "decode_seconds_per_step");
  CHECK(stored[0].measurements[0].value() == 2.0);
  CHECK(stored[0].measurements[0].repetitions == std::vector<double>{3, 1, 2});
  CHECK(stored[1].error == "out of memory");
  CHECK(store.finished_keys(run) == std::vector<std::string>{cells[0].key});
  CHECK(store.latest_run("tiny") == run);
  CHECK_FALSE(store.latest_run("other").has_value());
  const auto info = store.run(run);
  REQUIRE(info.has_value());
  CHECK(info->cores > 0);
  CHECK_FALSE(info->cpu_model.empty());
}

TEST_CASE("a database of an older schema is migrated on open and keeps its runs", "[store]") {
  testing::TempDir dir;
  {
    Store store(dir.file("old.db"));
    store.begin_run(tiny_suite(), current_environment());
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.file("old.db").c_str(), &db) == SQLITE_OK);
  for (const char* column : {"runs DROP COLUMN shard", "runs DROP COLUMN pid", "runs DROP COLUMN process_start",
                             "cells DROP COLUMN load_average", "cells DROP COLUMN cpu_pressure",
                             "cells DROP COLUMN memory_pressure", "cells DROP COLUMN under_load"}) {
    REQUIRE(sqlite3_exec(db, fmt::format("ALTER TABLE {}", column).c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  sqlite3_close(db);
  set_user_version(dir.file("old.db"), 1);  // now exactly a version-1 database
  Store store(dir.file("old.db"));
  CHECK(store.schema_version() == kSchemaVersion);
  REQUIRE(store.runs().size() == 1);
  CHECK(store.runs()[0].suite == "tiny");
  CHECK(store.runs()[0].shard.empty());
}

TEST_CASE("a version-4 database gains the load columns on open, and its cells read as stored without load", "[store]") {
  testing::TempDir dir;
  const std::string path = dir.file("v4.db");
  const Suite suite = tiny_suite();
  {
    Store store(path);
    const auto run = store.begin_run(suite, current_environment());
    store.save_cell(run, suite.cells()[0], "ok", "", 1.0, {{"needle_recall", "ratio", {1.0}}});
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  for (const char* column : {"load_average", "cpu_pressure", "memory_pressure", "under_load"}) {
    REQUIRE(sqlite3_exec(db, fmt::format("ALTER TABLE cells DROP COLUMN {}", column).c_str(), nullptr, nullptr,
                         nullptr) == SQLITE_OK);
  }
  sqlite3_close(db);
  set_user_version(path, 4);
  Store store(path);
  CHECK(store.schema_version() == kSchemaVersion);
  const auto old_cells = store.cells(1);
  REQUIRE(old_cells.size() == 1);
  CHECK_FALSE(old_cells[0].load.has_value());
  CHECK_FALSE(old_cells[0].under_load);
  CHECK(old_cells[0].measurements.at(0).value() == 1.0);
  // The new columns take figures: the migration added them.
  const MachineLoad busy{5.0, 42.0, std::nullopt};
  store.save_cell(1, suite.cells()[1], "ok", "", 1.0, {}, {}, busy);
  const auto cells = store.cells(1);
  REQUIRE(cells.size() == 2);
  REQUIRE(cells[1].load.has_value());
  CHECK(cells[1].load->load_average == 5.0);
  CHECK(cells[1].load->cpu_pressure == 42.0);
  CHECK_FALSE(cells[1].load->memory_pressure.has_value());
  CHECK(cells[1].under_load);
}

TEST_CASE("a transaction that throws leaves nothing behind, and a non-finite value is stored as NULL", "[store]") {
  testing::TempDir dir;
  sqlite::Database db(dir.file("h.db"));
  db.exec("CREATE TABLE t (x REAL)");
  const auto half_way = [&] {
    db.prepare("INSERT INTO t VALUES (1)").step();
    throw std::runtime_error("half-way");
  };
  CHECK_THROWS_WITH(db.transaction(half_way), "half-way");
  const double inf = std::numeric_limits<double>::infinity();
  db.transaction([&] { db.prepare("INSERT INTO t VALUES (?)").bind_finite_or_null(1, inf).step(); });
  auto rows = db.prepare("SELECT x, x IS NULL FROM t");
  REQUIRE(rows.step());
  CHECK(rows.real_or(0, -1.0) == -1.0);
  CHECK(rows.integer(1) == 1);
  CHECK_FALSE(rows.step());
}
