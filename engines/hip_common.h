// Shared by the HiP and InfiniteHiP mask builders: reading one stored key row as fp32, dot products against
// query vectors, a small parallel loop, and key-range arithmetic. Mask building touches a few scattered
// rows per candidate, so these work row by row on the cache's own storage (no copies of the cache).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engines/dot.h"
#include "engines/selection.h"
#include "kernels/attention.h"
#include "kernels/thread_pool.h"

namespace ctxbench::engines::hip {

// Reads rows of a [heads][tokens][dim] key view, widened to fp32.
class KeyRows {
 public:
  explicit KeyRows(const kernels::KvView& keys) : keys_(keys) {}

  int dim() const { return keys_.dim; }
  int tokens() const { return keys_.tokens; }
  std::size_t row_bytes() const { return static_cast<std::size_t>(keys_.dim) * kernels::dtype_bytes(keys_.dtype); }

  // The row as fp32: a pointer into the cache for f32 storage, else `scratch` (dim floats) filled.
  const float* row(int head, int token, float* scratch) const;

  // Hints the memory system that (head, token) will be read soon.
  void prefetch(int head, int token) const {
    const char* p = reinterpret_cast<const char*>(keys_.row(head, token));
    for (std::size_t offset = 0; offset < row_bytes(); offset += 64) __builtin_prefetch(p + offset);
  }

 private:
  kernels::KvView keys_;
};

// Key rows a mask builder read (each (KV head, token) row counted once per read).
struct MaskCounters {
  std::uint64_t key_rows_read = 0;
};

// max over the `count` vectors of `queries` ([count][dim], row-major) of q.key.
float max_dot(const float* queries, int count, const float* key, int dim);

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
inline __m256 dot8(const float* queries, const float* key, int dim) {
  __m256 acc[8];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (int i = 0; i < dim; i += 8) {
    const __m256 k = _mm256_loadu_ps(key + i);
    for (int j = 0; j < 8; ++j) {
      acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(queries + static_cast<std::size_t>(j) * dim + i), k, acc[j]);
    }
  }
  const __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
  const __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31));
}
#endif

inline float max_dot(const float* queries, int count, const float* key, int dim) {
  float best = -__builtin_inff();
  int i = 0;
#ifdef CTXBENCH_ENGINES_AVX2
  if (dim % 8 == 0 && count >= 8) {
    __m256 best8 = _mm256_set1_ps(best);
    for (; i + 8 <= count; i += 8)
      best8 = _mm256_max_ps(best8, dot8(queries + static_cast<std::size_t>(i) * dim, key, dim));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, best8);
    for (float lane : lanes) best = lane > best ? lane : best;
  }
#endif
  for (; i < count; ++i) {
    const float d = dot(queries + static_cast<std::size_t>(i) * dim, key, dim);
    best = d > best ? d : best;
  }
  return best;
}

inline const float* KeyRows::row(int head, int token, float* scratch) const {
  const std::byte* src = keys_.row(head, token);
  const int dim = keys_.dim;
  switch (keys_.dtype) {
    case kernels::DType::f32: return reinterpret_cast<const float*>(src);
    case kernels::DType::f16: {
      const auto* half = reinterpret_cast<const std::uint16_t*>(src);
      int i = 0;
#ifdef CTXBENCH_ENGINES_AVX2
      for (; i + 8 <= dim; i += 8) {
        _mm256_storeu_ps(scratch + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(half + i))));
      }
#endif
      for (; i < dim; ++i) scratch[i] = kernels::half_to_float(half[i]);
      return scratch;
    }
    case kernels::DType::bf16: {
      const auto* bf = reinterpret_cast<const std::uint16_t*>(src);
      for (int i = 0; i < dim; ++i) scratch[i] = std::bit_cast<float>(static_cast<std::uint32_t>(bf[i]) << 16);
      return scratch;
    }
  }
  return scratch;
}

}  // namespace ctxbench::engines::hip
