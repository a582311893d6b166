// The shared conformance test: every registered engine goes through it automatically, against the float64
// reference, on fresh random inputs and the edge cases (a single token, T smaller than any window, T not a
// multiple of any block, GQA, fp16/bf16 K/V).
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <string>

#include "engines/engine.h"
#include "harness/attention_driver.h"
#include "kernels/reference.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using engines::Phase;
using namespace ctxbench::testing;

namespace {

struct Shape {
  int heads_q, heads_kv, dim, tokens, queries;
  kernels::DType dtype;
};

const Shape kShapes[] = {
    {1, 1, 16, 1, 1, kernels::DType::f32},       // a single token
    {4, 1, 32, 7, 1, kernels::DType::f32},       // smaller than every window, GQA 4
    {8, 2, 64, 333, 1, kernels::DType::f32},     // not a multiple of any block
    {8, 8, 64, 300, 37, kernels::DType::f32},    // prefill chunk, no GQA
    {8, 1, 128, 517, 5, kernels::DType::f16},    // GQA 8, fp16
    {4, 2, 96, 1100, 64, kernels::DType::bf16},  // head_dim 96, bf16, longer
};

std::vector<double> reference(const Problem& p) {
  const auto& L = p.layout;
  const kernels::QueryView q{p.q.data(), L.heads_q, p.queries, L.head_dim};
  const kernels::KvView k{p.k.data(), kernels::DType::f32, L.heads_kv,
                          p.tokens,   L.head_dim,          static_cast<std::size_t>(p.tokens) * L.head_dim};
  kernels::KvView v = k;
  v.data = p.v.data();
  const kernels::CausalLayout causal{p.tokens - p.queries, 1.0f / std::sqrt(static_cast<float>(L.head_dim))};
  return kernels::reference_attention(q, k, v, causal).out;
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// Contexts from this size up are longer than every engine's test budget.
constexpr int kSparseFrom = 300;

// Methods that keep every key (compressed or not) attend to the whole context.
bool selects_keys(engines::KvPolicy policy) {
  return policy == engines::KvPolicy::evicts || policy == engines::KvPolicy::masks;
}

// Whether the engine attended fewer keys than the context somewhere: in the prefill (vertical-slash drops keys
// only there) or in the last decode step after a prefill (methods that evict after the prefill, or are dense at
// prefill, such as Quest, drop them there).
bool drops_keys(std::uint64_t prefill_keys_max, std::uint64_t last_step_keys, int tokens) {
  return std::min(prefill_keys_max, last_step_keys) < static_cast<std::uint64_t>(tokens);
}

Problem shape_problem(const Shape& shape) {
  return random_problem({shape.heads_q, shape.heads_kv, shape.dim, shape.dtype, 0, 1}, shape.tokens, shape.queries,
                        1000 + shape.tokens);
}

std::string describe(const Shape& shape) {
  std::ostringstream out;
  out << "Hq=" << shape.heads_q << " Hkv=" << shape.heads_kv << " d=" << shape.dim << " T=" << shape.tokens
      << " queries=" << shape.queries << " " << kernels::dtype_name(shape.dtype);
  return out.str();
}

}  // namespace

TEST_CASE(
    "every registered engine under its small test parameters: finite, causal, exact over the keys it reports "
    "(within its stated tolerance if it compresses K/V), fewer keys than the context from 300 tokens on (prefill, or "
    "decode after a prefill), deterministic, decode "
    "after prefill equal to prefill where the method says so",
    "[engines][conformance]") {
  // One section per engine, the problems made inside it: Catch2 reruns the test case once per section, so work
  // outside the sections is repeated for every engine.
  for (const auto& [name, info] : engines::EngineRegistry::instance().entries()) {
    if (!info.make) continue;  // text-only engines (remote servers) have their own tests
    DYNAMIC_SECTION(name) {
      REQUIRE_FALSE(info.test_params.is_null());  // every attention engine declares small test parameters
      const auto engine = info.make(resolve_params(info.params, info.test_params, name));
      for (const Shape& shape : kShapes) {
        INFO(name << " " << describe(shape));
        Problem p = shape_problem(shape);
        p.tolerance = info.output_tolerance;
        engines::SessionStats prefill_stats;
        std::uint64_t last_step_keys = 0;
        const auto prefill = run_prefill(*engine, p, &prefill_stats);
        const auto decode = run_decode(*engine, p);
        const auto prefill_then_decode = run_prefill_then_decode(*engine, p, &last_step_keys);
        CHECK(all_finite(prefill));
        CHECK(all_finite(decode));
        CHECK(all_finite(prefill_then_decode));
        CHECK(run_prefill(*engine, p) == prefill);  // deterministic
        CHECK(run_decode(*engine, p) == decode);
        if (info.decode_matches_prefill) {
          CHECK(relative_l2_error(prefill_then_decode, {prefill.begin(), prefill.end()}) < 1e-6);
        }
        if (selects_keys(info.policy) && shape.tokens >= kSparseFrom && shape.queries > 1) {
          INFO("prefill keys_attended_max " << prefill_stats.keys_attended_max << ", last decode step "
                                            << last_step_keys);
          CHECK(drops_keys(prefill_stats.keys_attended_max, last_step_keys, shape.tokens));
        }
      }
    }
  }
}

TEST_CASE("every registered engine with a budget that covers the context equals dense attention",
          "[engines][conformance]") {
  for (const auto& [name, info] : engines::EngineRegistry::instance().entries()) {
    if (!info.make || !info.exact_params) continue;
    DYNAMIC_SECTION(name) {
      for (const Shape& shape : kShapes) {
        INFO(name << " " << describe(shape));
        const Problem p = shape_problem(shape);
        const auto engine = info.make(resolve_params(info.params, info.exact_params(shape.tokens), name));
        const auto expected = reference(p);
        CHECK(relative_l2_error(run_prefill(*engine, p), expected) < 1e-5);
        CHECK(relative_l2_error(run_decode(*engine, p), expected) < 1e-5);
      }
    }
  }
}
