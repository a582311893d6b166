// CPU attention kernels against the float64 reference on fresh random inputs.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/reference.h"
#include "tests/attention_cases.h"

namespace {

using namespace ctxbench::kernels;
using namespace ctxbench::testing;

void check_dense(const Problem& p, int threads) {
  INFO(describe(p, threads));
  const Inputs in(p);
  Outputs got(in.q);
  dense_attention(in.q, in.k.view, in.v.view, in.layout, got.view(), threads);
  check_against_reference(in, got, nullptr);
}

void check_sparse(const Problem& p, int query_block, int threads) {
  INFO(describe(p, threads) << " query_block " << query_block);
  const Inputs in(p);
  const SparsePlan plan = random_plan(p, query_block);
  Outputs got(in.q);
  sparse_attention(in.q, in.k.view, in.v.view, in.layout, plan, got.view(), threads);
  check_against_reference(in, got, &plan);
}

}  // namespace

TEST_CASE("dense attention matches the float64 reference", "[kernels]") {
  const std::vector<Problem> problems = {
      {1, 1, 1, 1, 64},                       // a single key
      {4, 1, 1, 300, 128},                    // decode, GQA 4, keys not a multiple of the tile
      {8, 1, 1, 257, 96, DType::f16},         // decode, GQA 8
      {2, 2, 3, 130, 37},                     // few queries, odd head_dim
      {4, 4, 1, 70, 64, DType::bf16},         // GQA 1 decode
      {8, 2, 37, 200, 128, DType::f16},       // prefill chunk, GQA 4, rows not a multiple of 16
      {4, 4, 50, 50, 64},                     // whole-sequence prefill, GQA 1
      {8, 1, 20, 150, 96, DType::bf16},       // GQA 8 prefill
      {2, 1, 17, 100, 45, DType::f16},        // wide path with an odd head_dim
      {4, 1, 9, 400, 128, DType::bf16, 200},  // queries in the middle: later keys are invisible
  };
  for (const Problem& p : problems) {
    for (int threads : {1, 2}) check_dense(p, threads);
  }
}

TEST_CASE("decode at key counts around the 64-key tile matches the float64 reference", "[kernels]") {
  // The decode kernel builds each tile one ahead (to prefetch its rows): key counts of exactly one or
  // several tiles leave no partial last tile, one more or one fewer key leaves a tile of 1 or 63.
  for (int keys : {1, 63, 64, 65, 128, 129, 192}) {
    for (int group : {1, 4, 8}) {
      for (DType dtype : {DType::f32, DType::f16, DType::bf16}) check_dense({group, 1, 1, keys, 128, dtype}, 1);
    }
  }
  // Several KV heads and a head_dim that is not a multiple of 16.
  check_dense({8, 2, 1, 256, 45, DType::bf16}, 2);
}

TEST_CASE("sparse decode whose ranges fill whole tiles matches the float64 reference", "[kernels]") {
  // Ranges that add up to exactly two tiles, with the second tile gathered from three ranges.
  const Problem p{4, 1, 1, 600, 128, DType::bf16};
  const Inputs in(p);
  SparsePlan plan;
  plan.query_block = 64;
  plan.ranges.assign(p.q_heads, {{10, 74}, {100, 120}, {300, 330}, {586, 600}});
  Outputs got(in.q);
  sparse_attention(in.q, in.k.view, in.v.view, in.layout, plan, got.view(), 1);
  check_against_reference(in, got, &plan);
}

TEST_CASE("dense attention splits long keys across threads and merges them exactly", "[kernels]") {
  // One KV head and few rows leave fewer items than threads, so keys are split and merged by lse.
  check_dense({4, 1, 1, 9000, 128, DType::f16}, 3);
  check_dense({1, 1, 20, 7000, 64, DType::f32}, 2);
}

TEST_CASE("sparse attention over random ranges matches the float64 reference", "[kernels]") {
  const std::vector<std::pair<Problem, int>> cases = {
      {{4, 1, 1, 500, 128}, 64},                // decode
      {{8, 2, 40, 300, 64, DType::f16}, 16},    // several query blocks
      {{4, 4, 33, 260, 96, DType::bf16}, 64},   // GQA 1
      {{8, 1, 24, 400, 37}, 8},                 // odd head_dim, GQA 8, small blocks
      {{4, 1, 64, 9000, 128, DType::f16}, 64},  // long enough to split keys
  };
  for (const auto& [p, block] : cases) {
    for (int threads : {1, 2}) check_sparse(p, block, threads);
  }
}

TEST_CASE("sparse attention over every key equals dense attention", "[kernels]") {
  const Problem p{8, 2, 30, 200, 64, DType::bf16};
  const Inputs in(p);
  SparsePlan plan;
  plan.query_block = 16;
  plan.ranges.assign(static_cast<std::size_t>(p.q_heads) * plan.num_query_blocks(p.q_tokens), {{0, p.k_tokens}});
  Outputs dense(in.q), sparse(in.q);
  dense_attention(in.q, in.k.view, in.v.view, in.layout, dense.view(), 2);
  sparse_attention(in.q, in.k.view, in.v.view, in.layout, plan, sparse.view(), 2);
  std::vector<double> dense_out(dense.out.begin(), dense.out.end());
  CHECK(relative_l2(sparse.out, dense_out) < 1e-6);
}

TEST_CASE("merging two disjoint key halves equals attention over all keys", "[kernels]") {
  for (int dim : {64, 128, 19}) {
    const Problem p{8, 2, 5, 333, dim, DType::f16};
    INFO("dim " << dim);
    const Inputs in(p);
    const int half = uniform_int(1, p.k_tokens - 1);
    SparsePlan first, second;
    first.query_block = second.query_block = p.q_tokens;
    first.ranges.assign(p.q_heads, {{0, half}});
    second.ranges.assign(p.q_heads, {{half, p.k_tokens}});
    Outputs a(in.q), b(in.q);
    sparse_attention(in.q, in.k.view, in.v.view, in.layout, first, a.view());
    sparse_attention(in.q, in.k.view, in.v.view, in.layout, second, b.view());
    merge_partials(a.out.data(), a.lse.data(), b.out.data(), b.lse.data(), p.q_heads * p.q_tokens, p.dim);
    check_against_reference(in, a, nullptr);
  }
}

TEST_CASE("widening fp16 and bf16 is exact for every bit pattern", "[kernels]") {
  std::vector<std::uint16_t> all(65536 + 5);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<float> widened(all.size());
  for (DType dtype : {DType::f16, DType::bf16}) {
    widen_to_float(all.data(), dtype, widened.data(), all.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      const float want = dtype == DType::f16 ? half_to_float(all[i]) : bf16_to_float(all[i]);
      INFO(dtype_name(dtype) << " bits " << all[i]);
      if (std::isnan(want)) {
        REQUIRE(std::isnan(widened[i]));
      } else {
        REQUIRE(widened[i] == want);
      }
    }
  }
}

TEST_CASE("attention rejects malformed inputs with a clear message", "[kernels]") {
  const Problem p{4, 2, 4, 40, 64};
  const Inputs in(p);
  Outputs got(in.q);
  SparsePlan plan;
  plan.query_block = 2;
  plan.ranges.assign(3, {{0, 10}});
  CHECK_THROWS_WITH(sparse_attention(in.q, in.k.view, in.v.view, in.layout, plan, got.view()),
                    Catch::Contains("range lists, expected 8"));
  plan.ranges.assign(8, {{0, 10}, {5, 20}});
  CHECK_THROWS_WITH(sparse_attention(in.q, in.k.view, in.v.view, in.layout, plan, got.view()),
                    Catch::Contains("not sorted and disjoint"));
  QueryView bad_q = in.q;
  bad_q.heads = 3;
  CHECK_THROWS_AS(dense_attention(bad_q, in.k.view, in.v.view, in.layout, got.view()), std::invalid_argument);
  CausalLayout late = in.layout;
  late.first_query_pos = p.k_tokens;
  CHECK_THROWS_WITH(dense_attention(in.q, in.k.view, in.v.view, late, got.view()),
                    Catch::Contains("need that many keys"));
}

TEST_CASE("attention without an lse output writes the same rows", "[kernels]") {
  // Long decode on two threads: keys are split and merged, which needs the lse internally.
  const Problem p{8, 2, 2, 6000, 64, DType::f16};
  const Inputs in(p);
  Outputs with_lse(in.q), without_lse(in.q);
  dense_attention(in.q, in.k.view, in.v.view, in.layout, with_lse.view(), 2);
  dense_attention(in.q, in.k.view, in.v.view, in.layout, {without_lse.out.data(), nullptr}, 2);
  CHECK(without_lse.out == with_lse.out);
}
