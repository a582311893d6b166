// Shared by the HiP and InfiniteHiP mask builders: scoring one stored key row against query vectors, a
// small parallel loop, and key-range arithmetic. Mask building touches a few scattered rows per candidate,
// so these work row by row on the cache's own storage, in its own dtype (no copies of the cache or the row).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engines/dot.h"
#include "engines/selection.h"
#include "kernels/attention.h"
#include "kernels/simd.h"
#include "kernels/thread_pool.h"

namespace ctxbench::engines::hip {

// Reads rows of a [heads][tokens][dim] key view. Row addresses are computed inline (not by KvView::row): the
// mask builders' scattered reads ask for one per row scored and per row prefetched.
class KeyRows {
 public:
  explicit KeyRows(const kernels::KvView& keys) : keys_(keys), element_bytes_(kernels::dtype_bytes(keys.dtype)) {}

  int dim() const { return keys_.dim; }
  int tokens() const { return keys_.tokens; }
  std::size_t row_bytes() const { return static_cast<std::size_t>(keys_.dim) * element_bytes_; }
  const std::byte* row(int head, int token) const {
    const std::size_t index =
        static_cast<std::size_t>(head) * keys_.head_stride + static_cast<std::size_t>(token) * keys_.dim;
    return static_cast<const std::byte*>(keys_.data) + index * element_bytes_;
  }

  // max over the `count` vectors of `queries` ([count][dim], row-major) of q.key for the row (head, token).
  float max_dot(const float* queries, int count, int head, int token) const;

  // The row widened to fp32 into `out` (dim floats).
  void widen(int head, int token, float* out) const {
    kernels::widen_to_float(row(head, token), keys_.dtype, out, static_cast<std::size_t>(keys_.dim));
  }

  // Hints the memory system that (head, token) will be read soon: every cache line the row touches (rows
  // need not start on a line). kernels::simd::prefetch, not __builtin_prefetch: g++ takes a function that
  // only prefetches for pure and deletes the calls to it.
  void prefetch(int head, int token) const {
    const auto begin = reinterpret_cast<std::uintptr_t>(row(head, token));
    const std::uintptr_t last_line = (begin + row_bytes() - 1) & ~std::uintptr_t{63};
    for (std::uintptr_t line = begin & ~std::uintptr_t{63}; line <= last_line; line += 64) {
      kernels::simd::prefetch(reinterpret_cast<const void*>(line));
    }
  }

 private:
  kernels::KvView keys_;
  std::size_t element_bytes_;
};

// Key rows a mask builder read (each (KV head, token) row counted once per read).
struct MaskCounters {
  std::uint64_t key_rows_read = 0;
};

// max over the `count` vectors of `queries` ([count][dim], row-major) of q.key, for a key row stored as
// `dtype`.
float max_dot(const float* queries, int count, const void* key, kernels::DType dtype, int dim);

using kernels::KeyRange;
using kernels::parallel_for;

// What a query block attends: the sinks, the selected ranges and the window of every query of the block
// (positions first..last), merged and cut after the last query.
std::vector<KeyRange> block_ranges(int sinks, int window, std::vector<KeyRange> selected, int first_position,
                                   int last_position);

// Keys of sorted disjoint `ranges` that a query at `position` can see (those at or before it).
std::uint64_t visible_keys(const std::vector<KeyRange>& ranges, int position);

// The ranges cut after `position`.
std::vector<KeyRange> visible_ranges(const std::vector<KeyRange>& ranges, int position);

// ---- inline definitions ----

#ifdef CTXBENCH_ENGINES_AVX2
// q.key for 8 consecutive queries at once, one lane each: the key row is loaded once per 8 queries, the 8
// accumulators are independent chains, and one reduction serves all 8 (dim a multiple of 8).
template <kernels::DType dtype>
inline __m256 dot8(const float* queries, const void* key, int dim) {
  __m256 acc[8];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (int i = 0; i < dim; i += 8) {
    const __m256 k = load_key8<dtype>(key, i);
    for (int j = 0; j < 8; ++j) {
      acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(queries + static_cast<std::size_t>(j) * dim + i), k, acc[j]);
    }
  }
  const __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
  const __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31));
}
#endif

#ifdef CTXBENCH_SIMD_AVX512
// dot8 at 512 bits: q.key for 16 consecutive queries, one lane each (dim a multiple of 16). Half the
// instructions of two dot8 calls, which matters where a block's 32 sampled queries score every row.
template <kernels::DType dtype>
inline kernels::simd::Vec dot16(const float* queries, const void* key, int dim) {
  namespace simd = kernels::simd;
  simd::Vec acc[16];
  for (simd::Vec& a : acc) a = simd::zero();
  for (int i = 0; i < dim; i += 16) {
    const simd::Vec k = simd::load_widened<dtype>(key, i);
    for (int j = 0; j < 16; ++j) {
      acc[j] = simd::fmadd(simd::load(queries + static_cast<std::size_t>(j) * dim + i), k, acc[j]);
    }
  }
  return simd::sum_each(acc);
}
#endif

template <kernels::DType dtype>
inline float max_dot(const float* queries, int count, const void* key, int dim) {
  float best = -__builtin_inff();
  int i = 0;
#ifdef CTXBENCH_SIMD_AVX512
  if (dim % 16 == 0 && count >= 16) {
    kernels::simd::Vec best16 = kernels::simd::set1(best);
    for (; i + 16 <= count; i += 16) {
      best16 = kernels::simd::max(best16, dot16<dtype>(queries + static_cast<std::size_t>(i) * dim, key, dim));
    }
    best = kernels::simd::reduce_max(best16);
  }
#endif
#ifdef CTXBENCH_ENGINES_AVX2
  if (dim % 8 == 0 && count - i >= 8) {
    __m256 best8 = _mm256_set1_ps(best);
    for (; i + 8 <= count; i += 8)
      best8 = _mm256_max_ps(best8, dot8<dtype>(queries + static_cast<std::size_t>(i) * dim, key, dim));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, best8);
    for (float lane : lanes) best = lane > best ? lane : best;
  }
#endif
  for (; i < count; ++i) {
    const float d = dot_stored<dtype>(queries + static_cast<std::size_t>(i) * dim, key, dim);
    best = d > best ? d : best;
  }
  return best;
}

inline float max_dot(const float* queries, int count, const void* key, kernels::DType dtype, int dim) {
  switch (dtype) {
    case kernels::DType::f32: return max_dot<kernels::DType::f32>(queries, count, key, dim);
    case kernels::DType::f16: return max_dot<kernels::DType::f16>(queries, count, key, dim);
    case kernels::DType::bf16: return max_dot<kernels::DType::bf16>(queries, count, key, dim);
  }
  return -__builtin_inff();
}

inline float KeyRows::max_dot(const float* queries, int count, int head, int token) const {
  return hip::max_dot(queries, count, row(head, token), keys_.dtype, keys_.dim);
}

}  // namespace ctxbench::engines::hip
