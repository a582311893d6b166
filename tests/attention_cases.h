// Random attention problems and comparisons against the float64 reference, shared by the CPU and CUDA
// kernel tests.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/reference.h"

namespace ctxbench::testing {

using namespace ctxbench::kernels;

// Seeded from Catch's --rng-seed (ctest pins it; Catch prints it with a failure), so any failure replays.
inline std::mt19937& rng() {
  static std::mt19937 engine(Catch::rngSeed());
  return engine;
}

inline int uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng()); }

inline std::vector<float> random_floats(std::size_t n, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> out(n);
  for (float& x : out) x = dist(rng());
  return out;
}

// K or V storage of any dtype, with `slack` unused tokens per head so head_stride > tokens * dim.
struct KvTensor {
  std::vector<float> f32;
  std::vector<std::uint16_t> half;
  KvView view;

  KvTensor(DType dtype, int heads, int tokens, int dim, int slack = 3) {
    const std::size_t stride = static_cast<std::size_t>(tokens + slack) * dim;
    const std::vector<float> values = random_floats(stride * heads, 1.0f);
    view = {nullptr, dtype, heads, tokens, dim, stride};
    if (dtype == DType::f32) {
      f32 = values;
      view.data = f32.data();
      return;
    }
    for (float x : values) half.push_back(dtype == DType::f16 ? float_to_half(x) : float_to_bf16(x));
    view.data = half.data();
  }
};

struct Problem {
  int q_heads, kv_heads, q_tokens, k_tokens, dim;
  DType dtype = DType::f32;
  int first_query_pos = -1;  // -1: queries are the last q_tokens keys
};

struct Inputs {
  std::vector<float> queries;
  QueryView q;
  KvTensor k, v;
  CausalLayout layout;

  explicit Inputs(const Problem& p)
      : queries(random_floats(static_cast<std::size_t>(p.q_heads) * p.q_tokens * p.dim, 1.5f)),
        q{queries.data(), p.q_heads, p.q_tokens, p.dim},
        k(p.dtype, p.kv_heads, p.k_tokens, p.dim),
        v(p.dtype, p.kv_heads, p.k_tokens, p.dim) {
    layout.first_query_pos = p.first_query_pos >= 0 ? p.first_query_pos : p.k_tokens - p.q_tokens;
    layout.scale = 1.0f / std::sqrt(static_cast<float>(p.dim));
  }
};

// Outputs start as NaN so that any element a kernel forgets to write fails the comparison.
struct Outputs {
  std::vector<float> out, lse;
  explicit Outputs(const QueryView& q)
      : out(static_cast<std::size_t>(q.heads) * q.tokens * q.dim, std::numeric_limits<float>::quiet_NaN()),
        lse(static_cast<std::size_t>(q.heads) * q.tokens, std::numeric_limits<float>::quiet_NaN()) {}
  AttentionOutput view() { return {out.data(), lse.data()}; }
};

inline double relative_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double d = got[i] - want[i];
    err += std::isnan(got[i]) ? std::numeric_limits<double>::infinity() : d * d;
    norm += want[i] * want[i];
  }
  return norm > 0.0 ? std::sqrt(err / norm) : std::sqrt(err);
}

// Rows that attended to nothing must be exactly zero with lse -inf; others have lse close to the reference.
inline void check_lse(const std::vector<float>& got, const std::vector<double>& want, double tolerance) {
  for (std::size_t r = 0; r < want.size(); ++r) {
    INFO("row " << r);
    if (std::isinf(want[r])) {
      REQUIRE((std::isinf(got[r]) && got[r] < 0));
    } else {
      REQUIRE(std::abs(got[r] - want[r]) <= tolerance * std::max(1.0, std::abs(want[r])));
    }
  }
}

inline void check_against_reference(const Inputs& in, Outputs& got, const SparsePlan* plan) {
  const ReferenceResult want = reference_attention(in.q, in.k.view, in.v.view, in.layout, plan);
  // Widening fp16/bf16 is exact, so every dtype meets the fp32 bound (the issue allows 2e-3 for them).
  CHECK(relative_l2(got.out, want.out) < 1e-5);
  check_lse(got.lse, want.lse, 1e-5);
}

inline std::string describe(const Problem& p, int threads) {
  return "q_heads " + std::to_string(p.q_heads) + " kv_heads " + std::to_string(p.kv_heads) + " q_tokens " +
         std::to_string(p.q_tokens) + " k_tokens " + std::to_string(p.k_tokens) + " dim " + std::to_string(p.dim) +
         " dtype " + std::string(dtype_name(p.dtype)) + " threads " + std::to_string(threads);
}

// Random sorted, disjoint ranges per (head, block): some empty, some reaching past causality, and the
// heads of a KV group sometimes sharing one list (the grouped path) and sometimes not.
inline SparsePlan random_plan(const Problem& p, int query_block) {
  SparsePlan plan;
  plan.query_block = query_block;
  const int blocks = plan.num_query_blocks(p.q_tokens);
  plan.ranges.resize(static_cast<std::size_t>(p.q_heads) * blocks);
  const int group = p.q_heads / p.kv_heads;
  for (int h = 0; h < p.q_heads; ++h) {
    for (int b = 0; b < blocks; ++b) {
      auto& ranges = plan.ranges[static_cast<std::size_t>(h) * blocks + b];
      if (h % group != 0 && uniform_int(0, 1) == 0) {
        ranges = plan.ranges[static_cast<std::size_t>(h - h % group) * blocks + b];
        continue;
      }
      int at = uniform_int(0, 40);
      while (at < p.k_tokens) {
        const int length = uniform_int(0, 90);  // 0 gives an empty range
        ranges.push_back({at, std::min(at + length, p.k_tokens + 5)});
        at += length + uniform_int(1, 150);
      }
      if (uniform_int(0, 5) == 0) ranges.clear();  // a block that attends to nothing
    }
  }
  return plan;
}

}  // namespace ctxbench::testing
