// Sixteen-lane float vectors for the CPU attention kernels. With AVX-512 these are intrinsics (g++
// only auto-vectorises at 256 bits on this machine); elsewhere plain arrays that compile anywhere.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/tile_math.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define CTXBENCH_SIMD_AVX512 1
// g++ 12's AVX-512 header initialises "undefined" vectors from themselves (GCC bug 105593), which
// -Werror=uninitialized rejects once inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace ctxbench::kernels::simd {

constexpr int kLanes = 16;
using Mask = std::uint16_t;
constexpr Mask kAllLanes = 0xffff;

// Lanes [0, n) set (none for n <= 0, all for n >= 16).
inline Mask first_lanes(int n) {
  if (n <= 0) return 0;
  return n >= kLanes ? kAllLanes : static_cast<Mask>((1u << n) - 1u);
}

#ifdef CTXBENCH_SIMD_AVX512

struct Vec {
  __m512 v;
};

inline Vec zero() { return {_mm512_setzero_ps()}; }
inline Vec set1(float x) { return {_mm512_set1_ps(x)}; }
inline Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline Vec load(const float* p, Mask m) { return {_mm512_maskz_loadu_ps(m, p)}; }
inline void store(float* p, Vec a) { _mm512_storeu_ps(p, a.v); }
inline void store(float* p, Vec a, Mask m) { _mm512_mask_storeu_ps(p, m, a.v); }
inline Vec add(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec sub(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vec mul(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
// a * b + c
inline Vec fmadd(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
// Lanes outside m become `fill`.
inline Vec select(Mask m, Vec a, Vec fill) { return {_mm512_mask_mov_ps(fill.v, m, a.v)}; }
inline Mask greater_equal(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ); }
inline float reduce_max(Vec a) { return _mm512_reduce_max_ps(a.v); }
inline float reduce_add(Vec a) { return _mm512_reduce_add_ps(a.v); }

// Makes the compiler hold `a` in a register: g++ otherwise re-reads a value used by several FMAs as a
// memory operand of each, which makes a loop bound by loads.
inline void keep_in_register(Vec& a) { asm("" : "+v"(a.v)); }

// Fetches the cache line holding p into L1. (asm, because g++ deletes __builtin_prefetch from some loops;
// the address goes in a register, because a memory operand made g++ store every live accumulator to the
// stack before each prefetch.)
inline void prefetch(const void* p) { asm volatile("prefetcht0 (%0)" : : "r"(p)); }

// Lanes i where positions[i] >= key.
inline Mask at_or_after(const int* positions, int key) {
  return _mm512_cmpge_epi32_mask(_mm512_loadu_si512(positions), _mm512_set1_epi32(key));
}

inline Vec load_f16(const std::uint16_t* p, Mask m) { return {_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p))}; }
// Unmasked forms: masked 16-bit loads are much slower on this machine (Zen 5) in hot loops.
inline Vec load_f16(const std::uint16_t* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
inline Vec load_bf16(const std::uint16_t* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16))};
}
inline Vec load_bf16(const std::uint16_t* p, Mask m) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16))};
}

// 2^x for x <= 0 lane-wise, as tile::exp2_nonpositive: 0 below the floor.
inline Vec exp2(Vec x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x.v, _mm512_set1_ps(tile::kExp2Floor), _CMP_GE_OQ);
  const __m512 n = _mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_maskz_sub_ps(live, x.v, n);
  __m512 p = _mm512_set1_ps(tile::kExp2P0);
  for (float c : {tile::kExp2P1, tile::kExp2P2, tile::kExp2P3, tile::kExp2P4, tile::kExp2P5, 1.0f}) {
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  }
  return {_mm512_maskz_scalef_ps(live, p, n)};
}

// Lane i of the result is the sum of all lanes of a[i] (a transposing reduction, ~3 operations per input
// instead of ~8 for sixteen separate horizontal sums).
inline Vec sum_each(const Vec (&a)[16]) {
  __m512 pairs[8];
  for (int i = 0; i < 8; ++i) {
    const __m512 x = a[2 * i].v, y = a[2 * i + 1].v;
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));
  }
  __m512 quads[4];
  for (int i = 0; i < 4; ++i) {
    const __m512d x = _mm512_castps_pd(pairs[2 * i]), y = _mm512_castps_pd(pairs[2 * i + 1]);
    quads[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // quads[i] holds, in each 128-bit block, partial sums of a[4i..4i+3]; now add the four blocks.
  __m512 halves[2];
  for (int i = 0; i < 2; ++i) {
    const __m512 x = quads[2 * i], y = quads[2 * i + 1];
    halves[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  return {_mm512_add_ps(_mm512_shuffle_f32x4(halves[0], halves[1], _MM_SHUFFLE(2, 0, 2, 0)),
                        _mm512_shuffle_f32x4(halves[0], halves[1], _MM_SHUFFLE(3, 1, 3, 1)))};
}

#else  // portable fallback

struct Vec {
  float v[kLanes];
};

template <typename F>
inline Vec lanewise(F f) {
  Vec r;
  for (int i = 0; i < kLanes; ++i) r.v[i] = f(i);
  return r;
}
inline bool lane_on(Mask m, int i) { return (m >> i) & 1u; }

inline Vec zero() {
  return lanewise([](int) { return 0.0f; });
}
inline Vec set1(float x) {
  return lanewise([x](int) { return x; });
}
inline Vec load(const float* p) {
  return lanewise([p](int i) { return p[i]; });
}
inline Vec load(const float* p, Mask m) {
  return lanewise([=](int i) { return lane_on(m, i) ? p[i] : 0.0f; });
}
inline void store(float* p, Vec a) {
  for (int i = 0; i < kLanes; ++i) p[i] = a.v[i];
}
inline void store(float* p, Vec a, Mask m) {
  for (int i = 0; i < kLanes; ++i) {
    if (lane_on(m, i)) p[i] = a.v[i];
  }
}
inline Vec add(Vec a, Vec b) {
  return lanewise([&](int i) { return a.v[i] + b.v[i]; });
}
inline Vec sub(Vec a, Vec b) {
  return lanewise([&](int i) { return a.v[i] - b.v[i]; });
}
inline Vec mul(Vec a, Vec b) {
  return lanewise([&](int i) { return a.v[i] * b.v[i]; });
}
inline Vec max(Vec a, Vec b) {
  return lanewise([&](int i) { return a.v[i] > b.v[i] ? a.v[i] : b.v[i]; });
}
inline Vec fmadd(Vec a, Vec b, Vec c) {
  return lanewise([&](int i) { return a.v[i] * b.v[i] + c.v[i]; });
}
inline Vec select(Mask m, Vec a, Vec fill) {
  return lanewise([&](int i) { return lane_on(m, i) ? a.v[i] : fill.v[i]; });
}
inline Mask greater_equal(Vec a, Vec b) {
  Mask m = 0;
  for (int i = 0; i < kLanes; ++i) m |= static_cast<Mask>((a.v[i] >= b.v[i] ? 1u : 0u) << i);
  return m;
}
inline float reduce_max(Vec a) {
  float r = a.v[0];
  for (int i = 1; i < kLanes; ++i) r = a.v[i] > r ? a.v[i] : r;
  return r;
}
inline float reduce_add(Vec a) {
  float r = 0.0f;
  for (int i = 0; i < kLanes; ++i) r += a.v[i];
  return r;
}
inline Mask at_or_after(const int* positions, int key) {
  Mask m = 0;
  for (int i = 0; i < kLanes; ++i) m |= static_cast<Mask>((positions[i] >= key ? 1u : 0u) << i);
  return m;
}
inline Vec load_f16(const std::uint16_t* p, Mask m) {
  return lanewise([=](int i) { return lane_on(m, i) ? half_to_float(p[i]) : 0.0f; });
}
inline Vec load_bf16(const std::uint16_t* p, Mask m) {
  return lanewise([=](int i) { return lane_on(m, i) ? bf16_to_float(p[i]) : 0.0f; });
}
inline Vec load_f16(const std::uint16_t* p) { return load_f16(p, kAllLanes); }
inline Vec load_bf16(const std::uint16_t* p) { return load_bf16(p, kAllLanes); }
inline Vec exp2(Vec x) {
  return lanewise([&](int i) { return tile::exp2_nonpositive(x.v[i]); });
}
inline Vec sum_each(const Vec (&a)[16]) {
  return lanewise([&](int i) { return reduce_add(a[i]); });
}
inline void keep_in_register(Vec&) {}
inline void prefetch(const void* p) { __builtin_prefetch(p); }

#endif

// Loads 16 elements (lanes outside m read as 0) of a K/V row stored as `dtype`, widened to float.
template <DType dtype>
inline Vec load_widened(const void* row, int offset, Mask m) {
  if constexpr (dtype == DType::f32) {
    return load(static_cast<const float*>(row) + offset, m);
  } else if constexpr (dtype == DType::f16) {
    return load_f16(static_cast<const std::uint16_t*>(row) + offset, m);
  } else {
    return load_bf16(static_cast<const std::uint16_t*>(row) + offset, m);
  }
}

// The same for 16 elements all inside the row.
template <DType dtype>
inline Vec load_widened(const void* row, int offset) {
  if constexpr (dtype == DType::f32) {
    return load(static_cast<const float*>(row) + offset);
  } else if constexpr (dtype == DType::f16) {
    return load_f16(static_cast<const std::uint16_t*>(row) + offset);
  } else {
    return load_bf16(static_cast<const std::uint16_t*>(row) + offset);
  }
}

}  // namespace ctxbench::kernels::simd
