// Sixteen-lane float vectors for the CPU attention kernels: AVX-512 intrinsics when the compiler targets
// AVX-512; AVX2 + FMA + F16C intrinsics on two 8-lane registers when it targets those; otherwise plain
// arrays that compile anywhere (and that g++ vectorises poorly). CTXBENCH_SIMD_PORTABLE (the CMake option of
// that name) forces the arrays, so that a build can test them.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/tile_math.h"

#if !defined(CTXBENCH_SIMD_PORTABLE)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define CTXBENCH_SIMD_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define CTXBENCH_SIMD_AVX2 1
#endif
#endif

#if defined(CTXBENCH_SIMD_AVX512) || defined(CTXBENCH_SIMD_AVX2)
// g++ 12's AVX headers initialise "undefined" vectors from themselves (GCC bug 105593), which
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

#elif defined(CTXBENCH_SIMD_AVX2)

// Lanes 0-7 in `lo`, 8-15 in `hi`.
struct Vec {
  __m256 lo, hi;
};

namespace avx2 {

// Eight 32-bit lanes, all ones where bit i of `bits` is set: the form maskload, maskstore and blendv take.
inline __m256i lane_mask(unsigned bits) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), lane_bits), lane_bits);
}
inline __m256i lo_mask(Mask m) { return lane_mask(m & 0xffu); }
inline __m256i hi_mask(Mask m) { return lane_mask(m >> 8u); }

// The same for sixteen 16-bit lanes.
inline __m256i lane_mask16(Mask m) {
  const __m256i lane_bits = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
                                              static_cast<short>(0x8000));
  return _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(static_cast<short>(m)), lane_bits), lane_bits);
}

inline Mask bits_of(__m256 lo, __m256 hi) {
  return static_cast<Mask>(static_cast<unsigned>(_mm256_movemask_ps(lo)) |
                           (static_cast<unsigned>(_mm256_movemask_ps(hi)) << 8u));
}

// Sixteen 16-bit elements; those outside m read as 0 and are not touched (AVX2 has no 16-bit masked load).
// Aligned pairs of lanes both in m come from one 32-bit masked load; a lane whose partner is not in m (at
// most one for a prefix mask) is read on its own and blended in.
inline __m256i load_u16(const std::uint16_t* p, Mask m) {
  if (m == kAllLanes) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const unsigned pair_starts = m & (m >> 1u) & 0x5555u;  // bit 2k: lanes 2k and 2k + 1 both in m
  unsigned pairs = 0;
  for (int k = 0; k < 8; ++k) pairs |= ((pair_starts >> (2 * k)) & 1u) << k;
  __m256i words = _mm256_maskload_epi32(reinterpret_cast<const int*>(p), lane_mask(pairs));
  for (unsigned lone = m & ~(pair_starts | (pair_starts << 1u)); lone != 0; lone &= lone - 1) {
    const int i = std::countr_zero(lone);
    const __m256i element = _mm256_set1_epi16(static_cast<short>(p[i]));
    words = _mm256_blendv_epi8(words, element, lane_mask16(static_cast<Mask>(1u << i)));
  }
  return words;
}

inline Vec f16_to_float(__m256i halves) {
  return {_mm256_cvtph_ps(_mm256_castsi256_si128(halves)), _mm256_cvtph_ps(_mm256_extracti128_si256(halves, 1))};
}

// bf16 is the upper half of an fp32.
inline __m256 bf16_to_float(__m128i halves) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}
inline Vec bf16_to_float(__m256i halves) {
  return {bf16_to_float(_mm256_castsi256_si128(halves)), bf16_to_float(_mm256_extracti128_si256(halves, 1))};
}

// 2^x for x in [kExp2Floor, 0] as tile::exp2_nonpositive, 0 elsewhere below the floor (and for -inf, NaN).
// 2^n for n = -127 has no normal exponent, so the polynomial is evaluated with halved coefficients (exact:
// every intermediate is exactly half of the scalar one) and scaled by 2^(n+1): one rounding at the end,
// as ldexpf, subnormal results included.
inline __m256 exp2(__m256 x) {
  const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(tile::kExp2Floor), _CMP_GE_OQ);
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 half_p = _mm256_set1_ps(0.5f * tile::kExp2P0);
  for (float c : {tile::kExp2P1, tile::kExp2P2, tile::kExp2P3, tile::kExp2P4, tile::kExp2P5, 1.0f}) {
    half_p = _mm256_fmadd_ps(half_p, f, _mm256_set1_ps(0.5f * c));
  }
  const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127 + 1));
  const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23));
  return _mm256_and_ps(live, _mm256_mul_ps(half_p, scale));
}

// Lane i of the result is the sum of the eight lanes of a[i].
inline __m256 sum_each(const __m256 (&a)[8]) {
  __m256 pairs[4];
  for (int i = 0; i < 4; ++i) {
    const __m256 x = a[2 * i], y = a[2 * i + 1];
    pairs[i] = _mm256_add_ps(_mm256_unpacklo_ps(x, y), _mm256_unpackhi_ps(x, y));
  }
  // pairs[i], per 128-bit half: partial sums of a[2i], a[2i+1], a[2i], a[2i+1].
  __m256 quads[2];
  for (int i = 0; i < 2; ++i) {
    const __m256d x = _mm256_castps_pd(pairs[2 * i]), y = _mm256_castps_pd(pairs[2 * i + 1]);
    quads[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)), _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
  }
  // quads[i], per 128-bit half: partial sums of a[4i..4i+3]; add the two halves.
  return _mm256_add_ps(_mm256_permute2f128_ps(quads[0], quads[1], 0x20),
                       _mm256_permute2f128_ps(quads[0], quads[1], 0x31));
}

// Eight elements of a K/V row stored as `dtype`, widened to float: the half-vector loads of the decode
// kernel's AVX2 micro-kernels, which hold eight-lane accumulators.
template <DType dtype>
inline __m256 load_widened8(const void* row, int offset) {
  if constexpr (dtype == DType::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + offset);
  } else {
    const __m128i halves =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(row) + offset));
    if constexpr (dtype == DType::f16) {
      return _mm256_cvtph_ps(halves);
    } else {
      return bf16_to_float(halves);
    }
  }
}

// As simd::keep_in_register, for one ymm register.
inline void keep_in_register(__m256& a) { asm("" : "+x"(a)); }

inline __m128 fold_halves_max(__m256 a) { return _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)); }
inline __m128 fold_halves_add(__m256 a) { return _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)); }

}  // namespace avx2

inline Vec zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline Vec set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline Vec load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
// maskload/maskstore do not touch lanes outside the mask (the kernels rely on it at row ends).
inline Vec load(const float* p, Mask m) {
  return {_mm256_maskload_ps(p, avx2::lo_mask(m)), _mm256_maskload_ps(p + 8, avx2::hi_mask(m))};
}
inline void store(float* p, Vec a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
// A full mask takes a plain store: masked stores are slow on AMD cores.
inline void store(float* p, Vec a, Mask m) {
  if (m == kAllLanes) {
    store(p, a);
  } else {
    _mm256_maskstore_ps(p, avx2::lo_mask(m), a.lo);
    _mm256_maskstore_ps(p + 8, avx2::hi_mask(m), a.hi);
  }
}
inline Vec add(Vec a, Vec b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline Vec sub(Vec a, Vec b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline Vec mul(Vec a, Vec b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
// a * b + c
inline Vec fmadd(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
// Lanes outside m become `fill`.
inline Vec select(Mask m, Vec a, Vec fill) {
  return {_mm256_blendv_ps(fill.lo, a.lo, _mm256_castsi256_ps(avx2::lo_mask(m))),
          _mm256_blendv_ps(fill.hi, a.hi, _mm256_castsi256_ps(avx2::hi_mask(m)))};
}
inline Mask greater_equal(Vec a, Vec b) {
  return avx2::bits_of(_mm256_cmp_ps(a.lo, b.lo, _CMP_GE_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_GE_OQ));
}
inline float reduce_max(Vec a) {
  __m128 m = avx2::fold_halves_max(_mm256_max_ps(a.lo, a.hi));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
inline float reduce_add(Vec a) {
  __m128 s = avx2::fold_halves_add(_mm256_add_ps(a.lo, a.hi));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// As the AVX-512 path: "x" is any ymm register.
inline void keep_in_register(Vec& a) { asm("" : "+x"(a.lo), "+x"(a.hi)); }
inline void prefetch(const void* p) { asm volatile("prefetcht0 (%0)" : : "r"(p)); }

// Lanes i where positions[i] >= key, i.e. not key > positions[i].
inline Mask at_or_after(const int* positions, int key) {
  const __m256i k = _mm256_set1_epi32(key);
  const __m256i before_lo = _mm256_cmpgt_epi32(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(positions)));
  const __m256i before_hi = _mm256_cmpgt_epi32(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(positions + 8)));
  return static_cast<Mask>(~avx2::bits_of(_mm256_castsi256_ps(before_lo), _mm256_castsi256_ps(before_hi)));
}

inline Vec load_f16(const std::uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline Vec load_f16(const std::uint16_t* p, Mask m) { return avx2::f16_to_float(avx2::load_u16(p, m)); }
inline Vec load_bf16(const std::uint16_t* p) {
  return {avx2::bf16_to_float(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          avx2::bf16_to_float(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline Vec load_bf16(const std::uint16_t* p, Mask m) { return avx2::bf16_to_float(avx2::load_u16(p, m)); }

// 2^x for x <= 0 lane-wise, as tile::exp2_nonpositive: 0 below the floor.
inline Vec exp2(Vec x) { return {avx2::exp2(x.lo), avx2::exp2(x.hi)}; }

// Lane i of the result is the sum of all lanes of a[i]: the halves of each input are added, then two
// transposing reductions of eight (~3.6 operations per input instead of ~7 for a horizontal sum of each).
inline Vec sum_each(const Vec (&a)[16]) {
  __m256 first[8], second[8];
  for (int i = 0; i < 8; ++i) {
    first[i] = _mm256_add_ps(a[i].lo, a[i].hi);
    second[i] = _mm256_add_ps(a[8 + i].lo, a[8 + i].hi);
  }
  return {avx2::sum_each(first), avx2::sum_each(second)};
}

#else  // portable fallback

struct Vec {
  float v[kLanes];
};

// Flattened and always inlined: the sanitizer build left each lane's lambda an out-of-line call, a quarter of the
// samples of its slowest test (an engine conformance sweep).
template <typename F>
[[gnu::always_inline, gnu::flatten]] inline Vec lanewise(F f) {
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
