// q.k over fp32 rows: the inner loop of every mask builder and key-selecting baseline that scores keys.
#pragma once

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define CTXBENCH_ENGINES_AVX2 1
#endif

namespace ctxbench::engines {

inline float dot(const float* a, const float* b, int dim) {
  int i = 0;
  float sum = 0.0f;
#ifdef CTXBENCH_ENGINES_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; i + 16 <= dim; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= dim; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_shuffle_ps(half, half, 1));
  sum = _mm_cvtss_f32(half);
#endif
  for (; i < dim; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace ctxbench::engines
