// q.k over an fp32 query and a key row in its stored dtype (f32, f16 or bf16), widened in registers as it
// is read: the inner loop of every mask builder and key-selecting baseline that scores keys. Widening f16
// and bf16 is exact, so a stored row gives bit for bit the dot of its fp32 copy (same summation order).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/simd.h"  // before <immintrin.h>: it guards the AVX-512 header's warnings (GCC bug 105593)

// The AVX2 code also serves AVX-512 machines; CTXBENCH_SIMD_PORTABLE (simd.h) turns both off, to test the fallback.
#if defined(CTXBENCH_SIMD_AVX512) || defined(CTXBENCH_SIMD_AVX2)
#include <immintrin.h>
#define CTXBENCH_ENGINES_AVX2 1
#endif

namespace ctxbench::engines {

// Element i of a key row stored as `dtype`, as fp32.
template <kernels::DType dtype>
inline float key_element(const void* key, int i) {
  if constexpr (dtype == kernels::DType::f32) {
    return static_cast<const float*>(key)[i];
  } else if constexpr (dtype == kernels::DType::f16) {
    return kernels::half_to_float(static_cast<const std::uint16_t*>(key)[i]);
  } else {
    return std::bit_cast<float>(static_cast<std::uint32_t>(static_cast<const std::uint16_t*>(key)[i]) << 16);
  }
}

#ifdef CTXBENCH_ENGINES_AVX2
// Elements [i, i + 8) of a key row stored as `dtype`, as fp32.
template <kernels::DType dtype>
inline __m256 load_key8(const void* key, int i) {
  if constexpr (dtype == kernels::DType::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(key) + i);
  } else {
    const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(key) + i));
    if constexpr (dtype == kernels::DType::f16) return _mm256_cvtph_ps(bits);
    // bf16 is the upper half of an fp32.
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  }
}
#endif

// q.key for a key row stored as `dtype`.
template <kernels::DType dtype>
inline float dot_stored(const float* q, const void* key, int dim) {
  int i = 0;
  float sum = 0.0f;
#ifdef CTXBENCH_ENGINES_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; i + 16 <= dim; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_key8<dtype>(key, i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load_key8<dtype>(key, i + 8), acc1);
  }
  for (; i + 8 <= dim; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_key8<dtype>(key, i), acc0);
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_shuffle_ps(half, half, 1));
  sum = _mm_cvtss_f32(half);
#endif
  // std::fma: one rounding per term whatever the dtype, so contraction cannot make the dtypes differ.
  for (; i < dim; ++i) sum = std::fma(q[i], key_element<dtype>(key, i), sum);
  return sum;
}

inline float dot(const float* a, const float* b, int dim) { return dot_stored<kernels::DType::f32>(a, b, dim); }

}  // namespace ctxbench::engines
