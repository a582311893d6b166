// attention_recall, the share of dense attention's mass on the keys an engine attended, recomputed in float64
// from the problem alone for rules that are known in advance, and bounded by exact top-k.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/params.h"
#include "harness/attention_driver.h"
#include "kernels/reference.h"
#include "tasks/task.h"

namespace ctxbench::testing {
namespace {

tasks::AttentionProblem needle_problem(int tokens, std::uint64_t seed, const Json& overrides = Json::object()) {
  const auto& task = tasks::TaskRegistry::instance().get("attention_needle", "test");
  Json given = {{"heads_q", 4}, {"heads_kv", 2}, {"head_dim", 16}, {"queries", 4}, {"error_queries", 4}};
  given.update(overrides);
  const Json params = resolve_params(task.params, given, "test");
  return task.make_attention_problem(tasks::CellContext{params, tokens, 40, seed});
}

double measured(const std::string& engine_name, const Json& engine_params, const tasks::AttentionProblem& p,
                const std::string& metric) {
  const auto& info = engines::EngineRegistry::instance().get(engine_name, "test");
  const auto engine = info.make(resolve_params(info.params, engine_params, "test"));
  for (const auto& m : run_attention_problem(*engine, p, 1)) {
    if (m.metric == metric) return m.value();
  }
  FAIL("no " << metric);
  return 0;
}

// Mean over the problem's query rows of the float64 dense probability mass on `kept(position)`.
template <typename Kept>
double expected_recall(const tasks::AttentionProblem& p, Kept kept) {
  const auto& L = p.layout;
  const kernels::KvView k{p.k.data(), kernels::DType::f32, L.heads_kv,
                          p.tokens,   L.head_dim,          static_cast<std::size_t>(p.tokens) * L.head_dim};
  const kernels::QueryView q{p.q.data(), L.heads_q, p.queries, L.head_dim};
  const kernels::CausalLayout causal{p.tokens - p.queries, 1.0f / std::sqrt(static_cast<float>(L.head_dim))};
  double sum = 0;
  for (int h = 0; h < L.heads_q; ++h) {
    for (int t = 0; t < p.queries; ++t) {
      const auto probabilities = kernels::reference_probabilities(q, k, h, t, causal);
      const int position = p.tokens - p.queries + t;
      for (int key = 0; key <= position; ++key) sum += kept(position, key) ? probabilities[key] : 0.0;
    }
  }
  return sum / (L.heads_q * p.queries);
}

TEST_CASE("attention_recall: all the mass for dense, the mass of sinks + window for StreamingLLM", "[recall]") {
  for (const char* mode : {"decode", "prefill"}) {
    for (const std::uint64_t seed : {1u, 2u}) {
      const auto p = needle_problem(300, seed, {{"mode", mode}});
      INFO(mode << " seed " << seed);
      CHECK(measured("dense", Json::object(), p, "attention_recall") == Approx(1.0).epsilon(1e-9));
      const int budget = 64, sinks = 4;
      const double expected =
          expected_recall(p, [&](int position, int key) { return key < sinks || key > position - (budget - sinks); });
      CHECK(expected < 0.99);  // the rule drops mass worth measuring
      CHECK(measured("streaming_llm", {{"budget", budget}, {"sinks", sinks}}, p, "attention_recall") ==
            Approx(expected).epsilon(1e-9));
    }
  }
}

TEST_CASE("attention_recall: no engine keeping at most k keys per row beats exact top-k", "[recall]") {
  const auto p = needle_problem(1000, 3, {{"mode", "decode"}});
  const double best = measured("oracle_topk", {{"budget", 128}}, p, "attention_recall");
  CHECK(best < 1.0);
  CHECK(best > measured("streaming_llm", {{"budget", 128}}, p, "attention_recall"));
  CHECK(best >= measured("quest", {{"budget", 128}, {"page_size", 16}}, p, "attention_recall") - 1e-12);
  CHECK(best >=
        measured("hip", {{"budget", 64}, {"sinks", 16}, {"window", 48}, {"block_size_k", 2}}, p, "attention_recall") -
            1e-12);
}

}  // namespace
}  // namespace ctxbench::testing
