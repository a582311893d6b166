// LongGen's pattern (engines/longgen.cpp): which layers attend in full against the paper's split written out by
// hand, and, per layer, the keys of every query row against a plain transcription (all keys on a full layer; the
// sinks and the newest keys on a sparse one), through prefill chunks and decode steps, with exact outputs.
#include <catch2/catch.hpp>
#include <numeric>
#include <vector>

#include "engines/engine.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

std::unique_ptr<engines::Engine> longgen(const Json& params) {
  const auto& info = engines::EngineRegistry::instance().get("longgen", "test");
  return info.make(resolve_params(info.params, params, "longgen"));
}

// The keys query `position` attends on a layer: all before it on a full layer; on a sparse layer the first `sinks`
// and the newest keys, `budget` in all (the query itself included), or all when the budget covers them.
std::vector<int> expected_keys(int position, bool full, int budget, int sinks) {
  std::vector<int> keys;
  const int context = position + 1;
  for (int j = 0; j < context; ++j) {
    const bool recent = context - j <= budget - std::min(sinks, budget - 1);
    if (full || context <= budget || j < std::min(sinks, budget - 1) || recent) keys.push_back(j);
  }
  return keys;
}

// The problem's tokens in calls of the given sizes (one token after the first: a decode step); every row's keys
// must be the transcription's and every output exact over them.
void run_layer(const engines::Engine& engine, const Problem& p, const std::vector<int>& calls, bool full, int budget,
               int sinks) {
  const auto& L = p.layout;
  REQUIRE(p.queries == p.tokens);
  auto session = engine.open(L);
  int first = 0;
  for (const int n : calls) {
    append_tokens(*session, p, first, n);
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, first, n);
    std::vector<float> out(q.size());
    session->attend(q.data(), n, n == 1 && first > 0 ? engines::Phase::decode : engines::Phase::prefill, out.data());
    for (int h = 0; h < L.heads_q; ++h) {
      for (int i = 0; i < n; ++i) {
        INFO("head " << h << " position " << first + i);
        REQUIRE(expand(session->attended(h, i)) == expected_keys(first + i, full, budget, sinks));
      }
    }
    check_matches_attended(*session, p, q.data(), n, first, out.data());
    first += n;
  }
  REQUIRE(first == p.tokens);
}

std::vector<int> full_layers_of(const engines::Engine& engine, int num_layers) {
  // A full layer attends to every key of a context longer than the budget; a sparse one does not.
  std::vector<int> full;
  for (int layer = 0; layer < num_layers; ++layer) {
    const engines::HeadLayout L{2, 1, 8, kernels::DType::f32, layer, num_layers};
    const Problem p = random_problem(L, 20, 1, 3);
    auto session = engine.open(L);
    append_tokens(*session, p, 0, 20);
    std::vector<float> out(static_cast<std::size_t>(L.heads_q) * L.head_dim);
    session->attend(p.q.data(), 1, engines::Phase::decode, out.data());
    if (expand(session->attended(0, 0)).size() == 20) full.push_back(layer);
  }
  return full;
}

}  // namespace

TEST_CASE("longgen: the middle third of the layers attend in full, a lone layer is sparse", "[engines][longgen]") {
  const auto engine = longgen(Json{{"budget", 8}, {"sinks", 2}});
  CHECK(full_layers_of(*engine, 1).empty());
  CHECK(full_layers_of(*engine, 2) == std::vector<int>{0});
  CHECK(full_layers_of(*engine, 3) == std::vector<int>{1});
  CHECK(full_layers_of(*engine, 6) == std::vector<int>{2, 3});
  CHECK(full_layers_of(*engine, 32) == std::vector<int>{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20});
  std::vector<int> llama2_70b(27);  // 80 layers: round(80 / 3) = 27 in the middle, 26 below and 27 above
  std::iota(llama2_70b.begin(), llama2_70b.end(), 26);
  CHECK(full_layers_of(*engine, 80) == llama2_70b);
  const auto chosen = longgen(Json{{"budget", 8}, {"sinks", 2}, {"full_layers", {0, 4}}});
  CHECK(full_layers_of(*chosen, 6) == std::vector<int>{0, 4});
  CHECK(full_layers_of(*chosen, 1).empty());
}

TEST_CASE("longgen: each layer's keys equal the transcription of its pattern", "[engines][longgen]") {
  struct Case {
    int heads_q, heads_kv, dim;
    kernels::DType dtype;
    int tokens, budget, sinks;
    std::vector<int> calls;
  };
  const Case cases[] = {
      {4, 4, 16, kernels::DType::f32, 1, 16, 4, {1}},                      // a single token
      {4, 2, 16, kernels::DType::f32, 11, 16, 4, {5, 1, 1, 4}},            // shorter than the budget
      {8, 2, 32, kernels::DType::f32, 157, 24, 4, {50, 1, 1, 33, 1, 71}},  // GQA 4, not a multiple of anything
      {8, 1, 16, kernels::DType::f16, 90, 30, 0, {40, 1, 1, 1, 47}},       // GQA 8, no sinks, fp16
      {4, 2, 16, kernels::DType::bf16, 70, 5, 8, {30, 1, 39}},             // sinks beyond the budget, bf16
  };
  std::uint64_t seed = 2410'01485;
  for (const Case& c : cases) {
    for (const int num_layers : {1, 3}) {
      for (int layer = 0; layer < num_layers; ++layer) {
        const bool full = num_layers == 3 && layer == 1;
        DYNAMIC_SECTION("T=" << c.tokens << " budget " << c.budget << " sinks " << c.sinks << " layer " << layer
                             << " of " << num_layers) {
          const engines::HeadLayout L{c.heads_q, c.heads_kv, c.dim, c.dtype, layer, num_layers};
          const Problem p = random_problem(L, c.tokens, c.tokens, ++seed);
          const auto engine = longgen(Json{{"budget", c.budget}, {"sinks", c.sinks}, {"threads", 1}});
          run_layer(*engine, p, c.calls, full, c.budget, c.sinks);
        }
      }
    }
  }
}

TEST_CASE("longgen: the memory plan counts full layers whole and sparse ones at their window", "[engines][longgen]") {
  const auto chosen = longgen(Json{{"budget", 100}, {"sinks", 4}, {"full_layers", {1}}});
  CHECK(chosen->peak_resident_keys(5000, 64, 0) == 164);
  CHECK(chosen->peak_resident_keys(5000, 64, 1) == 5000);
  CHECK(chosen->peak_resident_keys(50, 64, 0) == 50);
  // Without explicit layers the plan cannot tell which are full (it does not know the model's depth).
  CHECK(longgen(Json{{"budget", 100}})->peak_resident_keys(5000, 64, 0) == 5000);
}
