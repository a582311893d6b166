// Random attention problems and the drivers that run an engine session over them, checking after every
// attend call that the output is exact attention over the keys the session reports (shared by the engine
// conformance test and the baseline tests).
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>

#include "engines/engine.h"
#include "harness/attention_driver.h"
#include "kernels/reference.h"
#include "tests/helpers.h"

namespace ctxbench::testing {

using engines::Phase;

struct Problem {
  engines::HeadLayout layout;
  int tokens, queries;
  std::vector<float> q, k, v;
  // Relative L2 error allowed against exact attention over the reported keys (EngineInfo::output_tolerance).
  double tolerance = 1e-5;
};

// Random Q/K/V with standard normal entries; K/V rounded to their stored precision so that a float64
// reference measures only the method's error.
inline Problem random_problem(const engines::HeadLayout& layout, int tokens, int queries, std::uint64_t seed) {
  Rng rng(seed);
  Problem p{layout, tokens, queries, {}, {}, {}};
  p.q = random_vector(rng, static_cast<std::size_t>(layout.heads_q) * queries * layout.head_dim);
  p.k = random_vector(rng, static_cast<std::size_t>(layout.heads_kv) * tokens * layout.head_dim);
  p.v = random_vector(rng, p.k.size());
  for (auto* buffer : {&p.k, &p.v}) {
    for (float& x : *buffer) {
      if (layout.kv_dtype == kernels::DType::f16) x = kernels::half_to_float(kernels::float_to_half(x));
      if (layout.kv_dtype == kernels::DType::bf16) x = kernels::bf16_to_float(kernels::float_to_bf16(x));
    }
  }
  return p;
}

using tasks::slice_tokens;

inline kernels::KvView full_view(const Problem& p, const std::vector<float>& data) {
  return {data.data(), kernels::DType::f32, p.layout.heads_kv,
          p.tokens,    p.layout.head_dim,   static_cast<std::size_t>(p.tokens) * p.layout.head_dim};
}

// The session's last attend call (queries q [heads_q][n][dim] at positions first..first+n-1) must be exact
// attention over the keys attended() reports, which must be causal, sorted and disjoint.
inline void check_matches_attended(const engines::Session& session, const Problem& p, const float* q, int n, int first,
                                   const float* out) {
  const auto& L = p.layout;
  kernels::SparsePlan plan{1, {}};
  for (int h = 0; h < L.heads_q; ++h) {
    for (int t = 0; t < n; ++t) {
      auto ranges = session.attended(h, t);
      REQUIRE(!ranges.empty());  // every query sees at least one key (itself at the least)
      for (std::size_t i = 0; i < ranges.size(); ++i) {
        CHECK(ranges[i].begin >= 0);
        CHECK(ranges[i].begin < ranges[i].end);
        CHECK(ranges[i].end <= first + t + 1);  // never a key after the query
        if (i > 0) CHECK(ranges[i - 1].end < ranges[i].begin);
      }
      plan.ranges.push_back(std::move(ranges));
    }
  }
  const kernels::QueryView query{q, L.heads_q, n, L.head_dim};
  const kernels::CausalLayout causal{first, 1.0f / std::sqrt(static_cast<float>(L.head_dim))};
  const auto expected = kernels::reference_attention(query, full_view(p, p.k), full_view(p, p.v), causal, &plan);
  const std::vector<float> actual(out, out + static_cast<std::size_t>(L.heads_q) * n * L.head_dim);
  CHECK(relative_l2_error(actual, expected.out) < p.tolerance);
}

// A fixed pseudo-random stand-in in [0, 8) for the model's surprisal of the token at `position`, which a model
// runtime would report after each forward call (Session::token_surprisal; only SirLLM uses it).
inline float stand_in_surprisal(int position) {
  Rng rng(0x5151'0000ULL + static_cast<std::uint64_t>(position));
  return static_cast<float>(8.0 * rng.uniform());
}

// The positions that key ranges cover, in order.
inline std::vector<int> expand(const std::vector<kernels::KeyRange>& ranges) {
  std::vector<int> out;
  for (const auto& r : ranges) {
    for (int t = r.begin; t < r.end; ++t) out.push_back(t);
  }
  return out;
}

// One layer's heads as the engine tests build them (a session of layer `layer`, of one layer in all).
inline engines::HeadLayout head_layout(int heads_q, int heads_kv, int dim, kernels::DType dtype = kernels::DType::f32,
                                       int layer = 0) {
  return {heads_q, heads_kv, dim, dtype, layer, 1};
}

// Call sizes summing to `tokens`: a prefill chunk of `prefill`, then random chunks of 1 to `largest` tokens.
inline std::vector<int> call_sizes(Rng& rng, int tokens, int prefill, int largest) {
  std::vector<int> calls;
  int at = std::min(prefill, tokens);
  if (at > 0) calls.push_back(at);
  while (at < tokens) {
    const int n = std::min(tokens - at, static_cast<int>(rng.integer(1, largest)));
    calls.push_back(n);
    at += n;
  }
  return calls;
}

// Appends tokens [first, first + count) of the problem and reports their stand-in surprisal.
inline void append_tokens(engines::Session& session, const Problem& p, int first, int count) {
  if (count <= 0) return;
  const auto& L = p.layout;
  session.append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, first, count).data(),
                 slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, first, count).data(), count);
  std::vector<float> surprisal(count);
  for (int i = 0; i < count; ++i) surprisal[i] = stand_in_surprisal(first + i);
  session.token_surprisal(surprisal.data(), count);
}

// Queries [from, from + count) of the problem attend as one prefill call; writes their rows of `out`.
inline void prefill_queries(engines::Session& session, const Problem& p, int from, int count, std::vector<float>& out) {
  if (count <= 0) return;
  const auto& L = p.layout;
  const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, from, count);
  std::vector<float> chunk(q.size(), std::nanf(""));
  session.attend(q.data(), count, Phase::prefill, chunk.data());
  const int first = p.tokens - p.queries + from;
  check_matches_attended(session, p, q.data(), count, first, chunk.data());
  for (int h = 0; h < L.heads_q; ++h) {
    std::copy_n(chunk.begin() + static_cast<std::size_t>(h) * count * L.head_dim,
                static_cast<std::size_t>(count) * L.head_dim,
                out.begin() + (static_cast<std::size_t>(h) * p.queries + from) * L.head_dim);
  }
}

// Queries [from, queries) one decode step each, appending each query's key first.
inline void decode_queries(engines::Session& session, const Problem& p, int from, std::vector<float>& out) {
  const auto& L = p.layout;
  std::vector<float> step(static_cast<std::size_t>(L.heads_q) * L.head_dim);
  for (int t = from; t < p.queries; ++t) {
    const int position = p.tokens - p.queries + t;
    append_tokens(session, p, position, 1);
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, t, 1);
    session.attend(q.data(), 1, Phase::decode, step.data());
    check_matches_attended(session, p, q.data(), 1, position, step.data());
    for (int h = 0; h < L.heads_q; ++h) {
      std::copy_n(step.begin() + h * L.head_dim, L.head_dim,
                  out.begin() + (static_cast<std::size_t>(h) * p.queries + t) * L.head_dim);
    }
  }
}

// Appends the prompt, then the chunk's keys, then attends the chunk's queries as one prefill call; `stats`, if
// given, receives the session's counters.
inline std::vector<float> run_prefill(const engines::Engine& engine, const Problem& p,
                                      engines::SessionStats* stats_out = nullptr) {
  auto session = engine.open(p.layout);
  append_tokens(*session, p, 0, p.tokens);
  std::vector<float> out(p.q.size(), std::nanf(""));
  prefill_queries(*session, p, 0, p.queries, out);
  const auto stats = session->stats();
  CHECK(stats.keys_attended_max <= static_cast<std::uint64_t>(p.tokens));
  CHECK(stats.queries == static_cast<std::uint64_t>(p.layout.heads_q) * p.queries);
  CHECK(stats.keys_attended >= stats.queries);
  CHECK(stats.kv_bytes_resident > 0);
  CHECK(stats.kv_bytes_read > 0);
  if (stats_out) *stats_out = stats;
  return out;
}

// The same tokens, one decode step per query.
inline std::vector<float> run_decode(const engines::Engine& engine, const Problem& p,
                                     engines::SessionStats* stats_out = nullptr) {
  auto session = engine.open(p.layout);
  append_tokens(*session, p, 0, p.tokens - p.queries);
  std::vector<float> out(p.q.size(), std::nanf(""));
  decode_queries(*session, p, 0, out);
  if (stats_out) *stats_out = session->stats();
  return out;
}

// Keys query row (head, 0) of the session's last attend call used, the most over the heads.
inline std::uint64_t keys_of_last_call(const engines::Session& session, int heads_q) {
  std::uint64_t most = 0;
  for (int h = 0; h < heads_q; ++h) {
    std::uint64_t keys = 0;
    for (const auto& range : session.attended(h, 0)) keys += range.end - range.begin;
    most = std::max(most, keys);
  }
  return most;
}

// The first half of the queries as one prefill call, then the rest as decode steps; `last_step_keys`, if given,
// receives the keys the last decode step attended (keys_of_last_call).
inline std::vector<float> run_prefill_then_decode(const engines::Engine& engine, const Problem& p,
                                                  std::uint64_t* last_step_keys = nullptr) {
  auto session = engine.open(p.layout);
  const int prefilled = p.queries / 2;
  append_tokens(*session, p, 0, p.tokens - p.queries + prefilled);
  std::vector<float> out(p.q.size(), std::nanf(""));
  prefill_queries(*session, p, 0, prefilled, out);
  decode_queries(*session, p, prefilled, out);
  if (last_step_keys) *last_step_keys = keys_of_last_call(*session, p.layout.heads_q);
  return out;
}

}  // namespace ctxbench::testing
