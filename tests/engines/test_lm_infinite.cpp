// LM-Infinite against a plain transcription of its Lambda mask (which keys each query row attends, in original
// positions) at the attention level, and, fed un-rotated keys as a model runtime does, against float64
// attention with the global branch's keys at the capped distance; through the bundled model a covering local
// branch must give dense logits.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "engines/selection.h"
#include "model/backend.h"
#include "model/llama_model.h"
#include "tests/engine_problems.h"
#include "tests/model_logits.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

std::unique_ptr<engines::Engine> make_lm_infinite(int n_global, int n_local, int distance_limit) {
  const auto& info = engines::EngineRegistry::instance().get("lm_infinite", "test");
  const Json params = {{"n_global", n_global}, {"n_local", n_local}, {"distance_limit", distance_limit}};
  return info.make(resolve_params(info.params, params, "lm_infinite"));
}

// The keys query `position` attends: key j is global if j < n_global and at least n_local before the query,
// local if fewer than n_local before it.
std::vector<int> lambda_keys(int position, int n_global, int n_local) {
  std::vector<int> keys;
  for (int j = 0; j <= position; ++j) {
    const bool local = position - j < n_local;
    if (local || j < n_global) keys.push_back(j);
  }
  return keys;
}

void check_rows(const engines::Session& session, const Problem& p, int first, int n, int n_global, int n_local) {
  for (int h = 0; h < p.layout.heads_q; ++h) {
    for (int i = 0; i < n; ++i) {
      INFO("head " << h << " position " << first + i);
      CHECK(expand(session.attended(h, i)) == lambda_keys(first + i, n_global, n_local));
    }
  }
}

// Float64 output of query row (h, position) of un-rotated inputs: local keys and the query at their real
// positions; global keys un-rotated (position 0) against the query at min(limit, position).
std::vector<double> ceiling_row(const Problem& p, const kernels::RopeFrequencies& f, int h, int query, int position,
                                int n_global, int n_local, int limit) {
  const int d = p.layout.head_dim, g = h / (p.layout.heads_q / p.layout.heads_kv);
  const float* q = p.q.data() + (static_cast<std::size_t>(h) * p.queries + query) * d;
  const auto q_local = testing::ref_rope_copy(q, d, position, f),
             q_global = testing::ref_rope_copy(q, d, std::min(limit, position), f);
  const std::vector<int> keys = lambda_keys(position, n_global, n_local);
  std::vector<double> logits;
  for (int j : keys) {
    const float* k = p.k.data() + (static_cast<std::size_t>(g) * p.tokens + j) * d;
    const bool local = position - j < n_local;
    const auto key = local ? testing::ref_rope_copy(k, d, j, f) : std::vector<double>(k, k + d);
    const auto& qq = local ? q_local : q_global;
    double s = 0;
    for (int c = 0; c < d; ++c) s += qq[c] * key[c];
    logits.push_back(s / std::sqrt(static_cast<double>(d)));
  }
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> out(d, 0.0);
  double sum = 0;
  for (std::size_t s = 0; s < keys.size(); ++s) {
    const double w = std::exp(logits[s] - top);
    sum += w;
    for (int c = 0; c < d; ++c) out[c] += w * p.v[(static_cast<std::size_t>(g) * p.tokens + keys[s]) * d + c];
  }
  for (double& x : out) x /= sum;
  return out;
}

struct Case {
  engines::HeadLayout layout;
  int tokens, queries, n_global, n_local;
};

const Case kCases[] = {
    {{2, 1, 16, kernels::DType::f32, 0, 1}, 1, 1, 4, 8},       // a single token
    {{4, 4, 32, kernels::DType::f32, 0, 1}, 20, 6, 4, 50},     // context shorter than the local branch
    {{4, 2, 32, kernels::DType::f32, 0, 1}, 90, 10, 100, 30},  // fewer tokens than n_global
    {{8, 2, 64, kernels::DType::f16, 0, 1}, 301, 17, 5, 40},   // GQA 4, fp16, not a multiple of anything
    {{8, 1, 32, kernels::DType::bf16, 0, 1}, 257, 12, 0, 33},  // no global branch, GQA 8
};

}  // namespace

TEST_CASE("lm_infinite attends exactly the Lambda mask: n_global first keys + n_local newest",
          "[baselines][lm_infinite]") {
  for (const Case& c : kCases) {
    DYNAMIC_SECTION("T=" << c.tokens << " G=" << c.n_global << " L=" << c.n_local << " Hq=" << c.layout.heads_q) {
      const Problem p = random_problem(c.layout, c.tokens, c.queries, 40 + c.tokens);
      const auto engine = make_lm_infinite(c.n_global, c.n_local, c.n_local);
      auto session = engine->open(p.layout);
      const int prefill = c.queries / 2, first = c.tokens - c.queries;
      append_tokens(*session, p, 0, first + prefill);
      std::vector<float> out(p.q.size());
      prefill_queries(*session, p, 0, prefill, out);  // also checks exactness over the reported keys
      if (prefill > 0) check_rows(*session, p, first, prefill, c.n_global, c.n_local);
      for (int t = prefill; t < c.queries; ++t) {
        append_tokens(*session, p, first + t, 1);
        const auto q = slice_tokens(p.q, p.layout.heads_q, c.queries, p.layout.head_dim, t, 1);
        std::vector<float> step(q.size());
        session->attend(q.data(), 1, Phase::decode, step.data());
        check_matches_attended(*session, p, q.data(), 1, first + t, step.data());
        check_rows(*session, p, first + t, 1, c.n_global, c.n_local);
      }
      // Memory: what the mask can still read, plus the call's own tokens.
      const auto held = session->stats().kv_bytes_resident / engines::key_bytes(p.layout) / p.layout.heads_kv;
      CHECK(held <= static_cast<std::uint64_t>(c.n_global + c.n_local + c.queries));
    }
  }
}

TEST_CASE("lm_infinite with un-rotated keys places the global branch at the distance ceiling",
          "[baselines][lm_infinite]") {
  const int tokens = 260, queries = 24, n_global = 6, n_local = 40;
  const engines::HeadLayout layout{4, 2, 32, kernels::DType::f32, 0, 1};
  const Problem p = random_problem(layout, tokens, queries, 77);
  const auto f = kernels::RopeConfig::standard_rope(32).frequencies(tokens);
  for (int limit : {n_local, 200}) {
    DYNAMIC_SECTION("distance_limit " << limit) {
      const auto engine = make_lm_infinite(n_global, n_local, limit);
      REQUIRE(engine->wants_unrotated_kv());
      auto session = engine->open_unrotated(layout, {f, kernels::RopeLayout::neox});
      const int first = tokens - queries, prefill = 16;
      append_tokens(*session, p, 0, first + prefill);
      auto check_call = [&](int from, int n, engines::Phase phase) {
        const auto q = slice_tokens(p.q, layout.heads_q, queries, layout.head_dim, from, n);
        std::vector<float> out(q.size());
        session->attend(q.data(), n, phase, out.data());
        std::vector<double> expected;
        for (int h = 0; h < layout.heads_q; ++h) {
          for (int i = 0; i < n; ++i) {
            const auto row = ceiling_row(p, f, h, from + i, first + from + i, n_global, n_local, limit);
            expected.insert(expected.end(), row.begin(), row.end());
          }
        }
        CHECK(relative_l2_error(out, expected) < 2e-5);
        check_rows(*session, p, first + from, n, n_global, n_local);
      };
      check_call(0, prefill, engines::Phase::prefill);
      for (int t = prefill; t < queries; ++t) {
        append_tokens(*session, p, first + t, 1);
        check_call(t, 1, engines::Phase::decode);
      }
    }
  }
}

TEST_CASE("lm_infinite: the bundled model's logits equal dense ones when the local branch covers the context",
          "[baselines][lm_infinite][model]") {
  const model::LlamaModel m((source_tree() / model::kBundledModel).string());
  const int length = 400;
  const std::vector<int> tokens = testing::printable_tokens(length, 9);
  auto logits = [&](const engines::Engine& engine) { return testing::logits_under(m, engine, tokens, 6); };
  const auto& dense_info = engines::EngineRegistry::instance().get("dense", "test");
  const auto dense = logits(*dense_info.make(resolve_params(dense_info.params, Json::object(), "dense")));
  const std::vector<double> reference(dense.begin(), dense.end());
  CHECK(relative_l2_error(logits(*make_lm_infinite(4, length, 64)), reference) < 1e-5);
  // A short local branch drops keys and caps distances: the comparison has teeth.
  CHECK(relative_l2_error(logits(*make_lm_infinite(4, 64, 64)), reference) > 1e-3);
}
