// The metric catalogue (core/metrics.h): every metric a run stores is catalogued, in its catalogued unit.
#include <catch2/catch.hpp>

#include "core/metrics.h"
#include "engines/engine.h"
#include "harness/runner.h"
#include "harness/suite.h"
#include "tasks/task.h"
#include "tests/helpers.h"

using namespace ctxbench;

namespace {

// The engine's defaults, with every simulated offload tier switched on so that its measurements are made too, and
// untrained heads for a method whose trained heads fit only the bundled model (locret).
Json attention_level_params(const engines::EngineInfo& engine) {
  Json params = Json::object();
  for (const auto& spec : engine.params) {
    if (spec.name.starts_with("offload_") && spec.name.ends_with("_tokens")) params[spec.name] = 256;
    if (spec.name == "heads") params[spec.name] = "untrained";
  }
  return params;
}

}  // namespace

TEST_CASE("every registered task names a catalogued metric", "[metrics]") {
  for (const auto& [name, task] : tasks::TaskRegistry::instance().entries()) {
    if (!task.make_text_samples) continue;  // attention-level tasks store the attention driver's metrics
    INFO(name);
    CHECK_NOTHROW(catalogued_metric(task.metric));
  }
}

TEST_CASE("every engine on the attention-level needle stores only catalogued metrics, in their units",
          "[metrics][runner]") {
  for (const auto& [name, engine] : engines::EngineRegistry::instance().entries()) {
    if (!engine.make) continue;  // text-only engines: the remote tests check theirs
    const Json suite_json = {
        {"name", "catalogue"},
        {"engines", {{{"name", name}, {"params", attention_level_params(engine)}}}},
        {"tasks",
         {{{"name", "attention_needle"}, {"params", {{"mode", "decode"}, {"queries", 2}}}},
          {{"name", "attention_needle"}, {"label", "prefill"}, {"params", {{"mode", "prefill"}, {"queries", 8}}}}}},
        {"context_lengths", {512}}};
    for (const auto& cell : parse_suite(suite_json, "catalogue.json").cells()) {
      INFO(name << " " << cell.task.label);
      const auto out = run_cell(cell);
      CHECK(testing::uncatalogued(out.measurements) == std::vector<std::string>{});
    }
  }
}

TEST_CASE("a measurement takes its unit from the catalogue, and an uncatalogued name is a programming error",
          "[metrics]") {
  const Measurement m = make_measurement("kv_bytes_resident", {1, 3, 2});
  CHECK(m.unit == "B");
  CHECK(m.value() == 2);  // the median of the repetitions
  CHECK(catalogued_metric("perplexity").better == Better::lower);
  CHECK(catalogued_metric("accuracy").scale() == 100);
  CHECK(catalogued_metric("needle_recall").display == "Needle recall");
  CHECK(combine(Combine::mean, {1, 2, 6}) == 3);
  CHECK_THROWS_AS(make_measurement("no_such_metric"), std::logic_error);
}
