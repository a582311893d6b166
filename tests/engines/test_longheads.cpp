// LongHeads (engines/longheads.cpp): the chunks every query head attends against a slow float64 transcription of
// the rule (chunk representatives by attention pooling of the chunk's queries, or its keys where the session never
// saw them; first, previous and own chunk plus the best chunks by q.rep) on fresh random problems, through prefill
// calls and decode steps, with the output checked as exact attention over the keys reported; fed un-rotated keys,
// the representatives at chunk-local positions and the output over the keys at contiguous positions; through the
// bundled model, chunks that cover the context give dense logits.
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/backend.h"
#include "model/llama_model.h"
#include "tests/engine_problems.h"
#include "tests/model_logits.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

struct Settings {
  int chunk_size, chunks, begin_selective_length;
};

std::unique_ptr<engines::Engine> longheads(const Settings& s) {
  const auto& info = engines::EngineRegistry::instance().get("longheads", "test");
  const Json params{{"chunk_size", s.chunk_size},
                    {"chunks", s.chunks},
                    {"begin_selective_length", s.begin_selective_length},
                    {"threads", 1}};
  return info.make(resolve_params(info.params, params, "longheads"));
}

// Row t of head g of a [heads][tokens][dim] buffer (K, V, or Q: the problems have a query per token), in float64.
std::vector<double> row(const Problem& p, const std::vector<float>& data, int g, int t) {
  const int d = p.layout.head_dim;
  const auto* at = data.data() + (static_cast<std::size_t>(g) * p.tokens + t) * d;
  return {at, at + d};
}

double dot64(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

// sum_t softmax_t(x.keys[t] / sqrt(d)) values[t].
std::vector<double> pool(const std::vector<double>& x, const std::vector<std::vector<double>>& keys,
                         const std::vector<std::vector<double>>& values) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(x.size()));
  std::vector<double> weights;
  for (const auto& key : keys) weights.push_back(scale * dot64(x, key));
  const double top = *std::max_element(weights.begin(), weights.end());
  double sum = 0.0;
  for (double& w : weights) sum += (w = std::exp(w - top));
  std::vector<double> out(x.size(), 0.0);
  for (std::size_t t = 0; t < keys.size(); ++t) {
    for (std::size_t c = 0; c < out.size(); ++c) out[c] += weights[t] / sum * values[t][c];
  }
  return out;
}

// The representative key of chunk j for query head h, from the head's queries if the session was given them (the
// problem has a query for every position, given from `queried_from` on), else from the keys; with `rope`, queries
// and keys rotated to their offset in the chunk.
std::vector<double> representative(const Problem& p, const Settings& s, int h, int j, int queried_from,
                                   const kernels::RopeFrequencies* rope) {
  const int g = h / (p.layout.heads_q / p.layout.heads_kv);
  std::vector<std::vector<double>> queries, keys, values;
  for (int t = j * s.chunk_size; t < (j + 1) * s.chunk_size; ++t) {
    keys.push_back(row(p, p.k, g, t));
    values.push_back(row(p, p.v, g, t));
    if (rope) ref_rope(keys.back().data(), t - j * s.chunk_size, *rope);
    queries.push_back(row(p, p.q, h, t));
    if (rope) ref_rope(queries.back().data(), t - j * s.chunk_size, *rope);
    if (j * s.chunk_size < queried_from) queries.back() = keys.back();
  }
  std::vector<double> mean(p.layout.head_dim, 0.0);
  for (const auto& query : queries) {
    const auto out = pool(query, keys, values);
    for (std::size_t c = 0; c < mean.size(); ++c) mean[c] += out[c] / s.chunk_size;
  }
  return pool(mean, keys, keys);
}

// The positions query head h at `position` attends, its query vector `q`.
std::vector<int> expected_keys(const Problem& p, const Settings& s, int h, int position, const float* q,
                               int queried_from, const kernels::RopeFrequencies* rope) {
  const int own = position / s.chunk_size;
  std::vector<bool> seen(position + 1, true);
  if (position >= s.begin_selective_length && own + 1 > s.chunks) {
    const std::vector<double> query(q, q + p.layout.head_dim);
    std::vector<std::pair<double, int>> ranked;  // (-score, chunk): ascending = best first, ties to the lower chunk
    for (int j = 1; j <= own - 2; ++j)
      ranked.push_back({-dot64(query, representative(p, s, h, j, queried_from, rope)), j});
    std::sort(ranked.begin(), ranked.end());
    std::vector<bool> chosen(own + 1, false);
    chosen[0] = chosen[own - 1] = chosen[own] = true;
    for (int i = 0; i < s.chunks - 3; ++i) chosen[ranked[i].second] = true;
    for (int t = 0; t <= position; ++t) seen[t] = chosen[t / s.chunk_size];
  }
  std::vector<int> out;
  for (int t = 0; t <= position; ++t) {
    if (seen[t]) out.push_back(t);
  }
  return out;
}

// Float64 attention of an un-rotated query over the un-rotated keys at `positions`, the i-th key rotated to i and
// the query to the last.
std::vector<double> contiguous_attention(const Problem& p, const kernels::RopeFrequencies& rope, int h, const float* q,
                                         const std::vector<int>& positions) {
  const int g = h / (p.layout.heads_q / p.layout.heads_kv), count = static_cast<int>(positions.size());
  const auto query = ref_rope_copy(q, p.layout.head_dim, count - 1, rope);
  std::vector<std::vector<double>> keys, values;
  for (int j = 0; j < count; ++j) {
    keys.push_back(row(p, p.k, g, positions[j]));
    ref_rope(keys.back().data(), j, rope);
    values.push_back(row(p, p.v, g, positions[j]));
  }
  return pool(query, keys, values);
}

// Appends the first `unqueried` tokens without their queries, then runs the rest through a session in calls of the
// given sizes (one token after the first call is a decode step); every query row's keys must be the transcription's
// and the output exact over them (with `rope`, fed un-rotated, over them at contiguous positions). Returns how many
// rows attended fewer keys than their context.
int run_calls(const Problem& p, const Settings& s, int unqueried, const std::vector<int>& calls,
              const kernels::RopeFrequencies* rope = nullptr) {
  const auto& L = p.layout;
  REQUIRE(p.queries == p.tokens);
  const auto engine = longheads(s);
  REQUIRE(engine->wants_unrotated_kv());
  auto session = rope ? engine->open_unrotated(L, {*rope, kernels::RopeLayout::neox}) : engine->open(L);
  if (unqueried > 0) {
    session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, 0, unqueried).data(),
                    slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, 0, unqueried).data(), unqueried);
  }
  int first = unqueried, sparse_rows = 0;
  for (const int n : calls) {
    INFO("call of " << n << " tokens at " << first);
    session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, first, n).data(),
                    slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, first, n).data(), n);
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, first, n);
    std::vector<float> out(q.size());
    const auto phase = n == 1 && first > 0 ? engines::Phase::decode : engines::Phase::prefill;
    session->attend(q.data(), n, phase, out.data());
    std::vector<double> expected;
    for (int h = 0; h < L.heads_q; ++h) {
      for (int i = 0; i < n; ++i) {
        INFO("head " << h << " query " << first + i);
        const float* query = q.data() + (static_cast<std::size_t>(h) * n + i) * L.head_dim;
        const auto keys = expand(session->attended(h, i));
        REQUIRE(keys == expected_keys(p, s, h, first + i, query, unqueried, rope));
        if (static_cast<int>(keys.size()) < first + i + 1) ++sparse_rows;
        if (rope) {
          const auto row_out = contiguous_attention(p, *rope, h, query, keys);
          expected.insert(expected.end(), row_out.begin(), row_out.end());
        }
      }
    }
    if (rope) {
      CHECK(relative_l2_error(out, expected) < 2e-5);
    } else {
      check_matches_attended(*session, p, q.data(), n, first, out.data());
    }
    first += n;
  }
  REQUIRE(first == p.tokens);
  return sparse_rows;
}

}  // namespace

TEST_CASE("longheads: the chunks each head attends equal the float64 transcription of the rule",
          "[engines][longheads]") {
  struct Case {
    engines::HeadLayout layout;
    int tokens, unqueried, prefill, largest;
    Settings settings;
  };
  const Case cases[] = {
      {head_layout(4, 4, 16, kernels::DType::f32), 150, 0, 150, 1, {16, 4, 64}},  // one prefill, no GQA
      {head_layout(8, 2, 32, kernels::DType::f32), 203, 45, 50, 7, {8, 5, 20}},   // GQA 4, a prompt without queries
      {head_layout(8, 1, 16, kernels::DType::f16), 171, 0, 40, 1, {10, 3, 0}},    // GQA 8, fp16, only the fixed chunks
      {head_layout(4, 2, 16, kernels::DType::bf16), 97, 20, 13, 12, {7, 6, 30}},  // bf16, chunk not dividing anything
  };
  std::uint64_t seed = 2402'10685;
  for (const Case& c : cases) {
    DYNAMIC_SECTION("chunk " << c.settings.chunk_size << " chunks " << c.settings.chunks << " from "
                             << c.settings.begin_selective_length << " T=" << c.tokens) {
      Rng rng(++seed);
      const Problem p = random_problem(c.layout, c.tokens, c.tokens, rng.next());
      const auto calls = call_sizes(rng, c.tokens - c.unqueried, c.prefill, c.largest);
      CHECK(run_calls(p, c.settings, c.unqueried, calls) > 0);
    }
  }
}

TEST_CASE("longheads: contexts within the chunks, early queries and a single token attend every key",
          "[engines][longheads]") {
  for (const int tokens : {1, 7, 64}) {
    const Problem p = random_problem(head_layout(4, 2, 16, kernels::DType::f32), tokens, tokens, 300 + tokens);
    CHECK(run_calls(p, {16, 4, 0}, 0, {tokens}) == 0);
  }
  // Past the chunks, but before begin_selective_length.
  const Problem p = random_problem(head_layout(2, 1, 8, kernels::DType::f32), 100, 100, 400);
  CHECK(run_calls(p, {8, 3, 100}, 0, {60, 40}) == 0);
}

TEST_CASE("longheads with un-rotated keys: representatives at chunk-local positions, each row's keys contiguous",
          "[engines][longheads]") {
  const int tokens = 190;
  const auto rope = kernels::RopeConfig::standard_rope(32).frequencies(tokens);
  struct Case {
    engines::HeadLayout layout;
    int unqueried;
    std::vector<int> calls;
    Settings settings;
  };
  const Case cases[] = {
      {head_layout(4, 2, 32, kernels::DType::f32), 0, {100, 1, 1, 30, 1, 57}, {8, 5, 40}},  // every query seen, GQA
      {head_layout(4, 4, 32, kernels::DType::f16), 53, {60, 1, 76}, {16, 4, 0}},            // a prompt without queries
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION("chunk " << c.settings.chunk_size << " unqueried " << c.unqueried) {
      const Problem p = random_problem(c.layout, tokens, tokens, 190 + c.unqueried);
      CHECK(run_calls(p, c.settings, c.unqueried, c.calls, &rope) > 0);
    }
  }
}

TEST_CASE("longheads: the bundled model's logits equal dense ones when the chunks cover the context",
          "[engines][longheads][model]") {
  const model::LlamaModel m((source_tree() / model::kBundledModel).string());
  const int length = 400;
  const std::vector<int> tokens = testing::printable_tokens(length, 11);
  auto logits = [&](const engines::Engine& engine) { return testing::logits_under(m, engine, tokens, 6); };
  const auto& dense_info = engines::EngineRegistry::instance().get("dense", "test");
  const auto dense = logits(*dense_info.make(resolve_params(dense_info.params, Json::object(), "dense")));
  const std::vector<double> reference(dense.begin(), dense.end());
  CHECK(relative_l2_error(logits(*longheads({32, 13, 0})), reference) < 1e-5);
  // Fewer chunks drop keys and move the rest closer: the comparison has teeth.
  CHECK(relative_l2_error(logits(*longheads({32, 4, 0})), reference) > 1e-3);
}
