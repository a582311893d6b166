#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "harness/runner.h"
#include "harness/shard.h"
#include "tests/helpers.h"

using namespace ctxbench;

namespace {

Suite suite_named(const std::string& name, int needles = 4) {
  Json doc = Json::parse(R"({"engines": [{"name": "dense"}],
      "tasks": [{"name": "attention_needle", "params": {"heads_q": 2, "heads_kv": 1, "head_dim": 16, "queries": 1}}],
      "context_lengths": [32, 64, 96, 200, 333], "depths": [0, 30, 60, 100], "seeds": [0, 1]})");
  doc["name"] = name;
  doc["tasks"][0]["params"]["needles"] = needles;
  return parse_suite(doc, name + ".json");
}

// Deterministic values of every stored cell of a database's non-shard (or only) run, by key.
std::map<std::string, double> values(Store& store, std::int64_t run) {
  std::map<std::string, double> out;
  for (const auto& c : store.cells(run)) {
    for (const auto& m : c.measurements) {
      if (m.metric == "needle_recall" || m.metric == "output_rel_error" || m.metric == "kv_bytes_read") {
        out[c.key + "/" + m.metric] = m.value();
      }
    }
  }
  return out;
}

RunSummary run_quietly(const Suite& suite, Store& store, Shard shard, bool resume = false) {
  std::FILE* sink = std::fopen("/dev/null", "w");
  const auto summary = run_suite(suite, store, {.resume = resume, .log = sink, .shard = shard});
  std::fclose(sink);
  return summary;
}

}  // namespace

TEST_CASE("shards cover every cell exactly once and balance the estimated cost", "[shard]") {
  const auto cells = suite_named("s").cells();
  for (int n = 1; n <= 7; ++n) {
    const auto assignment = assign_shards(cells, n);
    std::vector<double> load(n, 0.0);
    std::size_t covered = 0;
    for (int i = 0; i < n; ++i) covered += cells_of_shard(cells, {i, n}).size();
    CHECK(covered == cells.size());
    for (std::size_t c = 0; c < cells.size(); ++c) load[assignment[c]] += estimated_cost(cells[c]);
    const double heaviest_cell = 333;
    CHECK(*std::max_element(load.begin(), load.end()) - *std::min_element(load.begin(), load.end()) <= heaviest_cell);
    CHECK(assign_shards(cells, n) == assignment);  // deterministic
  }
}

TEST_CASE("shard values I/N are parsed, bad ones are named", "[shard]") {
  CHECK(Shard::parse("2/5").index == 2);
  CHECK(Shard::parse("2/5").count == 5);
  for (const char* bad : {"5/5", "-1/3", "1", "a/b", "1/0", "1/2x"}) {
    CHECK_THROWS_WITH(Shard::parse(bad), Catch::Contains(std::string("--shard ") + bad));
  }
}

TEST_CASE("merging shards gives the single-machine run, merging again changes nothing, a killed shard resumes",
          "[shard][merge]") {
  testing::TempDir dir;
  const Suite suite = suite_named("m");
  const int n = 3;
  for (int i = 0; i < n; ++i) {
    Store shard(dir.file("shard" + std::to_string(i) + ".db"));
    run_quietly(suite, shard, {i, n});
  }
  {
    // Shard 1 "was killed": two of its cells never got stored. A rerun with --resume runs only those.
    sqlite3* db = nullptr;
    sqlite3_open(dir.file("shard1.db").c_str(), &db);
    sqlite3_exec(db, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
    sqlite3_exec(db, "DELETE FROM cells WHERE id IN (SELECT id FROM cells ORDER BY id DESC LIMIT 2)", nullptr, nullptr,
                 nullptr);
    sqlite3_close(db);
    Store shard(dir.file("shard1.db"));
    const auto summary = run_quietly(suite, shard, {1, n}, true);
    CHECK(summary.skipped == summary.cells - 2);
    CHECK(shard.runs().size() == 1);
  }
  Store merged(dir.file("merged.db"));
  int added = 0;
  for (int i = 0; i < n; ++i) added += merged.merge_from(dir.file("shard" + std::to_string(i) + ".db"));
  CHECK(added == static_cast<int>(suite.cells().size()));
  for (int i = 0; i < n; ++i) CHECK(merged.merge_from(dir.file("shard" + std::to_string(i) + ".db")) == 0);
  REQUIRE(merged.runs().size() == 1);
  CHECK(merged.runs()[0].shard.empty());

  Store single(dir.file("single.db"));
  const auto whole = run_quietly(suite, single, {});
  CHECK(values(merged, merged.runs()[0].id) == values(single, whole.run_id));
  CHECK(values(merged, merged.runs()[0].id).size() == 3 * suite.cells().size());
}

TEST_CASE("merge refuses another suite and another schema version, naming the file", "[shard][merge]") {
  testing::TempDir dir;
  {
    Store a(dir.file("a.db"));
    run_quietly(suite_named("same"), a, {0, 4});
    Store b(dir.file("b.db"));
    run_quietly(suite_named("same", 2), b, {1, 4});  // same name, different suite file
  }
  Store merged(dir.file("merged.db"));
  merged.merge_from(dir.file("a.db"));
  CHECK_THROWS_WITH(merged.merge_from(dir.file("b.db")), Catch::Contains("b.db") && Catch::Contains("different suite"));
  std::filesystem::copy_file(dir.file("a.db"), dir.file("old.db"));
  sqlite3* db = nullptr;
  sqlite3_open(dir.file("old.db").c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version = 1", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  CHECK_THROWS_WITH(merged.merge_from(dir.file("old.db")), Catch::Contains("old.db: schema version 1"));
}
