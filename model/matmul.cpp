// Blocked dot-product kernel: tiles of up to 4 activation rows x 4 weight rows accumulate 16 vector sums
// over k. Many rows (prefill): each task converts a panel of weight rows, one k-block at a time, into an
// fp32 buffer that stays in L1 and sweeps its activation rows over it. Few rows (decode): the tiles read
// the weights straight from memory, converting in registers, since each weight is used once.
#include "model/matmul.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/simd.h"  // which SIMD path (CTXBENCH_SIMD_AVX512 / _AVX2, none under CTXBENCH_SIMD_PORTABLE)
#include "kernels/thread_pool.h"

#if defined(CTXBENCH_SIMD_AVX512) || defined(CTXBENCH_SIMD_AVX2)
#include <immintrin.h>
#endif

namespace ctxbench::model {
namespace {

struct Bf16 {
  std::uint16_t bits;
};
struct F16 {
  std::uint16_t bits;
};

inline float to_float(float v) { return v; }
inline float to_float(Bf16 v) { return kernels::bf16_to_float(v.bits); }
inline float to_float(F16 v) { return kernels::half_to_float(v.bits); }

#if defined(CTXBENCH_SIMD_AVX512)
struct Simd {
  static constexpr int lanes = 16;
  using V = __m512;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const Bf16* p) {
    // The maskz forms: GCC 12's unmasked ones trip -Wuninitialized on their undefined pass-through.
    const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16));
  }
  static V load(const F16* p) {
    return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(V v) {
    alignas(64) float lanes_out[lanes];
    _mm512_store_ps(lanes_out, v);
    float s = 0;
    for (const float x : lanes_out) s += x;
    return s;
  }
};
#elif defined(CTXBENCH_SIMD_AVX2)
// AVX2: the 16-bit weights are widened in registers (the portable loads below convert one element at a time
// through a function call, which made bf16 decode several times slower than f32 on an AVX2-only EPYC).
struct Simd {
  static constexpr int lanes = 8;
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const Bf16* p) {
    return kernels::simd::avx2::bf16_to_float(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load(const F16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(V v) {
    const __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
    return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)));
  }
};
#else
// Portable fallback: GCC vector extensions, lowered to whatever the target has.
struct Simd {
  static constexpr int lanes = 8;
  typedef float V __attribute__((vector_size(32)));
  static V zero() { return V{}; }
  template <class T>
  static V load(const T* p) {
    V v;
    for (int i = 0; i < lanes; ++i) v[i] = to_float(p[i]);
    return v;
  }
  static void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }
  static V fma(V a, V b, V c) { return a * b + c; }
  static float sum(V v) {
    float s = 0;
    for (int i = 0; i < lanes; ++i) s += v[i];
    return s;
  }
};
#endif

constexpr int kTile = 4;                   // rows of x and of w per tile
constexpr int kPanelRows = 16;             // weight rows converted together
constexpr int kBlockK = 512;               // columns per converted block: 16 x 512 fp32 = 32 KiB
constexpr int kRowChunk = 256;             // activation rows per task
constexpr double kParallelWork = 1 << 20;  // multiply-adds below which one thread is faster

// y[i][j] (+)= x[i][0..k) . w[j][0..k) for i < MR, j < NR.
template <int MR, int NR, class W>
void tile(const float* x, std::size_t ldx, const W* w, std::size_t ldw, int k, float* y, std::size_t ldy,
          bool accumulate) {
  typename Simd::V acc[MR][NR];
  for (auto& row : acc) {
    for (auto& a : row) a = Simd::zero();
  }
  int kk = 0;
  for (; kk + Simd::lanes <= k; kk += Simd::lanes) {
    typename Simd::V wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Simd::load(w + j * ldw + kk);
    for (int i = 0; i < MR; ++i) {
      const auto xv = Simd::load(x + i * ldx + kk);
      for (int j = 0; j < NR; ++j) acc[i][j] = Simd::fma(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = Simd::sum(acc[i][j]);
      for (int r = kk; r < k; ++r) s += x[i * ldx + r] * to_float(w[j * ldw + r]);
      y[i * ldy + j] = accumulate ? y[i * ldy + j] + s : s;
    }
  }
}

template <int MR, class W>
void tile_cols(int nr, const float* x, std::size_t ldx, const W* w, std::size_t ldw, int k, float* y, std::size_t ldy,
               bool accumulate) {
  switch (nr) {
    case 1: tile<MR, 1>(x, ldx, w, ldw, k, y, ldy, accumulate); break;
    case 2: tile<MR, 2>(x, ldx, w, ldw, k, y, ldy, accumulate); break;
    case 3: tile<MR, 3>(x, ldx, w, ldw, k, y, ldy, accumulate); break;
    default: tile<MR, 4>(x, ldx, w, ldw, k, y, ldy, accumulate); break;
  }
}

// Rows [i0, i1) of x against weight rows [j0, j1), columns [k0, k0 + k); w points at (j0, k0).
template <class W>
void tiles(const float* x, int i0, int i1, std::size_t ldx, const W* w, int j0, int j1, std::size_t ldw, int k0, int k,
           float* y, std::size_t ldy, bool accumulate) {
  for (int i = i0; i < i1; i += kTile) {
    const int mr = std::min(kTile, i1 - i);
    for (int j = j0; j < j1; j += kTile) {
      const int nr = std::min(kTile, j1 - j);
      const float* xs = x + i * ldx + k0;
      const W* ws = w + (j - j0) * ldw;
      float* ys = y + i * ldy + j;
      switch (mr) {
        case 1: tile_cols<1>(nr, xs, ldx, ws, ldw, k, ys, ldy, accumulate); break;
        case 2: tile_cols<2>(nr, xs, ldx, ws, ldw, k, ys, ldy, accumulate); break;
        case 3: tile_cols<3>(nr, xs, ldx, ws, ldw, k, ys, ldy, accumulate); break;
        default: tile_cols<4>(nr, xs, ldx, ws, ldw, k, ys, ldy, accumulate); break;
      }
    }
  }
}

template <class W>
void convert_block(const W* w, std::size_t ldw, int rows, int k, float* out) {
  for (int r = 0; r < rows; ++r) {
    const W* src = w + r * ldw;
    float* dst = out + r * k;
    int c = 0;
    for (; c + Simd::lanes <= k; c += Simd::lanes) Simd::store(dst + c, Simd::load(src + c));
    for (; c < k; ++c) dst[c] = to_float(src[c]);
  }
}

template <class W>
void matmul_typed(const float* x, int m, const W* w, int n, int k, float* y, bool accumulate, int threads) {
  const int panels = (n + kPanelRows - 1) / kPanelRows;
  const double work = static_cast<double>(m) * n * k;
  const auto parallel = [&](int tasks, const std::function<void(int)>& task) {
    if (work < kParallelWork) {
      for (int t = 0; t < tasks; ++t) task(t);
    } else {
      kernels::parallel_for(tasks, threads, task);
    }
  };
  if (m < kTile) {
    // Weights read once: split their rows over the threads, no conversion buffer.
    const int parts = std::min(panels, 4 * threads);
    parallel(parts, [&](int t) {
      const int j0 = static_cast<int>(static_cast<long>(n) * t / parts);
      const int j1 = static_cast<int>(static_cast<long>(n) * (t + 1) / parts);
      tiles(x, 0, m, k, w + static_cast<std::size_t>(j0) * k, j0, j1, k, 0, k, y, n, accumulate);
    });
    return;
  }
  const int chunks = (m + kRowChunk - 1) / kRowChunk;
  parallel(panels * chunks, [&](int t) {
    thread_local std::vector<float> buffer;
    buffer.resize(static_cast<std::size_t>(kPanelRows) * kBlockK);
    const int j0 = (t % panels) * kPanelRows, j1 = std::min(n, j0 + kPanelRows);
    const int i0 = (t / panels) * kRowChunk, i1 = std::min(m, i0 + kRowChunk);
    for (int k0 = 0; k0 < k; k0 += kBlockK) {
      const int kb = std::min(kBlockK, k - k0);
      convert_block(w + static_cast<std::size_t>(j0) * k + k0, k, j1 - j0, kb, buffer.data());
      tiles(x, i0, i1, k, buffer.data(), j0, j1, kb, k0, kb, y, n, accumulate || k0 > 0);
    }
  });
}

}  // namespace

void matmul(const float* x, int m, const WeightMatrix& w, float* y, bool accumulate, int threads) {
  switch (w.dtype) {
    case kernels::DType::f32:
      matmul_typed(x, m, reinterpret_cast<const float*>(w.data), w.rows, w.cols, y, accumulate, threads);
      break;
    case kernels::DType::bf16:
      matmul_typed(x, m, reinterpret_cast<const Bf16*>(w.data), w.rows, w.cols, y, accumulate, threads);
      break;
    case kernels::DType::f16:
      matmul_typed(x, m, reinterpret_cast<const F16*>(w.data), w.rows, w.cols, y, accumulate, threads);
      break;
  }
}

void load_row(const WeightMatrix& w, int row, float* out) {
  const std::size_t offset = static_cast<std::size_t>(row) * w.cols;
  switch (w.dtype) {
    case kernels::DType::f32:
      std::memcpy(out, reinterpret_cast<const float*>(w.data) + offset, sizeof(float) * w.cols);
      break;
    case kernels::DType::bf16: convert_block(reinterpret_cast<const Bf16*>(w.data) + offset, 0, 1, w.cols, out); break;
    case kernels::DType::f16: convert_block(reinterpret_cast<const F16*>(w.data) + offset, 0, 1, w.cols, out); break;
  }
}

}  // namespace ctxbench::model
