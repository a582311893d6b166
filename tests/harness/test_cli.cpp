// The CLI as a user runs it: the real binary, real files.
#include <sqlite3.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/command.h"
#include "core/random.h"
#include "harness/store.h"
#include "tests/helpers.h"

using namespace ctxbench;
using testing::run_shell;

namespace {

const std::string kBinary = testing::ctxbench_binary();

// Many small cells so that a kill lands in the middle of the run.
const char* kSuite = R"({"name": "resume", "engines": [{"name": "dense"}],
  "tasks": [{"name": "attention_needle", "params": {"heads_q": 4, "heads_kv": 2, "head_dim": 32, "queries": 2}}],
  "context_lengths": [256, 512, 768, 1024, 1280, 1536, 1792, 2048],
  "depths": [0, 25, 50, 75, 100], "repetitions": 2})";

std::int64_t count(const std::string& db, const std::string& sql) {
  sqlite3* handle = nullptr;
  sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_busy_timeout(handle, 5000);
  sqlite3_stmt* stmt = nullptr;
  std::int64_t value = -1;
  if (sqlite3_prepare_v2(handle, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(handle);
  return value;
}

std::string query_text(const std::string& db, const std::string& sql) {
  sqlite3* handle = nullptr;
  sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(handle, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
        const auto* text = sqlite3_column_text(stmt, c);
        out += (text ? reinterpret_cast<const char*>(text) : "NULL") + std::string("|");
      }
      out += "\n";
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close(handle);
  return out;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    out.push_back(text.substr(start, end - start));
  return out;
}

// Deterministic results of every cell (timings excluded), in key order.
const char* kDeterministic =
    "SELECT c.key, m.metric, m.value FROM cells c JOIN measurements m ON m.cell_id = c.id "
    "WHERE m.metric IN ('needle_recall', 'keys_attended_mean', 'kv_bytes_read', 'output_rel_error') "
    "ORDER BY c.key, m.metric";

}  // namespace

static int wait_for(pid_t child) {
  int status = 0;
  waitpid(child, &status, 0);
  return status;
}

TEST_CASE("kill -9 at several moments, then --resume: every cell once, values as an uninterrupted run",
          "[cli][resume]") {
  testing::TempDir dir;
  const std::string suite = dir.file("resume.json"), db = dir.file("killed.db"), clean = dir.file("clean.db");
  testing::write_file(suite, kSuite);
  const int total = 8 * 5;
  Rng rng(7);
  int kills = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const auto before = std::max<std::int64_t>(0, count(db, "SELECT COUNT(*) FROM cells"));
    const pid_t child = testing::spawn_ctxbench({"run", suite, "--db", db, "--resume"});
    // Kill once a few more cells are stored, plus a random delay so the kill also lands inside writes.
    for (int i = 0; i < 3000 && count(db, "SELECT COUNT(*) FROM cells") < before + 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng.integer(0, 20000)));
    kill(child, SIGKILL);
    kills += WIFSIGNALED(wait_for(child));
    CHECK(query_text(db, "PRAGMA integrity_check") == "ok|\n");
  }
  CHECK(kills >= 3);
  const auto before = count(db, "SELECT COUNT(*) FROM cells");
  REQUIRE(before >= 5);
  REQUIRE(before < total);

  std::string output;
  REQUIRE(run_shell(kBinary + " run " + suite + " --db " + db + " --resume", &output) == 0);
  CHECK_THAT(output, Catch::Contains("resuming run 1"));
  CHECK(count(db, "SELECT COUNT(*) FROM runs") == 1);
  CHECK(count(db, "SELECT COUNT(*) FROM cells WHERE status = 'ok'") == total);
  CHECK(count(db, "SELECT COUNT(DISTINCT key) FROM cells") == total);
  CHECK(query_text(db, "PRAGMA integrity_check") == "ok|\n");

  REQUIRE(run_shell(kBinary + " run " + suite + " --db " + clean, &output) == 0);
  const auto resumed = lines(query_text(db, kDeterministic)), uninterrupted = lines(query_text(clean, kDeterministic));
  CHECK(resumed.size() == uninterrupted.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < std::min(resumed.size(), uninterrupted.size()); ++i)
    mismatches += resumed[i] != uninterrupted[i];
  CHECK(mismatches == 0);
  // The numbers tests/README.md reports.
  std::printf(
      "kill/resume: %d kills, %lld of %d cells stored before the final --resume, %lld after, %zu values "
      "compared with an uninterrupted run, %d mismatches\n",
      kills, static_cast<long long>(before), total, static_cast<long long>(count(db, "SELECT COUNT(*) FROM cells")),
      uninterrupted.size(), mismatches);

  // A second --resume finds nothing left to do.
  REQUIRE(run_shell(kBinary + " run " + suite + " --db " + db + " --resume", &output) == 0);
  CHECK_THAT(output, Catch::Contains(std::to_string(total) + " already stored"));
}

TEST_CASE("concurrent runs on one database (two shards and another suite) lose and duplicate nothing",
          "[cli][concurrency]") {
  testing::TempDir dir;
  const std::string suite = dir.file("a.json"), other = dir.file("b.json"), db = dir.file("shared.db");
  testing::write_file(suite, kSuite);
  Json second = Json::parse(kSuite);
  second["name"] = "other";
  second["context_lengths"] = {128, 256, 384};
  testing::write_file(other, second.dump());
  const pid_t a = testing::spawn_ctxbench({"run", suite, "--db", db, "--shard", "0/2"});
  const pid_t b = testing::spawn_ctxbench({"run", suite, "--db", db, "--shard", "1/2"});
  const pid_t c = testing::spawn_ctxbench({"run", other, "--db", db});
  for (const pid_t child : {a, b, c}) {
    const int status = wait_for(child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(count(db, "SELECT COUNT(*) FROM runs") == 3);
  CHECK(count(db, "SELECT COUNT(*) FROM cells WHERE status = 'ok'") == 40 + 15);
  CHECK(count(db, "SELECT COUNT(*) FROM (SELECT DISTINCT run_id, key FROM cells)") == 55);
  CHECK(count(db, "SELECT COUNT(DISTINCT key) FROM cells c JOIN runs r ON r.id = c.run_id WHERE r.suite = 'resume'") ==
        40);
  CHECK(query_text(db, "PRAGMA integrity_check") == "ok|\n");
  // The same values as the two suites run one after the other.
  const std::string serial = dir.file("serial.db");
  REQUIRE(run_shell(kBinary + " run " + suite + " --db " + serial) == 0);
  REQUIRE(run_shell(kBinary + " run " + other + " --db " + serial) == 0);
  const auto concurrent_values = lines(query_text(db, kDeterministic));
  CHECK(concurrent_values.size() == 55 * 4);
  CHECK(concurrent_values == lines(query_text(serial, kDeterministic)));
}

TEST_CASE("processes that create one new database together all open it", "[cli][concurrency]") {
  // Switching a new file to WAL failed with "database is locked" in about half of such rounds before the retry.
  testing::TempDir dir;
  testing::write_file(dir.file("one.json"), R"({"name": "one", "engines": [{"name": "dense"}],
      "tasks": [{"name": "attention_needle", "params": {"heads_q": 2, "heads_kv": 1, "head_dim": 16}}],
      "context_lengths": [40], "depths": [50]})");
  for (int round = 0; round < 20; ++round) {
    const std::string db = dir.file("new" + std::to_string(round) + ".db");
    std::vector<pid_t> children;
    for (int i = 0; i < 4; ++i) children.push_back(testing::spawn_ctxbench({"run", dir.file("one.json"), "--db", db}));
    for (const pid_t child : children) {
      const int status = wait_for(child);
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
    }
  }
}

TEST_CASE("a malformed suite exits 2 with the file and JSON path, and writes nothing", "[cli]") {
  testing::TempDir dir;
  testing::write_file(dir.file("bad.json"), R"({"name": "x", "engines": [{"name": "dense", "params": {"threads": -1}}],
      "tasks": [{"name": "attention_needle"}], "context_lengths": [64]})");
  std::string output;
  CHECK(run_shell(kBinary + " run " + dir.file("bad.json") + " --db " + dir.file("x.db"), &output) == 2);
  CHECK_THAT(output, Catch::Contains("bad.json: $.engines[0].params.threads: expected an integer >= 0, got -1"));
  CHECK_FALSE(std::filesystem::exists(dir.file("x.db")));
}

TEST_CASE("run, then export prints one CSV row per cell and metric", "[cli]") {
  testing::TempDir dir;
  testing::write_file(dir.file("s.json"), R"({"name": "x", "engines": [{"name": "dense"}],
      "tasks": [{"name": "attention_needle", "params": {"heads_q": 2, "heads_kv": 1, "head_dim": 16}}],
      "context_lengths": [40, 80], "depths": [50]})");
  const std::string db = " --db " + dir.file("x.db");
  REQUIRE(run_shell(kBinary + " run " + dir.file("s.json") + db) == 0);
  std::string csv;
  REQUIRE(run_shell(kBinary + " export --format csv" + db, &csv) == 0);
  CHECK(csv.rfind("run_id,cell_key,engine,", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 2 * 12);
  CHECK_THAT(csv, Catch::Contains(",needle_recall,1,ratio,"));
  std::string json;
  REQUIRE(run_shell(kBinary + " export --format json" + db, &json) == 0);
  const auto doc = Json::parse(json);
  CHECK(doc["runs"][0]["context"]["num_cpus"].get<int>() > 0);
  CHECK(doc["runs"][0]["results"].size() == 24);
  // Typed: numbers as numbers, parameters as objects, not strings holding them.
  for (const auto& row : doc["runs"][0]["results"]) {
    CHECK(row["context_length"].is_number_integer());
    CHECK(row["depth"] == 50.0);
    CHECK(row["engine_params"].is_object());
    CHECK(row["task_params"]["head_dim"] == 16);
    CHECK(row["value"].is_number());
    CHECK(row["error"].is_null());
    CHECK(row["under_load"].is_boolean());
  }
  std::string report;
  REQUIRE(run_shell(kBinary + " report" + db, &report) == 0);
  CHECK_THAT(report, Catch::Contains("attention_needle") && Catch::Contains("100.0"));
}

TEST_CASE("unknown commands and options are named", "[cli]") {
  std::string output;
  CHECK(run_shell(kBinary + " frobnicate", &output) == 2);
  CHECK_THAT(output, Catch::Contains("frobnicate") && Catch::Contains("run"));
  CHECK(run_shell(kBinary + " export --fromat csv", &output) == 2);
  CHECK_THAT(output, Catch::Contains("unknown option --fromat"));
  CHECK(run_shell(kBinary + " report --db /nonexistent/dir/x.db", &output) == 2);
  CHECK_THAT(output, Catch::Contains("/nonexistent/dir/x.db"));
}

TEST_CASE("ctxbench --version names the version and the commit", "[cli]") {
  std::string output;
  REQUIRE(run_shell(kBinary + " --version", &output) == 0);
  CHECK_THAT(output, Catch::Matches("ctxbench \\d+\\.\\d+\\.\\d+ \\(commit [0-9a-f]{40}(-dirty)?, .*\\)\\s*"));
}

TEST_CASE("a one-letter option is named as unknown, with the command's options", "[cli]") {
  std::string output;
  CHECK(run_shell(kBinary + " export -o x.csv", &output) == 2);
  CHECK_THAT(output, Catch::Contains("unknown option -o (known: --format --db --run --output --samples)"));
}

TEST_CASE("list shows each parameter's choices and range, in aligned columns", "[cli]") {
  std::string output;
  REQUIRE(run_shell(kBinary + " list tasks", &output) == 0);
  CHECK_THAT(output, Catch::Contains("one of f32|f16|bf16"));
  CHECK_THAT(output, Catch::Contains("an integer >= 1"));
  // infinite_hip has parameter names longer than 16 characters (dense_layer_budget, stage_query_strides): within
  // its entry, the default column starts at the same place on every line.
  REQUIRE(run_shell(kBinary + " list engines", &output) == 0);
  const auto entry = output.find("\ninfinite_hip ");
  REQUIRE(entry != std::string::npos);
  std::istringstream lines(output.substr(entry + 1));
  std::string line;
  std::getline(lines, line);  // the engine's own line
  std::set<std::size_t> default_columns;
  while (std::getline(lines, line) && line.rfind("      ", 0) == 0) default_columns.insert(line.find("  default "));
  CHECK(default_columns.size() == 1);
}

TEST_CASE("list runs on a missing database exits 2 and creates nothing", "[cli]") {
  const testing::TempDir dir;
  std::string output;
  CHECK(run_shell(kBinary + " list runs --db " + dir.file("missing.db"), &output) == 2);
  CHECK_THAT(output, Catch::Contains("missing.db: no such database"));
  CHECK_FALSE(std::filesystem::exists(dir.file("missing.db")));
}

TEST_CASE("Args converts option values strictly, in the words of suite parameters", "[cli][args]") {
  const OptionSchema options = {
      {.name = "--shards", .type = ParamType::integer, .help = "", .min = 1},
      {.name = "--alpha", .type = ParamType::number, .default_value = 0.05, .help = "", .min = 0, .max = 1},
      {.name = "--format", .type = ParamType::string, .default_value = "csv", .help = "", .choices = {"csv", "json"}},
      {.name = "--run", .type = ParamType::integer_list, .help = "", .min = 1},
      {.name = "--all", .type = ParamType::boolean, .help = ""}};
  auto parse = [&](const std::vector<std::string>& argv) { return Args(argv, options, "ctxbench x [--shards N]"); };

  const Args defaults = parse({"file"});
  CHECK(defaults.positionals() == std::vector<std::string>{"file"});
  CHECK(defaults.number("--alpha") == 0.05);
  CHECK(defaults.text("--format") == "csv");
  CHECK(defaults.integers("--run").empty());
  CHECK_FALSE(defaults.flag("--all"));
  CHECK_FALSE(defaults.given("--shards"));
  CHECK_THROWS_WITH(defaults.integer("--shards"), "--shards is required; usage: ctxbench x [--shards N]");
  CHECK_THROWS_AS(defaults.integer("--alpha"), std::logic_error);  // read as another type: a bug in the command

  const Args given = parse({"--shards", "3", "--alpha=0.5", "--run", "2", "--run=7", "--all", "--format", "json"});
  CHECK(given.integer("--shards") == 3);
  CHECK(given.number("--alpha") == 0.5);
  CHECK(given.integers("--run") == std::vector<long long>{2, 7});
  CHECK(given.flag("--all"));
  CHECK(given.text("--format") == "json");

  for (const char* text : {"3x", "", " 3", "3 ", "+3", "0x10", "1e3", "3.0", "99999999999999999999", "0"}) {
    CAPTURE(text);
    CHECK_THROWS_WITH(parse({"--shards", text}),
                      std::string("--shards: expected an integer >= 1, got \"") + text + "\"");
  }
  for (const char* text : {"0.5x", "", "nan", "inf", "1e999", "2", "-0.1"}) {
    CAPTURE(text);
    CHECK_THROWS_WITH(parse({"--alpha", text}),
                      std::string("--alpha: expected a number in [0, 1], got \"") + text + "\"");
  }
  CHECK_THROWS_WITH(parse({"--run", "1", "--run", "x"}), "--run: expected an integer >= 1, got \"x\"");
  CHECK_THROWS_WITH(parse({"--format", "xml"}), "--format: expected one of csv, json, got \"xml\"");
  CHECK_THROWS_WITH(parse({"--shards", "1", "--shards", "2"}), "option --shards is given more than once");
  CHECK_THROWS_WITH(parse({"--all=yes"}), "option --all takes no value");
  CHECK_THROWS_WITH(parse({"--shards"}), "option --shards needs a value");
  CHECK_THROWS_WITH(parse({"--shard", "1"}), "unknown option --shard (known: --shards --alpha --format --run --all)");
  CHECK_THROWS_WITH(parse({}).expect_positionals(1, 1), "usage: ctxbench x [--shards N]");
}

TEST_CASE("every command rejects a malformed number in each numeric option, naming it, with exit 2", "[cli]") {
  int checked = 0;
  for (const auto& [name, command] : CommandRegistry::instance().entries()) {
    for (const auto& option : command.options) {
      const bool numeric = option.type == ParamType::integer || option.type == ParamType::number ||
                           option.type == ParamType::integer_list;
      if (!numeric) continue;
      CAPTURE(name, option.name);
      std::string output;
      CHECK(run_shell(kBinary + " " + name + " " + option.name + " 3x", &output) == 2);
      CHECK_THAT(output, Catch::Contains(option.name + ": expected ") && Catch::Contains("got \"3x\""));
      ++checked;
    }
  }
  CHECK(checked >= 20);
}

TEST_CASE("every command's --help shows its usage and every option it declares", "[cli]") {
  for (const auto& [name, command] : CommandRegistry::instance().entries()) {
    CAPTURE(name);
    std::string output;
    CHECK(run_shell(kBinary + " " + name + " --help", &output) == 0);
    CHECK_THAT(output, Catch::StartsWith(command.usage));
    for (const auto& option : command.options) CHECK_THAT(output, Catch::Contains("\n  " + option.name));
  }
}
