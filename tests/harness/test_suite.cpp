#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/source_tree.h"
#include "harness/suite.h"
#include "tests/helpers.h"

using namespace ctxbench;

namespace {

Json minimal() {
  return Json::parse(R"({
    "name": "t", "engines": [{"name": "dense"}],
    "tasks": [{"name": "attention_needle", "params": {"heads_q": 4, "heads_kv": 2}}],
    "context_lengths": [64, 128], "depths": [0, 100], "seeds": [1, 2], "repetitions": 2 })");
}

std::string error_of(const Json& doc) {
  try {
    parse_suite(doc, "s.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a suite expands into the full matrix of cells with distinct keys", "[suite]") {
  const Suite suite = parse_suite(minimal(), "s.json");
  const auto cells = suite.cells();
  REQUIRE(cells.size() == 2 * 2 * 2);
  std::set<std::string> keys;
  for (const auto& c : cells) keys.insert(c.key);
  CHECK(keys.size() == cells.size());
  CHECK(cells[0].task.params.at("heads_q") == 4);
  CHECK(cells[0].task.params.at("head_dim") == 64);  // default filled in
  CHECK(cells[0].repetitions == 2);
}

TEST_CASE("a task's own context_lengths and depths replace the suite's grid for that task only", "[suite]") {
  Json doc = minimal();
  doc["tasks"].push_back({{"name", "attention_needle"},
                          {"label", "long"},
                          {"context_lengths", {4096}},
                          {"depths", {50}},
                          {"params", {{"heads_q", 4}, {"heads_kv", 2}}}});
  const auto cells = parse_suite(doc, "s.json").cells();
  REQUIRE(cells.size() == 2 * 2 * 2 + 1 * 1 * 2);
  std::set<std::pair<int, double>> short_grid, long_grid;
  for (const auto& c : cells) (c.task.label == "long" ? long_grid : short_grid).insert({c.context_length, c.depth});
  CHECK(short_grid == std::set<std::pair<int, double>>{{64, 0}, {64, 100}, {128, 0}, {128, 100}});
  CHECK(long_grid == std::set<std::pair<int, double>>{{4096, 50}});

  doc["tasks"][1]["context_lengths"] = {0};
  CHECK_THAT(error_of(doc), Catch::Contains("$.tasks[1].context_lengths[0]: expected an integer in [1, "));
  doc["tasks"][1]["context_lengths"] = {4096};
  doc["tasks"][1]["depths"] = {120};
  CHECK_THAT(error_of(doc), Catch::Contains("$.tasks[1].depths[0]: expected a percentage"));
  doc = minimal();
  doc["engines"][0]["depths"] = {50};
  CHECK_THAT(error_of(doc),
             Catch::Contains("$.engines[0].depths: unknown field (expected one of label, name, params)"));
}

TEST_CASE("cell keys are stable: independent of field order, sensitive to every parameter", "[suite]") {
  const auto reordered = Json::parse(R"({
    "repetitions": 2, "seeds": [1, 2], "depths": [0, 100], "context_lengths": [64, 128],
    "tasks": [{"params": {"heads_kv": 2, "heads_q": 4}, "name": "attention_needle"}],
    "engines": [{"name": "dense"}], "name": "t" })");
  const auto a = parse_suite(minimal(), "a.json").cells();
  const auto b = parse_suite(reordered, "b.json").cells();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].key == b[i].key);

  Json changed = minimal();
  changed["tasks"][0]["params"]["needles"] = 3;
  CHECK(parse_suite(changed, "c.json").cells()[0].key != a[0].key);
  Json more_reps = minimal();
  more_reps["repetitions"] = 3;
  CHECK(parse_suite(more_reps, "d.json").cells()[0].key != a[0].key);
  // Golden value: a change here means every stored database stops resuming; bump it only on purpose.
  // (Bumped when dense gained its extra_passes parameter, and when attention_needle gained correlation_length
  // and needle_above.)
  CHECK(a[0].key == "dc0833567a69ed03");
}

TEST_CASE("every suite in suites/ expands to its recorded cell keys", "[suite]") {
  // Golden keys: a change means stored runs of that suite stop resuming. After a deliberate change, rerun with
  // CTXBENCH_UPDATE_GOLDEN=1 to rewrite the file.
  const std::filesystem::path source(source_tree());
  const std::filesystem::path golden_path = source / "tests/fixtures/suite_cell_keys.json";
  Json actual = Json::object();
  for (const auto& entry : std::filesystem::directory_iterator(source / "suites")) {
    Json keys = Json::array();
    for (const Cell& cell : load_suite(entry.path().string()).cells()) keys.push_back(cell.key);
    actual[entry.path().filename().string()] = keys;
  }
  if (std::getenv("CTXBENCH_UPDATE_GOLDEN")) std::ofstream(golden_path) << actual.dump(1) << "\n";
  const Json golden = Json::parse(std::ifstream(golden_path));
  for (const auto& [suite, keys] : actual.items()) {
    INFO(suite);
    REQUIRE(golden.contains(suite));
    CHECK(keys == golden.at(suite));
  }
  CHECK(golden.size() == actual.size());
}

TEST_CASE("malformed suites fail before any work with the file, the JSON path and what was expected", "[suite]") {
  Json doc = minimal();
  doc["engines"][0]["name"] = "no_such_engine";
  CHECK_THAT(error_of(doc), Catch::Contains("s.json: $.engines[0].name") && Catch::Contains("no_such_engine") &&
                                Catch::Contains("dense"));

  doc = minimal();
  doc["tasks"][0]["name"] = "nope";
  CHECK_THAT(error_of(doc), Catch::Contains("$.tasks[0].name") && Catch::Contains("attention_needle"));

  doc = minimal();
  doc["tasks"][0]["params"]["heads_q"] = "four";
  CHECK_THAT(error_of(doc), Catch::Contains("$.tasks[0].params.heads_q: expected an integer, got \"four\""));

  doc = minimal();
  doc["tasks"][0]["params"]["kv_dtype"] = "f8";
  CHECK_THAT(error_of(doc), Catch::Contains("$.tasks[0].params.kv_dtype: expected one of f32, f16, bf16"));

  doc = minimal();
  doc["tasks"][0]["params"]["typo"] = 1;
  CHECK_THAT(error_of(doc), Catch::Contains("$.tasks[0].params.typo: unknown parameter"));

  doc = minimal();
  doc["context_lengths"] = {64, 0};
  CHECK_THAT(error_of(doc), Catch::Contains("$.context_lengths[1]: expected an integer in [1, "));

  doc = minimal();
  doc["context_lengths"] = {64.5};
  CHECK_THAT(error_of(doc), Catch::Contains("$.context_lengths[0]"));

  doc = minimal();
  doc["depths"] = {50, 101};
  CHECK_THAT(error_of(doc), Catch::Contains("$.depths[1]: expected a percentage"));

  doc = minimal();
  doc.erase("engines");
  CHECK_THAT(error_of(doc), Catch::Contains("$.engines: required field is missing"));

  doc = minimal();
  doc["enignes"] = Json::array();
  CHECK_THAT(error_of(doc), Catch::Contains("$.enignes: unknown field"));

  doc = minimal();
  doc["engines"].push_back({{"name", "dense"}});
  CHECK_THAT(error_of(doc), Catch::Contains("$.engines[1].label") && Catch::Contains("used twice"));

  doc = minimal();
  doc["repetitions"] = 0;
  CHECK_THAT(error_of(doc), Catch::Contains("$.repetitions"));

  // Rules between an engine's parameters are checked at load, not once per cell.
  doc = minimal();
  doc["engines"].push_back(
      {{"name", "infinite_hip"},
       {"params", {{"stage_chunks", {32, 8}}, {"stage_keeps", {256}}, {"stage_query_strides", {4, 1}}}}});
  CHECK_THAT(error_of(doc), Catch::Contains("s.json: $.engines[1].params: infinite_hip.refresh_intervals: expected "
                                            "one interval per stage (2), got 3"));

  doc = minimal();
  doc["engines"][0] = {{"name", "hip"}, {"params", {{"sinks", 3}}}};
  CHECK_THAT(error_of(doc),
             Catch::Contains("s.json: $.engines[0].params: hip: sinks must be a multiple of block_size_k"));
}

TEST_CASE("a suite's max_slowdown takes a fraction or the gate's forms, and names the field when wrong", "[suite]") {
  Json doc = minimal();
  doc["thresholds"] = {{"max_slowdown", "5%"}};
  CHECK(parse_suite(doc, "s.json").thresholds.max_slowdown == Approx(0.05));
  doc["thresholds"] = {{"max_slowdown", 0.05}};
  CHECK(parse_suite(doc, "s.json").thresholds.max_slowdown == Approx(0.05));
  doc["thresholds"] = {{"max_slowdown", "5"}};
  CHECK_THAT(error_of(doc), Catch::Contains("s.json: $.thresholds.max_slowdown 5: ambiguous"));
  doc["thresholds"] = {{"max_slowdown", "fast"}};
  CHECK_THAT(error_of(doc), Catch::Contains("s.json: $.thresholds.max_slowdown: expected a percentage (5%)"));
}

TEST_CASE("a suite file that is not JSON names the file", "[suite]") {
  testing::TempDir dir;
  testing::write_file(dir.file("bad.json"), "{\"name\": \"x\", ");
  CHECK_THROWS_WITH(load_suite(dir.file("bad.json")), Catch::Contains("bad.json: not valid JSON"));
  CHECK_THROWS_WITH(load_suite(dir.file("missing.json")), Catch::Contains("missing.json: cannot open"));
}

TEST_CASE("depth grids: lists, linspace and gkamradt's sigmoid spacing", "[suite]") {
  Json doc = minimal();
  doc["depths"] = Json::object({{"linspace", {0, 100, 5}}});
  CHECK(parse_suite(doc, "s.json").depths == std::vector<double>{0, 25, 50, 75, 100});
  const auto sigmoid = sigmoid_depths(0, 100, 5);
  REQUIRE(sigmoid.size() == 5);
  CHECK(sigmoid[0] == 0.0);
  CHECK(sigmoid[2] == 50.0);
  CHECK(sigmoid[4] == 100.0);
  CHECK(sigmoid[1] == Approx(100.0 / (1.0 + std::exp(2.5))).margin(1e-3));
}

#include "engines/budget.h"

TEST_CASE("budgets: tokens or a ratio of the context, per layer, clamped to the context", "[budget]") {
  using ctxbench::engines::Budget;
  const auto tokens = Budget::parse(512, Json::array(), "e");
  CHECK(tokens.tokens(100000) == 512);
  CHECK(tokens.tokens(100) == 100);
  const auto ratio = Budget::parse(0.1, Json::array({2048, 0.5}), "e");
  CHECK(ratio.tokens(1000) == 100);
  CHECK(ratio.tokens(1001) == 101);  // rounds up: a ratio never keeps fewer than asked
  CHECK(ratio.tokens(1000, 0) == 1000);
  CHECK(ratio.tokens(10000, 0) == 2048);
  CHECK(ratio.tokens(1000, 1) == 500);
  CHECK(ratio.tokens(1000, 7) == 100);
  CHECK(ratio.tokens(3) == 1);
  CHECK_THROWS_WITH(Budget::parse(-1, Json::array(), "$.engines[0].params"),
                    Catch::Contains("$.engines[0].params.budget: expected tokens"));
  CHECK_THROWS_WITH(Budget::parse(1, Json::array({1, "x"}), "p"), Catch::Contains("p.budget_per_layer[1]"));
}
