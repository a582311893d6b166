// The "llama" model backend through the runner: a text task on an attention engine loads the model named in
// the task's parameters, generates, and stores timings with the scores.
#include <catch2/catch.hpp>

#include "core/metrics.h"
#include "core/source_tree.h"
#include "harness/runner.h"
#include "model/backend.h"
#include "model/llama_generator.h"
#include "tasks/task.h"
#include "tests/helpers.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;

namespace {

// Asks the model to continue a prompt of the cell's length; scores 1 when it produced any text.
const tasks::RegisterTask continue_task{{
    .name = "test_model_continue",
    .description = "test task for the model backend",
    .params = model::with_model_fields(ParamFields<model::ModelChoice>()).schema(),
    .make_text_samples =
        [](const tasks::CellContext& cell, const Tokenizer& tokenizer) {
          std::string prompt;
          while (static_cast<int>(tokenizer.encode(prompt).size()) < cell.context_length) prompt += "ab";
          TextSample s;
          s.prompt = prompt;
          s.references = {"x"};
          s.max_new_tokens = 4;
          return std::vector<TextSample>{s, s};
        },
    .score = [](const TextSample&, const std::string& prediction) { return prediction.empty() ? 0.0 : 1.0; },
    .metric = "answered",
}};

const RegisterMetric answered{{"answered", "ratio", Better::higher, "Answered"}};

double metric(const CellOutput& out, const std::string& name) {
  for (const auto& m : out.measurements) {
    if (m.metric == name) return m.value();
  }
  FAIL("no metric " << name);
  return 0;
}

}  // namespace

TEST_CASE("model backend: text cells on dense attention run through the llama runtime", "[model][runner]") {
  testing::TempDir dir;
  testing::write_tiny_model(dir.file(""), testing::TinySpec{.eos = nullptr}, 61);
  const Json suite_json = {{"name", "t"},
                           {"engines", {{{"name", "dense"}}}},
                           {"tasks", {{{"name", "test_model_continue"}, {"params", {{"model", dir.file("")}}}}}},
                           {"context_lengths", {40}}};
  const auto cells = parse_suite(suite_json, "t.json").cells();
  REQUIRE(cells.size() == 1);
  const auto out = run_cell(cells[0]);
  CHECK(metric(out, "answered") == 1.0);
  CHECK(metric(out, "prompt_tokens") == 41);  // BOS + 40 bytes
  CHECK(metric(out, "generated_tokens") == 4);
  CHECK(metric(out, "prefill_seconds") > 0);
  CHECK(metric(out, "attention_share") > 0);
  CHECK(metric(out, "attention_share") < 1);
  CHECK(metric(out, "keys_per_query") > 1);
  CHECK(testing::uncatalogued(out.measurements) == std::vector<std::string>{});
  REQUIRE(out.samples.size() == 2);
  CHECK(out.samples[0].prediction.size() == 4);
}

TEST_CASE("model backend: bad model parameters are named", "[model][runner]") {
  using model::ModelParams;
  CHECK_THROWS_WITH(ModelParams::parse(Json::object()), Catch::Contains("model"));
  CHECK_THROWS_WITH(ModelParams::parse({{"model", "m"}, {"rope_scaling", 3}}), Catch::Contains("rope_scaling"));
  CHECK_THROWS_WITH(ModelParams::parse({{"model", "m"}, {"prefill_chunk", 0}}), Catch::Contains("prefill_chunk"));
  CHECK_THROWS_WITH(ModelParams::parse({{"model", "m"}, {"kv_dtype", "int4"}}), Catch::Contains("kv_dtype"));
  const auto p = ModelParams::parse({{"model", "datasets/x"}, {"prefill_chunk", 64}, {"kv_dtype", "bf16"}});
  CHECK(p.dir == source_tree().string() + "/datasets/x");
  CHECK(p.options.prefill_chunk == 64);
  CHECK(p.options.kv_dtype == kernels::DType::bf16);
  CHECK(ModelParams::parse({{"model", "/abs/m"}}).dir == "/abs/m");

  testing::TempDir dir;
  const Json suite_json = {{"name", "t"},
                           {"engines", {{{"name", "dense"}}}},
                           {"tasks", {{{"name", "test_model_continue"}, {"params", {{"model", dir.file("none")}}}}}},
                           {"context_lengths", {40}}};
  CHECK_THROWS_WITH(run_cell(parse_suite(suite_json, "t.json").cells()[0]), Catch::Contains("config.json"));
}
