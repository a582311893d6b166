// Warm-up repetitions: run before the timed ones, not recorded, and not part of a cell's key.
#include <catch2/catch.hpp>

#include "harness/attention_driver.h"
#include "harness/suite.h"
#include "tasks/task.h"

using namespace ctxbench;

namespace {

Json suite_with(const Json& warmup) {
  Json doc = Json::parse(R"({"name": "w", "engines": [{"name": "dense"}], "tasks": [{"name": "attention_needle"}],
    "context_lengths": [64], "repetitions": 3})");
  if (!warmup.is_null()) doc["warmup"] = warmup;
  return doc;
}

// Dense attention that counts the sessions opened: one per repetition, warm or timed.
class CountingEngine : public engines::Engine {
 public:
  explicit CountingEngine(std::unique_ptr<engines::Engine> inner) : inner_(std::move(inner)) {}
  std::unique_ptr<engines::Session> open(const engines::HeadLayout& layout) const override {
    ++opened;
    return inner_->open(layout);
  }
  mutable int opened = 0;

 private:
  std::unique_ptr<engines::Engine> inner_;
};

}  // namespace

TEST_CASE("warm-up repetitions run but are not recorded", "[warmup]") {
  const auto& dense = engines::EngineRegistry::instance().get("dense", "test");
  const auto& task = tasks::TaskRegistry::instance().get("attention_needle", "test");
  const Json params = resolve_params(task.params, Json::object(), "test");
  const auto problem = task.make_attention_problem(tasks::CellContext{params, 64, 50, 0});
  const int warmup = GENERATE(0, 2);
  CountingEngine engine(dense.make(resolve_params(dense.params, Json::object(), "test")));
  const auto measurements = run_attention_problem(engine, problem, 3, warmup);
  CHECK(engine.opened == 3 + warmup);
  const auto time = std::find_if(measurements.begin(), measurements.end(),
                                 [](const Measurement& m) { return m.metric == "decode_seconds_per_step"; });
  REQUIRE(time != measurements.end());
  CHECK(time->repetitions.size() == 3);
}

TEST_CASE("warmup defaults to 1, is checked, and leaves the cell keys alone", "[warmup][suite]") {
  const Suite defaulted = parse_suite(suite_with(nullptr), "w.json");
  CHECK(defaulted.cells().front().warmup == 1);
  const Suite cold = parse_suite(suite_with(0), "w.json");
  CHECK(cold.cells().front().warmup == 0);
  CHECK(cold.cells().front().key == defaulted.cells().front().key);
  CHECK_THROWS_WITH(parse_suite(suite_with(-1), "w.json"),
                    "w.json: $.warmup: expected an integer in [0, 1000], got -1");
  CHECK_THROWS_WITH(parse_suite(suite_with("2"), "w.json"),
                    "w.json: $.warmup: expected an integer in [0, 1000], got \"2\"");
}
