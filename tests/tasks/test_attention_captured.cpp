// Attention captured from the bundled model: the recorded Q/K/V are exactly what the model's dense attention
// used (checked against a float64 recomputation of its outputs), and the attention_captured problem marks the
// passkey's digits as its important keys.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/params.h"
#include "core/source_tree.h"
#include "harness/attention_driver.h"
#include "kernels/reference.h"
#include "model/backend.h"
#include "model/tokenizer.h"
#include "tasks/attention_captured.h"
#include "tasks/task.h"

namespace ctxbench::testing {
namespace {

const std::string kModelDir = (source_tree() / model::kBundledModel).string();

const tasks::TaskInfo& captured_task() { return tasks::TaskRegistry::instance().get("attention_captured", "test"); }

tasks::AttentionProblem captured_problem(int tokens, double depth, const Json& overrides = Json::object()) {
  const Json params = resolve_params(captured_task().params, overrides, "test");
  return captured_task().make_attention_problem(tasks::CellContext{params, tokens, depth, 7});
}

TEST_CASE("captured Q/K/V reproduce the model's own dense attention outputs, every layer", "[captured][model]") {
  const model::LlamaModel llama(kModelDir);
  const auto tokenizer = model::load_tokenizer(llama.dir(), llama.config().vocab_size);
  std::vector<int> tokens{*llama.config().bos_token_id};
  const auto text = tokenizer->encode(
      "The grass is green. The sky is blue. The pass key is 4242. Remember it. 4242 is the pass key. The sun is "
      "yellow. Here we go. There and back again. What is the pass key? The pass key is 4242.");
  for (int repeat = 0; repeat < 4; ++repeat) tokens.insert(tokens.end(), text.begin(), text.end());
  REQUIRE(tokens.size() > 512);  // more than one prefill chunk

  for (int layer = 0; layer < llama.config().num_layers; ++layer) {
    const tasks::CapturedLayer c = tasks::capture_layer(llama, tokens, layer);
    REQUIRE(c.tokens == static_cast<int>(tokens.size()));
    REQUIRE(c.q.size() == static_cast<std::size_t>(c.heads_q) * c.tokens * c.head_dim);
    REQUIRE(c.k.size() == static_cast<std::size_t>(c.heads_kv) * c.tokens * c.head_dim);
    const kernels::KvView k{c.k.data(), kernels::DType::f32, c.heads_kv,
                            c.tokens,   c.head_dim,          static_cast<std::size_t>(c.tokens) * c.head_dim};
    kernels::KvView v = k;
    v.data = c.v.data();
    for (const int t : {0, 1, 300, 511, 512, c.tokens - 1}) {
      const auto q = tasks::slice_tokens(c.q, c.heads_q, c.tokens, c.head_dim, t, 1);
      const kernels::QueryView query{q.data(), c.heads_q, 1, c.head_dim};
      const auto expected = kernels::reference_attention(
          query, k, v, kernels::CausalLayout{t, 1.0f / std::sqrt(static_cast<float>(c.head_dim))});
      const auto actual = tasks::slice_tokens(c.out, c.heads_q, c.tokens, c.head_dim, t, 1);
      INFO("layer " << layer << " position " << t);
      CHECK(relative_l2_error(actual, expected.out) < 1e-5);
    }
  }
}

TEST_CASE("attention_captured: the key's digits are the important keys, the measured queries the last positions",
          "[captured][model]") {
  const model::LlamaModel llama(kModelDir);
  const auto tokenizer = model::load_tokenizer(llama.dir(), llama.config().vocab_size);
  const auto& passkey = tasks::TaskRegistry::instance().get("passkey", "test");
  for (const double depth : {10.0, 90.0}) {
    const auto p = captured_problem(600, depth);
    // The same prompt as the task builds (one passkey sample at this depth, room for BOS and the answer).
    const Json passkey_params = resolve_params(passkey.params, {{"samples", 1}, {"placement", "depth"}}, "test");
    const auto sample =
        passkey.make_text_samples(tasks::CellContext{passkey_params, 600 - 1 - 8, depth, 7}, *tokenizer).at(0);
    const std::string& key = sample.references.at(0);
    const auto tokens = tokenizer->encode(sample.prompt + " " + key + ".");
    CHECK(p.tokens == static_cast<int>(tokens.size()) + 1);
    CHECK(p.tokens <= 600);
    REQUIRE(p.important_keys.size() == 2 * key.size());  // the key line says it twice
    for (std::size_t i = 0; i < p.important_keys.size(); ++i) {
      const int position = p.important_keys[i];
      CHECK(position < p.tokens - p.queries);
      CHECK(tokenizer->decode({tokens.at(position - 1)}) == std::string(1, key[i % key.size()]));
    }
    CHECK(p.queries == 8);
    CHECK(p.observe == 32);
    CHECK(p.q.size() == static_cast<std::size_t>(p.layout.heads_q) * 8 * p.layout.head_dim);
    CHECK(p.layout.num_layers == 1);  // an attention-level layer: no method keeps it dense as an early layer
    if (depth == 10.0) CHECK(p.important_keys.front() < p.tokens / 2);
    if (depth == 90.0) CHECK(p.important_keys.front() > p.tokens / 2);
  }
}

TEST_CASE("attention_captured: dense attention over the problem keeps every digit and equals the reference",
          "[captured][model]") {
  const auto& dense = engines::EngineRegistry::instance().get("dense", "test");
  const auto engine = dense.make(resolve_params(dense.params, Json::object(), "test"));
  for (const char* mode : {"decode", "prefill"}) {
    const auto p = captured_problem(400, 50, {{"mode", mode}, {"layer", 1}});
    const auto measured = run_attention_problem(*engine, p, 1);
    const auto value = [&](const std::string& metric) {
      for (const auto& m : measured) {
        if (m.metric == metric) return m.value();
      }
      FAIL("no " << metric);
      return 0.0;
    };
    INFO(mode);
    CHECK(value("needle_recall") == 1.0);
    CHECK(value("output_rel_error") < 1e-5);
  }
}

TEST_CASE("attention_captured: a layer the model does not have is named", "[captured][model]") {
  const int layers = model::LlamaModel(kModelDir).config().num_layers;
  CHECK_THROWS_WITH(captured_problem(300, 50, {{"layer", layers}}),
                    Catch::Contains(fmt::format("attention_captured.layer: expected -1 (the last) or 0..{} for this "
                                                "model's {} layers, got {}",
                                                layers - 1, layers, layers)));
}

TEST_CASE("attention_captured: any text task's prompt, with every reference's occurrences as the important keys",
          "[captured][model]") {
  const model::LlamaModel llama(kModelDir);
  const auto tokenizer = model::load_tokenizer(llama.dir(), llama.config().vocab_size);
  const auto& ruler = tasks::TaskRegistry::instance().get("ruler", "test");
  const Json task_params = {{"task", "niah_multivalue"}};
  const auto p = captured_problem(1500, 50, {{"task", "ruler"}, {"task_params", task_params}});
  Json given = task_params;
  given["samples"] = 1;
  const auto sample =
      ruler
          .make_text_samples(tasks::CellContext{resolve_params(ruler.params, given, "test"), 1500 - 1 - 8, 50, 7},
                             *tokenizer)
          .at(0);
  REQUIRE(sample.references.size() == 4);
  std::size_t digits = 0;
  for (const auto& value : sample.references) digits += value.size();
  REQUIRE(p.important_keys.size() == digits);  // each value appears once, in its needle
  // The important keys form one run of consecutive positions per value, spelling the value.
  const auto tokens = tokenizer->encode(sample.prompt);
  std::vector<std::string> runs;
  for (std::size_t i = 0; i < p.important_keys.size(); ++i) {
    if (i == 0 || p.important_keys[i] != p.important_keys[i - 1] + 1) runs.emplace_back();
    runs.back() += tokenizer->decode({tokens.at(p.important_keys[i] - 1)});
  }
  CHECK(std::multiset<std::string>(runs.begin(), runs.end()) ==
        std::multiset<std::string>(sample.references.begin(), sample.references.end()));
  CHECK(p.tokens <= 1500);
}

TEST_CASE("attention_captured: the source must be a text task", "[captured][model]") {
  CHECK_THROWS_WITH(captured_problem(300, 50, {{"task", "attention_needle"}}),
                    Catch::Contains("attention_captured.task: expected a text task"));
}

TEST_CASE("attention_captured: a prompt template is refused, not ignored", "[captured][model]") {
  CHECK_THROWS_WITH(captured_problem(300, 50, {{"prompt_template", "Q: {prompt}"}}),
                    Catch::Contains("attention_captured.prompt_template: not supported"));
}

}  // namespace
}  // namespace ctxbench::testing
