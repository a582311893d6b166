// Paired timing: engines on the same cell take turns repetition by repetition, and the speedup is the median of
// the paired ratios with a bootstrap interval.
#include <catch2/catch.hpp>
#include <cstdio>

#include "core/random.h"
#include "harness/attention_driver.h"
#include "harness/paired_timing.h"
#include "harness/runner.h"
#include "harness/store.h"
#include "harness/suite.h"
#include "tasks/task.h"
#include "tests/helpers.h"

using namespace ctxbench;

namespace {

// Dense attention that writes its name into a shared log each time a repetition opens a session.
class RecordingEngine : public engines::Engine {
 public:
  RecordingEngine(std::string name, std::vector<std::string>& log)
      : name_(std::move(name)),
        log_(log),
        inner_(engines::EngineRegistry::instance()
                   .get("dense", "test")
                   .make(resolve_params(engines::EngineRegistry::instance().get("dense", "test").params, Json::object(),
                                        "test"))) {}
  std::unique_ptr<engines::Session> open(const engines::HeadLayout& layout) const override {
    log_.push_back(name_);
    return inner_->open(layout);
  }

 private:
  std::string name_;
  std::vector<std::string>& log_;
  std::unique_ptr<engines::Engine> inner_;
};

// Engine times of `n` pairs whose ratios (baseline / engine) are `center` times a spread drawn around 1.
std::pair<std::vector<double>, std::vector<double>> pairs_around(double center, int n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<double> baseline, engine;
  for (int i = 0; i < n; ++i) {
    const double t = 1e-3 * (1 + rng.uniform());  // the machine's state moves both times of a pair
    engine.push_back(t);
    baseline.push_back(t * center * (1 + 0.2 * rng.normal()));
  }
  return {baseline, engine};
}

Json two_engine_suite() {
  return Json::parse(R"({"name": "paired", "engines": [{"name": "dense", "label": "twice",
      "params": {"extra_passes": 1}}, {"name": "dense"}],
    "tasks": [{"name": "attention_needle", "params": {"heads_q": 2, "heads_kv": 1, "head_dim": 16}}],
    "context_lengths": [256, 512], "seeds": [0, 1], "repetitions": 5, "paired": true})");
}

}  // namespace

TEST_CASE("the paired speedup is the median of the per-pair ratios", "[paired]") {
  // Ratios 1, 2, 3, 4, 5 in scrambled order: the median is 3 whatever the times' own scale.
  const auto s = paired_speedup({5, 2, 40, 3, 9}, {5, 1, 10, 1, 3});
  CHECK(s.ratios == std::vector<double>{1, 2, 4, 3, 3});
  CHECK(s.median == 3);
  CHECK(s.low <= s.median);
  CHECK(s.high >= s.median);
  CHECK(s.low >= 1);
  CHECK(s.high <= 4);
  // Equal ratios leave nothing to resample: the interval is the point.
  const auto constant = paired_speedup({2, 4, 6, 8}, {1, 2, 3, 4});
  CHECK(constant.median == 2);
  CHECK(constant.low == 2);
  CHECK(constant.high == 2);
}

TEST_CASE("the bootstrap interval contains the true speedup, narrows with more pairs, and is reproducible",
          "[paired]") {
  const auto [few_base, few] = pairs_around(2.0, 8, 1);
  const auto [many_base, many] = pairs_around(2.0, 400, 1);
  const auto small = paired_speedup(few_base, few), large = paired_speedup(many_base, many);
  for (const auto* s : {&small, &large}) {
    CHECK(s->low <= s->median);
    CHECK(s->median <= s->high);
    CHECK(s->low < 2.0);
    CHECK(s->high > 2.0);
  }
  CHECK(large.high - large.low < 0.5 * (small.high - small.low));
  const auto again = paired_speedup(many_base, many);
  CHECK(again.low == large.low);
  CHECK(again.high == large.high);
  CHECK(paired_speedup(many_base, many, kBootstrapResamples, kBootstrapSeed + 1).low != large.low);
}

TEST_CASE("paired_speedup refuses unpaired or non-positive times", "[paired]") {
  CHECK_THROWS_AS(paired_speedup({1, 2}, {1}), std::invalid_argument);
  CHECK_THROWS_AS(paired_speedup({}, {}), std::invalid_argument);
  CHECK_THROWS_AS(paired_speedup({1, 0}, {1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(paired_speedup({1, 1}, {1, 1}, 0), std::invalid_argument);
}

TEST_CASE("engines on the same problem take turns, each timed run after an untimed one of its own", "[paired]") {
  const auto& task = tasks::TaskRegistry::instance().get("attention_needle", "test");
  const Json params = resolve_params(task.params, Json::object(), "test");
  const auto problem = task.make_attention_problem(tasks::CellContext{params, 64, 50, 0});
  std::vector<std::string> log;
  const RecordingEngine a("A", log), b("B", log);
  const auto out = run_attention_problem_paired({&a, &b}, problem, 3, 1,
                                                [&](int engine) { log.push_back("turn " + std::to_string(engine)); });
  // One warm-up round, then per repetition each engine twice in a row: a warm run, then the timed one. Each turn
  // is announced before it runs, and the end of the last.
  CHECK(log == std::vector<std::string>{"turn 0", "A", "turn 1", "B",      "turn 0", "A",      "A",      "turn 1",
                                        "B",      "B", "turn 0", "A",      "A",      "turn 1", "B",      "B",
                                        "turn 0", "A", "A",      "turn 1", "B",      "B",      "turn -1"});
  REQUIRE(out.size() == 2);
  for (const auto& measurements : out) CHECK(measurements.at(0).repetitions.size() == 3);
}

TEST_CASE("a suite's engines on one cell run paired: every cell is stored whole, with its speedup over dense",
          "[paired]") {
  testing::TempDir dir;
  Store store(dir.file("p.db"));
  const Suite suite = parse_suite(two_engine_suite(), "paired.json");
  CHECK(suite.baseline == "dense");  // by default the engine labelled dense, not the first dense one
  std::FILE* sink = std::fopen("/dev/null", "w");
  const auto summary = run_suite(suite, store, {.log = sink, .isolate = false});
  std::fclose(sink);
  CHECK(summary.stored == 8);
  const auto cells = store.cells(summary.run_id);
  REQUIRE(cells.size() == 8);
  for (const auto& cell : cells) {
    const auto find = [&](const std::string& name) {
      const auto it = std::find_if(cell.measurements.begin(), cell.measurements.end(),
                                   [&](const Measurement& m) { return m.metric == name; });
      return it == cell.measurements.end() ? nullptr : &*it;
    };
    INFO(cell.engine << " T=" << cell.context_length << " seed=" << cell.seed);
    if (cell.engine == "dense") {
      CHECK(find("speedup") == nullptr);
      continue;
    }
    const auto *speedup = find("speedup"), *low = find("speedup_low"), *high = find("speedup_high");
    REQUIRE(speedup);
    REQUIRE(low);
    REQUIRE(high);
    CHECK(speedup->repetitions.size() == 5);
    CHECK(low->value() <= speedup->value());
    CHECK(speedup->value() <= high->value());
    CHECK(speedup->value() > 0);
  }
}

TEST_CASE("with \"paired\": false, a suite's engines run one after the other and store no speedup", "[paired]") {
  testing::TempDir dir;
  Store store(dir.file("u.db"));
  Json doc = two_engine_suite();
  doc.erase("paired");
  CHECK(parse_suite(doc, "default.json").paired);
  doc["paired"] = false;
  const Suite suite = parse_suite(doc, "unpaired.json");
  CHECK_FALSE(suite.paired);
  std::FILE* sink = std::fopen("/dev/null", "w");
  const auto summary = run_suite(suite, store, {.log = sink, .isolate = false});
  std::fclose(sink);
  const auto cells = store.cells(summary.run_id);
  REQUIRE(cells.size() == 8);
  for (const auto& cell : cells) {
    INFO(cell.engine << " T=" << cell.context_length << " seed=" << cell.seed);
    CHECK(std::none_of(cell.measurements.begin(), cell.measurements.end(),
                       [](const Measurement& m) { return m.metric.rfind("speedup", 0) == 0; }));
  }
  doc["paired"] = "yes";
  CHECK_THROWS_WITH(parse_suite(doc, "p.json"), Catch::Contains("p.json: $.paired: expected true or false"));
}

TEST_CASE("a suite's baseline names one of its engines", "[paired][suite]") {
  Json doc = two_engine_suite();
  doc["baseline"] = "twice";
  CHECK(parse_suite(doc, "paired.json").baseline == "twice");
  doc["baseline"] = "hip";
  CHECK_THROWS_WITH(parse_suite(doc, "paired.json"),
                    "paired.json: $.baseline: expected the label of one of the suite's engines (twice, dense), got "
                    "\"hip\"");
  doc.erase("baseline");
  doc["engines"] = Json::parse(R"([{"name": "streaming_llm"}])");
  CHECK(parse_suite(doc, "paired.json").baseline.empty());
}
