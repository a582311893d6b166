// InfiniteHiP's RoPE modes end to end: a session fed un-rotated queries and keys (Engine::open_unrotated)
// must equal float64 attention over the keys it reports, rotated in float64 to their streaming positions
// (or real positions with attention_rope none); with a covering budget the streaming positions are the real
// ones, so it must equal dense attention; through the model runtime, the bundled model's logits with the
// modes on and a covering budget must equal dense ones.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "harness/attention_driver.h"
#include "model/backend.h"
#include "model/llama_model.h"
#include "tests/engine_problems.h"
#include "tests/helpers.h"
#include "tests/model_logits.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;
using engines::Phase;

namespace {

const Json kSmall = {{"budget", 128},
                     {"sinks", 16},
                     {"window", 64},
                     {"stage_chunks", {64, 16, 4}},
                     {"stage_keeps", {1024, 512}},
                     {"query_block", 32},
                     {"dense_layers", {0}},
                     {"dense_layer_budget", 256},
                     {"threads", 2}};

std::unique_ptr<engines::Engine> make_engine(Json params) {
  const auto& info = engines::EngineRegistry::instance().get("infinite_hip", "test");
  return info.make(resolve_params(info.params, params, "infinite_hip"));
}

Json with(Json base, const Json& extra) {
  for (const auto& [key, value] : extra.items()) base[key] = value;
  return base;
}

struct Problem {
  engines::HeadLayout layout;
  int tokens;
  std::vector<float> q, k, v;  // q [heads_q][tokens][dim] (a query per position), k/v [heads_kv][tokens][dim]
  const float* q_row(int h, int t) const {
    return q.data() + (static_cast<std::size_t>(h) * tokens + t) * layout.head_dim;
  }
  const float* k_row(int h, int t) const {
    return k.data() + (static_cast<std::size_t>(h) * tokens + t) * layout.head_dim;
  }
  const float* v_row(int h, int t) const {
    return v.data() + (static_cast<std::size_t>(h) * tokens + t) * layout.head_dim;
  }
};

Problem random_problem(int layer, int tokens, std::uint64_t seed) {
  Rng rng(seed);
  Problem p{{4, 2, 32, kernels::DType::f32, layer, 4}, tokens, {}, {}, {}};
  p.q = testing::random_vector(rng, static_cast<std::size_t>(4) * tokens * 32);
  p.k = testing::random_vector(rng, static_cast<std::size_t>(2) * tokens * 32);
  p.v = testing::random_vector(rng, p.k.size());
  return p;
}

// Float64 output of query head h at `position` over `ranges`, keys at streaming positions (the attended keys
// numbered contiguously up to the query) or at their real positions.
std::vector<double> reference_row(const Problem& p, const kernels::RopeFrequencies& f, int h, int position,
                                  const std::vector<kernels::KeyRange>& ranges, bool streaming) {
  const int d = p.layout.head_dim, kv = h / (p.layout.heads_q / p.layout.heads_kv);
  std::vector<int> keys;
  for (const auto& r : ranges) {
    for (int t = r.begin; t < r.end; ++t) keys.push_back(t);
  }
  const std::vector<double> q = testing::ref_rope_copy(p.q_row(h, position), d, position, f);
  std::vector<double> scores;
  double best = -INFINITY;
  for (std::size_t s = 0; s < keys.size(); ++s) {
    const std::int64_t key_position = streaming ? position - static_cast<std::int64_t>(keys.size() - 1 - s) : keys[s];
    const std::vector<double> k = testing::ref_rope_copy(p.k_row(kv, keys[s]), d, key_position, f);
    double dot = 0;
    for (int i = 0; i < d; ++i) dot += q[i] * k[i];
    scores.push_back(dot / std::sqrt(static_cast<double>(d)));
    best = std::max(best, scores.back());
  }
  std::vector<double> out(d, 0.0);
  double sum = 0;
  for (std::size_t s = 0; s < keys.size(); ++s) {
    const double w = std::exp(scores[s] - best);
    sum += w;
    for (int i = 0; i < d; ++i) out[i] += w * p.v_row(kv, keys[s])[i];
  }
  for (double& x : out) x /= sum;
  return out;
}

// Prefill of `prefill` queries after the prompt, then decode steps to the end; after every call the output
// must match the float64 reference over the reported keys (all keys when `dense`). Returns keys attended.
std::uint64_t check_session(const engines::Engine& engine, const Problem& p, const kernels::RopeFrequencies& f,
                            int prefill, int steps, bool streaming, bool dense) {
  const auto& L = p.layout;
  auto session = engine.open_unrotated(L, {f, kernels::RopeLayout::neox});
  const int prompt = p.tokens - prefill - steps;
  session->append(testing::slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, 0, prompt).data(),
                  testing::slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, 0, prompt).data(), prompt);
  auto run = [&](int first, int n, Phase phase) {
    session->append(testing::slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, first, n).data(),
                    testing::slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, first, n).data(), n);
    std::vector<float> out(static_cast<std::size_t>(L.heads_q) * n * L.head_dim);
    session->attend(testing::slice_tokens(p.q, L.heads_q, p.tokens, L.head_dim, first, n).data(), n, phase, out.data());
    std::vector<double> expected;
    for (int h = 0; h < L.heads_q; ++h) {
      for (int t = 0; t < n; ++t) {
        const auto ranges = dense ? std::vector<kernels::KeyRange>{{0, first + t + 1}} : session->attended(h, t);
        const auto row = reference_row(p, f, h, first + t, ranges, streaming);
        expected.insert(expected.end(), row.begin(), row.end());
      }
    }
    REQUIRE(relative_l2_error(out, expected) < 2e-5);
  };
  run(prompt, prefill, Phase::prefill);
  for (int s = 0; s < steps; ++s) run(prompt + prefill + s, 1, Phase::decode);
  return session->stats().keys_attended;
}

kernels::RopeFrequencies yarn_frequencies(std::int64_t tokens) {
  return kernels::RopeConfig::from_hf_json(
             {{"hidden_size", 128},
              {"num_attention_heads", 4},
              {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 512}}}})
      .frequencies(tokens);
}

}  // namespace

TEST_CASE("infinite_hip RoPE modes: outputs equal float64 attention at the mode's positions over the reported keys",
          "[hip][engine][hip_rope]") {
  const int tokens = 2600;
  const kernels::RopeFrequencies standard = kernels::RopeConfig::standard_rope(32).frequencies(tokens);
  const kernels::RopeFrequencies yarn = yarn_frequencies(tokens);
  for (const char* prune : {"per_layer", "relative", "chunk_indexed", "none"}) {
    for (const char* attention : {"streaming", "none"}) {
      if (std::string(prune) == "none" && std::string(attention) == "none") continue;
      for (int layer : {0, 2}) {  // layer 0 is a dense-ish layer (chunk-indexed under per_layer)
        DYNAMIC_SECTION("prune_rope " << prune << ", attention_rope " << attention << ", layer " << layer) {
          const auto engine = make_engine(with(kSmall, {{"prune_rope", prune}, {"attention_rope", attention}}));
          REQUIRE(engine->wants_unrotated_kv());
          const Problem p = random_problem(layer, tokens, 17 + layer);
          const bool streaming = std::string(attention) == "streaming";
          const std::uint64_t attended =
              check_session(*engine, p, layer == 0 ? yarn : standard, 70, 5, streaming, false);
          // Sparse: far fewer keys than dense (75 queries x 4 heads x ~2.5K keys).
          CHECK(attended < 75ull * 4 * 1000);
        }
      }
    }
  }
}

TEST_CASE("infinite_hip RoPE modes: a covering budget with streaming positions equals dense attention",
          "[hip][engine][hip_rope]") {
  const int tokens = 1500;
  const auto& info = engines::EngineRegistry::instance().get("infinite_hip", "test");
  const Json exact = with(with(kSmall, info.exact_params(tokens)),
                          {{"prune_rope", "per_layer"}, {"attention_rope", "streaming"}, {"dense_layer_budget", 1536}});
  const auto engine = make_engine(exact);
  for (int layer : {0, 2}) {
    INFO("layer " << layer);
    const Problem p = random_problem(layer, tokens, 31 + layer);
    check_session(*engine, p, yarn_frequencies(tokens), 100, 4, true, true);
  }
}

TEST_CASE("infinite_hip RoPE modes: without a model runtime the engine says what it needs", "[hip][engine][hip_rope]") {
  const auto engine = make_engine(with(kSmall, {{"attention_rope", "streaming"}}));
  REQUIRE_THROWS_WITH(engine->open({4, 2, 32, kernels::DType::f32, 0, 1}), Catch::Contains("attention level"));
  REQUIRE_FALSE(make_engine(kSmall)->wants_unrotated_kv());
  REQUIRE_THROWS_WITH(make_engine(with(kSmall, {{"prune_rope", "relative"}, {"window", 0}})),
                      Catch::Contains("infinite_hip.window"));
}

TEST_CASE("infinite_hip RoPE modes: the bundled model's logits equal dense ones under a covering budget",
          "[hip][model][hip_rope]") {
  const std::string dir = (source_tree() / model::kBundledModel).string();
  const model::LlamaModel m(dir);
  const int length = 600;
  const std::vector<int> tokens = testing::printable_tokens(length, 7);
  auto logits = [&](const engines::Engine& engine) { return testing::logits_under(m, engine, tokens, 8); };
  const auto& dense_info = engines::EngineRegistry::instance().get("dense", "test");
  const auto dense = logits(*dense_info.make(resolve_params(dense_info.params, Json::object(), "dense")));
  const std::vector<double> reference(dense.begin(), dense.end());
  const auto& info = engines::EngineRegistry::instance().get("infinite_hip", "test");
  const Json covering = with(kSmall, info.exact_params(length));
  const auto modes_on = make_engine(
      with(covering, {{"prune_rope", "per_layer"}, {"attention_rope", "streaming"}, {"dense_layer_budget", 1024}}));
  CHECK(relative_l2_error(logits(*modes_on), reference) < 1e-5);
  // The same engine under a small budget attends fewer keys and no longer matches: the comparison has teeth.
  const auto sparse = make_engine(with(kSmall, {{"prune_rope", "per_layer"}, {"attention_rope", "streaming"}}));
  CHECK(relative_l2_error(logits(*sparse), reference) > 1e-3);
}
