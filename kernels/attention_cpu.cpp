#include "kernels/attention_cpu.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "kernels/simd.h"
#include "kernels/tile_math.h"

namespace ctxbench::kernels::cpu {
namespace {

using simd::Mask;
using simd::Vec;
constexpr int kLanes = simd::kLanes;

int round_up(int x, int to) { return (x + to - 1) / to * to; }

// Grows on demand and is reused across calls by the thread that owns it.
class FloatBuffer {
 public:
  float* get(std::size_t n) {
    if (n > capacity_) {
      data_.reset(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t{64})));
      capacity_ = n;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<float, Free> data_;
  std::size_t capacity_ = 0;
};

struct Workspace {
  FloatBuffer queries, accumulators, scores, keys, values;
};

Workspace& thread_workspace() {
  thread_local Workspace workspace;
  return workspace;
}

// Up to kKeyTile key positions, ascending, gathered from an item's ranges.
struct KeyTile {
  int count = 0;
  int pos[kKeyTile];
};

// Calls f(tile, next) for each tile in order; `next` is the tile after it (count 0 after the last one),
// so that a kernel can prefetch its rows.
template <typename F>
void for_each_tile(const KeyRange* ranges, int range_count, F&& f) {
  KeyTile tiles[2];
  int filling = 0;
  bool have_previous = false;
  for (int i = 0; i < range_count; ++i) {
    for (int t = ranges[i].begin; t < ranges[i].end; ++t) {
      KeyTile& tile = tiles[filling];
      tile.pos[tile.count++] = t;
      if (tile.count < kKeyTile) continue;
      if (have_previous) f(tiles[1 - filling], tile);
      have_previous = true;
      filling = 1 - filling;
      tiles[filling].count = 0;
    }
  }
  KeyTile& last = tiles[filling];
  if (have_previous) f(tiles[1 - filling], last);
  if (last.count > 0) {
    const KeyTile none{};
    f(last, none);
  }
}

// Rows of a K/V head: base pointer and byte stride between tokens.
struct RowAccess {
  const std::byte* base;
  std::size_t stride;

  RowAccess(const KvView& kv, int head)
      : base(kv.row(head, 0)), stride(static_cast<std::size_t>(kv.dim) * dtype_bytes(kv.dtype)) {}
  const std::byte* row(int token) const { return base + static_cast<std::size_t>(token) * stride; }
};

// Asks for the rows of keys [j_begin, j_end) of `next` to be fetched while the current tile is computed:
// the hardware prefetcher alone leaves the decode loops waiting on loads (rows of gathered sparse tiles
// jump, and K and V are two interleaved streams).
void prefetch_rows(const RowAccess& rows, const KeyTile& next, int j_begin, int j_end) {
  j_end = std::min(j_end, next.count);
  for (int j = j_begin; j < j_end; ++j) {
    const auto begin = reinterpret_cast<std::uintptr_t>(rows.row(next.pos[j]));
    const std::uintptr_t last_line = (begin + rows.stride - 1) & ~std::uintptr_t{63};
    for (std::uintptr_t line = begin & ~std::uintptr_t{63}; line <= last_line; line += 64) {
      simd::prefetch(reinterpret_cast<const void*>(line));
    }
  }
}

template <typename F>
decltype(auto) with_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f16: return f(std::integral_constant<DType, DType::f16>{});
    case DType::bf16: return f(std::integral_constant<DType, DType::bf16>{});
    case DType::f32: break;
  }
  return f(std::integral_constant<DType, DType::f32>{});
}

float query_value(const QueryView& q, int head, int token, int i) {
  return q.data[(static_cast<std::size_t>(head) * q.tokens + token) * q.dim + i];
}

void write_row(const ItemInputs& in, const RowSink& sink, int r, const tile::SoftmaxState& state, const float* acc,
               std::size_t acc_stride) {
  const std::size_t index = sink.row_index(in.item, in.plan.heads.data(), r);
  const float inv = tile::inverse_sum(state);
  float* out = sink.out + index * sink.dim;
  for (int i = 0; i < sink.dim; ++i) out[i] = acc[i * acc_stride] * inv;
  if (sink.lse) sink.lse[index] = tile::finish_lse(state);
}

// ---------------------------------------------------------------------------------------------------
// Wide items (>= 16 rows): rows live in vector lanes. Per key tile, K and V are widened once into
// [key][dim] float buffers; scores^T = K Q^T and out^T += V^T P^T are register-blocked products, and the
// softmax over keys is element-wise across registers.

// Register blocking: a micro-kernel step holds kKeyGroup (or kDimGroup) x kRowVecs accumulators, the row
// vectors and a broadcast in registers. AVX-512 has 32 (3 x 8 = 24 accumulators); a Vec is two of AVX2's 16
// ymm registers, where 3 x 8 spilled to the stack in every step and 1 x 4 (11 registers) does not.
#ifdef CTXBENCH_SIMD_AVX2
constexpr int kRowVecs = 1;
constexpr int kKeyGroup = 4;
constexpr int kDimGroup = 4;
#else
constexpr int kRowVecs = 3;   // row vectors per block (48 rows)
constexpr int kKeyGroup = 8;  // keys per score micro-kernel step
constexpr int kDimGroup = 8;  // dims per value micro-kernel step
#endif
constexpr int kBlockRows = kRowVecs * kLanes;  // stride of the scores buffer

struct WideItem {
  int rows, padded_rows, dim, padded_dim;
  float* queries_t;  // [dim][padded_rows], pre-scaled
  float* out_t;      // [padded_dim][padded_rows], unnormalised
  float* max;        // [padded_rows]
  float* sum;        // [padded_rows]
  int* query_pos;    // [padded_rows]; -1 for padding rows
  float* keys;       // [kKeyTile][padded_dim]
  float* values;     // [kKeyTile][padded_dim]
  float* scores;     // [kKeyTile][kBlockRows]
};

template <DType dtype>
void widen_tile(const RowAccess& src, const KeyTile& tile, int dim, int padded_dim, int padded_keys, float* dst) {
  const Mask tail = simd::first_lanes(dim - (padded_dim - kLanes));
  for (int j = 0; j < tile.count; ++j) {
    const std::byte* row = src.row(tile.pos[j]);
    float* out = dst + static_cast<std::size_t>(j) * padded_dim;
    for (int c = 0; c + kLanes < padded_dim; c += kLanes) simd::store(out + c, simd::load_widened<dtype>(row, c));
    simd::store(out + padded_dim - kLanes, simd::load_widened<dtype>(row, padded_dim - kLanes, tail));
  }
  std::fill(dst + static_cast<std::size_t>(tile.count) * padded_dim,
            dst + static_cast<std::size_t>(padded_keys) * padded_dim, 0.0f);
}

// scores[j][n*16 + lane] = sum_i keys[j][i] * queries_t[i][n*16 + lane]
template <int NR>
void wide_scores(const WideItem& w, const float* queries_t, int padded_keys) {
  for (int j0 = 0; j0 < padded_keys; j0 += kKeyGroup) {
    Vec acc[kKeyGroup][NR];
    for (auto& row : acc) {
      for (Vec& a : row) a = simd::zero();
    }
    const float* k = w.keys + static_cast<std::size_t>(j0) * w.padded_dim;
    for (int i = 0; i < w.dim; ++i) {
      Vec q[NR];
      for (int n = 0; n < NR; ++n)
        q[n] = simd::load(queries_t + static_cast<std::size_t>(i) * w.padded_rows + n * kLanes);
      for (int m = 0; m < kKeyGroup; ++m) {
        const Vec kb = simd::set1(k[m * w.padded_dim + i]);
        for (int n = 0; n < NR; ++n) acc[m][n] = simd::fmadd(kb, q[n], acc[m][n]);
      }
    }
    for (int m = 0; m < kKeyGroup; ++m) {
      for (int n = 0; n < NR; ++n) simd::store(w.scores + (j0 + m) * kBlockRows + n * kLanes, acc[m][n]);
    }
  }
}

// Online softmax over the tile for NR row vectors starting at row r0: scores become probabilities in
// place and the rows' accumulators are rescaled to the new maxima.
template <int NR>
void wide_softmax(const WideItem& w, const KeyTile& tile, bool causal_edge, int r0, int padded_keys) {
  const Vec neg_inf = simd::set1(tile::kNegInf);
  const Vec lowest = simd::set1(std::numeric_limits<float>::lowest());
  for (int n = 0; n < NR; ++n) {
    const int row = r0 + n * kLanes;
    Vec tile_max = neg_inf;
    for (int j = 0; j < padded_keys; ++j) {
      Mask live = 0;
      if (j < tile.count) live = causal_edge ? simd::at_or_after(w.query_pos + row, tile.pos[j]) : simd::kAllLanes;
      float* s = w.scores + j * kBlockRows + n * kLanes;
      const Vec masked = simd::select(live, simd::load(s), neg_inf);
      simd::store(s, masked);
      tile_max = simd::max(tile_max, masked);
    }
    const Vec old_max = simd::load(w.max + row);
    const Vec new_max = simd::max(old_max, tile_max);
    const Vec shift = simd::select(simd::greater_equal(new_max, lowest), new_max, simd::zero());
    const Vec correction = simd::exp2(simd::sub(old_max, shift));
    // Rescale the accumulators here (not in wide_values, where the factors would cost registers); once
    // the running maxima settle the factors are all 1 and this is skipped.
    if (simd::greater_equal(correction, simd::set1(1.0f)) != simd::kAllLanes) {
      for (int c = 0; c < w.padded_dim; ++c) {
        float* o = w.out_t + static_cast<std::size_t>(c) * w.padded_rows + row;
        simd::store(o, simd::mul(simd::load(o), correction));
      }
    }
    Vec sum = simd::zero();
    for (int j = 0; j < padded_keys; ++j) {
      float* s = w.scores + j * kBlockRows + n * kLanes;
      const Vec p = simd::exp2(simd::sub(simd::load(s), shift));
      simd::store(s, p);
      sum = simd::add(sum, p);
    }
    simd::store(w.max + row, new_max);
    simd::store(w.sum + row, simd::fmadd(simd::load(w.sum + row), correction, sum));
  }
}

// out_t[c][rows] += sum_j values[j][c] * p[j][rows]
template <int NR>
void wide_values(const WideItem& w, float* out_t, int keys) {
  for (int c0 = 0; c0 < w.padded_dim; c0 += kDimGroup) {
    Vec acc[kDimGroup][NR];
    for (int m = 0; m < kDimGroup; ++m) {
      for (int n = 0; n < NR; ++n) {
        acc[m][n] = simd::load(out_t + static_cast<std::size_t>(c0 + m) * w.padded_rows + n * kLanes);
      }
    }
    for (int j = 0; j < keys; ++j) {
      Vec p[NR];
      for (int n = 0; n < NR; ++n) p[n] = simd::load(w.scores + j * kBlockRows + n * kLanes);
      const float* v = w.values + static_cast<std::size_t>(j) * w.padded_dim + c0;
      for (int m = 0; m < kDimGroup; ++m) {
        const Vec vb = simd::set1(v[m]);
        for (int n = 0; n < NR; ++n) acc[m][n] = simd::fmadd(vb, p[n], acc[m][n]);
      }
    }
    for (int m = 0; m < kDimGroup; ++m) {
      for (int n = 0; n < NR; ++n) {
        simd::store(out_t + static_cast<std::size_t>(c0 + m) * w.padded_rows + n * kLanes, acc[m][n]);
      }
    }
  }
}

template <int NR>
void wide_block(const WideItem& w, const KeyTile& tile, bool causal_edge, int r0, int padded_keys) {
  wide_scores<NR>(w, w.queries_t + r0, padded_keys);
  wide_softmax<NR>(w, tile, causal_edge, r0, padded_keys);
  wide_values<NR>(w, w.out_t + r0, tile.count);
}

void attend_wide(const ItemInputs& in, const RowSink& sink) {
  const WorkItem& item = in.item;
  Workspace& ws = thread_workspace();
  WideItem w;
  w.rows = item.rows();
  w.padded_rows = round_up(w.rows, kLanes);
  w.dim = in.q.dim;
  w.padded_dim = round_up(w.dim, kLanes);
  const std::size_t row_floats = static_cast<std::size_t>(w.padded_rows);
  float* rows_buffer = ws.queries.get(row_floats * (w.dim + 3));
  w.queries_t = rows_buffer;
  w.max = rows_buffer + row_floats * w.dim;
  w.sum = w.max + row_floats;
  w.query_pos = reinterpret_cast<int*>(w.sum + row_floats);
  w.out_t = ws.accumulators.get(row_floats * w.padded_dim);
  w.keys = ws.keys.get(static_cast<std::size_t>(kKeyTile) * w.padded_dim);
  w.values = ws.values.get(static_cast<std::size_t>(kKeyTile) * w.padded_dim);
  w.scores = ws.scores.get(static_cast<std::size_t>(kKeyTile) * kBlockRows);

  const float prescale = tile::query_prescale(in.layout.scale);
  const int* heads = in.plan.heads.data() + item.heads_offset;
  std::fill(w.queries_t, w.queries_t + row_floats * w.dim, 0.0f);
  for (int r = 0; r < w.padded_rows; ++r) {
    w.max[r] = tile::kNegInf;
    w.sum[r] = 0.0f;
    w.query_pos[r] = -1;
    if (r >= w.rows) continue;
    const int token = item.token_begin + r / item.head_count;
    w.query_pos[r] = in.layout.first_query_pos + token;
    for (int i = 0; i < w.dim; ++i) {
      w.queries_t[i * row_floats + r] = query_value(in.q, heads[r % item.head_count], token, i) * prescale;
    }
  }
  std::fill(w.out_t, w.out_t + row_floats * w.padded_dim, 0.0f);

  const RowAccess k_rows(in.k, item.kv_head), v_rows(in.v, item.kv_head);
  const int first_query_pos = w.query_pos[0];
  for_each_tile(in.plan.ranges.data() + item.ranges_offset, item.range_count, [&](const KeyTile& tile, const KeyTile&) {
    const int padded_keys = round_up(tile.count, kKeyGroup);
    with_dtype(in.k.dtype, [&](auto dt) {
      widen_tile<decltype(dt)::value>(k_rows, tile, w.dim, w.padded_dim, padded_keys, w.keys);
    });
    with_dtype(in.v.dtype, [&](auto dt) {
      widen_tile<decltype(dt)::value>(v_rows, tile, w.dim, w.padded_dim, padded_keys, w.values);
    });
    const bool causal_edge = tile.pos[tile.count - 1] > first_query_pos;
    const int row_vecs = w.padded_rows / kLanes;
    for (int n0 = 0; n0 < row_vecs; n0 += kRowVecs) {
      switch (std::min(kRowVecs, row_vecs - n0)) {
        case 1: wide_block<1>(w, tile, causal_edge, n0 * kLanes, padded_keys); break;
        case 2: wide_block<2>(w, tile, causal_edge, n0 * kLanes, padded_keys); break;
        default: wide_block<3>(w, tile, causal_edge, n0 * kLanes, padded_keys); break;
      }
    }
  });

  for (int r = 0; r < w.rows; ++r) {
    write_row(in, sink, r, {w.max[r], w.sum[r]}, w.out_t + r, row_floats);
  }
}

// ---------------------------------------------------------------------------------------------------
// Narrow items (< 16 rows, e.g. decode): dimensions live in vector lanes and K/V rows are read (and
// widened) straight from the cache, so each byte is touched once per group of query heads.

constexpr int kMaxNarrowRows = 4;  // rows per group
// 16-float chunks of the output accumulated per pass over a tile's values, for groups of RG rows: a pass
// holds RG x chunks accumulators, RG broadcast probabilities and a value. A Vec is two of AVX2's 16 ymm
// registers, where 4 x 4 accumulators spilled; 4 x 1, 2 x 2 and 1 x 4 do not.
#ifdef CTXBENCH_SIMD_AVX2
template <int RG>
constexpr int kValueChunks = 4 / RG;
#else
template <int RG>
constexpr int kValueChunks = 4;
#endif
// The micro-kernels below are kept out of line: inlined into the tile loop, g++ runs out of registers and
// spills accumulators.

struct NarrowItem {
  int rows, dim, padded_dim, chunks;
  int full_chunks;       // chunks entirely inside dim (all, or all but the last)
  Mask tail;             // lanes of the last chunk inside dim
  float* queries;        // [rows][padded_dim], pre-scaled, zero-padded
  float* out;            // [rows][padded_dim], unnormalised
  float* probabilities;  // [kMaxNarrowRows][kKeyTile]
  tile::SoftmaxState state[kLanes];
  int query_pos[kLanes];
};

// probabilities[r][j] = scores of RG rows against the tile's keys; keys past the tile's end repeat its last
// key and are ignored later.
#ifdef CTXBENCH_SIMD_AVX2
// AVX2: 16 Vec accumulators would be 32 of the 16 ymm registers. Here each of the 8 (row, key) pairs of a
// step (RG rows x 8 / RG keys) accumulates both halves of every chunk in one ymm, so that a step holds 8
// accumulators, the keys' current halves and one query half; one transposing reduction of eight ends it.
template <DType dtype, int RG>
[[gnu::noinline]] void narrow_scores(const NarrowItem& w, const RowAccess& k_rows, const KeyTile& tile,
                                     const KeyTile& next, const float* queries) {
  constexpr int kPairs = 8;
  constexpr int KS = kPairs / RG;
  for (int j0 = 0; j0 < tile.count; j0 += KS) {
    prefetch_rows(k_rows, next, j0, j0 + KS);
    const std::byte* rows[KS];
    for (int jj = 0; jj < KS; ++jj) rows[jj] = k_rows.row(tile.pos[std::min(j0 + jj, tile.count - 1)]);
    __m256 acc[kPairs];
    for (__m256& a : acc) a = _mm256_setzero_ps();
    auto accumulate = [&](int offset, const __m256(&key)[KS]) {
      for (int r = 0; r < RG; ++r) {
        __m256 q = _mm256_loadu_ps(queries + r * w.padded_dim + offset);
        simd::avx2::keep_in_register(q);
        for (int jj = 0; jj < KS; ++jj) acc[r * KS + jj] = _mm256_fmadd_ps(q, key[jj], acc[r * KS + jj]);
      }
    };
    for (int offset = 0; offset < w.full_chunks * kLanes; offset += kLanes / 2) {
      __m256 key[KS];
      for (int jj = 0; jj < KS; ++jj) key[jj] = simd::avx2::load_widened8<dtype>(rows[jj], offset);
      accumulate(offset, key);
    }
    // A partial last chunk: masked loads of 16 elements, used one half at a time.
    for (int half = 0; w.full_chunks < w.chunks && half < 2; ++half) {
      __m256 key[KS];
      for (int jj = 0; jj < KS; ++jj) {
        const Vec chunk = simd::load_widened<dtype>(rows[jj], w.full_chunks * kLanes, w.tail);
        key[jj] = half == 0 ? chunk.lo : chunk.hi;
      }
      accumulate(w.full_chunks * kLanes + half * kLanes / 2, key);
    }
    alignas(32) float sums[kPairs];
    _mm256_store_ps(sums, simd::avx2::sum_each(acc));
    for (int r = 0; r < RG; ++r) std::memcpy(w.probabilities + r * kKeyTile + j0, sums + r * KS, sizeof(float) * KS);
  }
}
#else
// 16 / RG keys at a time, whose 16 (row, key) pairs are reduced together.
template <DType dtype, int RG>
[[gnu::noinline]] void narrow_scores(const NarrowItem& w, const RowAccess& k_rows, const KeyTile& tile,
                                     const KeyTile& next, const float* queries) {
  constexpr int KS = kLanes / RG;
  for (int j0 = 0; j0 < tile.count; j0 += KS) {
    prefetch_rows(k_rows, next, j0, j0 + KS);
    const std::byte* rows[KS];
    for (int jj = 0; jj < KS; ++jj) rows[jj] = k_rows.row(tile.pos[std::min(j0 + jj, tile.count - 1)]);
    Vec acc[kLanes];
    for (Vec& a : acc) a = simd::zero();
    auto accumulate = [&](int c, const Vec(&key)[KS]) {
      for (int r = 0; r < RG; ++r) {
        Vec q = simd::load(queries + r * w.padded_dim + c * kLanes);
        simd::keep_in_register(q);
        for (int jj = 0; jj < KS; ++jj) acc[r * KS + jj] = simd::fmadd(q, key[jj], acc[r * KS + jj]);
      }
    };
    // Masked 16-bit loads are slow here, so only a partial last chunk uses them.
    for (int c = 0; c < w.full_chunks; ++c) {
      Vec key[KS];
      for (int jj = 0; jj < KS; ++jj) key[jj] = simd::load_widened<dtype>(rows[jj], c * kLanes);
      accumulate(c, key);
    }
    if (w.full_chunks < w.chunks) {
      Vec key[KS];
      for (int jj = 0; jj < KS; ++jj) key[jj] = simd::load_widened<dtype>(rows[jj], w.full_chunks * kLanes, w.tail);
      accumulate(w.full_chunks, key);
    }
    alignas(64) float sums[kLanes];
    simd::store(sums, simd::sum_each(acc));
    for (int r = 0; r < RG; ++r) std::memcpy(w.probabilities + r * kKeyTile + j0, sums + r * KS, sizeof(float) * KS);
  }
}
#endif

// Turns one row's scores into probabilities (zero past `visible`, up to the tile's end) and updates its
// state; returns the accumulator correction.
float narrow_softmax(float* s, int visible, int count, tile::SoftmaxState& state) {
  Vec max = simd::set1(tile::kNegInf);
  for (int j = 0; j < visible; j += kLanes) {
    const Mask mask = simd::first_lanes(visible - j);
    max = simd::max(max, simd::select(mask, simd::load(s + j, mask), max));
  }
  const float correction = tile::raise_max(state, simd::reduce_max(max));
  const Vec shift = simd::set1(tile::shift_of(state.max));
  Vec sum = simd::zero();
  for (int j = 0; j < count; j += kLanes) {
    const Mask mask = simd::first_lanes(visible - j);
    const Vec p = simd::select(mask, simd::exp2(simd::sub(simd::load(s + j, mask), shift)), simd::zero());
    simd::store(s + j, p);
    sum = simd::add(sum, p);
  }
  state.sum += simd::reduce_add(sum);
  return correction;
}

// out[r][chunk c0 .. c0+CG) = out * correction[r] + sum_{j < keys} p[r][j] * V[j]; with Partial, the one
// chunk c0 is the partial last one. `prefetch`: the next tile, whose value rows are fetched meanwhile
// (null: none).
template <DType dtype, int RG, int CG, bool Partial = false>
[[gnu::noinline]] void narrow_values(const NarrowItem& w, const RowAccess& v_rows, const KeyTile& tile, int keys,
                                     const KeyTile* prefetch, float* out, const float* correction, int c0) {
  static_assert(!Partial || CG == 1);
  Vec acc[RG][CG];
  for (int r = 0; r < RG; ++r) {
    for (int cc = 0; cc < CG; ++cc) {
      acc[r][cc] = simd::mul(simd::load(out + r * w.padded_dim + (c0 + cc) * kLanes), simd::set1(correction[r]));
    }
  }
  for (int j = 0; j < keys; ++j) {
    if (prefetch) prefetch_rows(v_rows, *prefetch, j, j + 1);
    const std::byte* row = v_rows.row(tile.pos[j]);
    Vec value[CG];
    for (int cc = 0; cc < CG; ++cc) {
      value[cc] = Partial ? simd::load_widened<dtype>(row, c0 * kLanes, w.tail)
                          : simd::load_widened<dtype>(row, (c0 + cc) * kLanes);
    }
    for (int r = 0; r < RG; ++r) {
      const Vec p = simd::set1(w.probabilities[r * kKeyTile + j]);
      for (int cc = 0; cc < CG; ++cc) acc[r][cc] = simd::fmadd(p, value[cc], acc[r][cc]);
    }
  }
  for (int r = 0; r < RG; ++r) {
    for (int cc = 0; cc < CG; ++cc) simd::store(out + r * w.padded_dim + (c0 + cc) * kLanes, acc[r][cc]);
  }
}

// narrow_values over `chunks` (1 .. CG) full chunks from c0.
template <DType dtype, int RG, int CG>
void narrow_values_upto(int chunks, const NarrowItem& w, const RowAccess& v_rows, const KeyTile& tile, int keys,
                        const KeyTile* prefetch, float* out, const float* correction, int c0) {
  if constexpr (CG > 1) {
    if (chunks < CG)
      return narrow_values_upto<dtype, RG, CG - 1>(chunks, w, v_rows, tile, keys, prefetch, out, correction, c0);
  }
  narrow_values<dtype, RG, CG>(w, v_rows, tile, keys, prefetch, out, correction, c0);
}

// The first pass over the tile's value rows also prefetches the next tile's.
template <DType dtype, int RG>
void narrow_all_values(const NarrowItem& w, const RowAccess& v_rows, const KeyTile& tile, const KeyTile& next, int keys,
                       float* out, const float* correction) {
  constexpr int CG = kValueChunks<RG>;
  const KeyTile* prefetch = &next;
  for (int c0 = 0; c0 < w.full_chunks; c0 += CG, prefetch = nullptr) {
    narrow_values_upto<dtype, RG, CG>(w.full_chunks - c0, w, v_rows, tile, keys, prefetch, out, correction, c0);
  }
  if (w.full_chunks < w.chunks)
    narrow_values<dtype, RG, 1, true>(w, v_rows, tile, keys, prefetch, out, correction, w.full_chunks);
}

template <int RG>
void narrow_group(NarrowItem& w, const ItemInputs& in, const RowAccess& k_rows, const RowAccess& v_rows,
                  const KeyTile& tile, const KeyTile& next, bool causal_edge, int r0) {
  const float* queries = w.queries + r0 * w.padded_dim;
  with_dtype(in.k.dtype, [&](auto dt) { narrow_scores<decltype(dt)::value, RG>(w, k_rows, tile, next, queries); });
  float correction[RG];
  int keys = 0;
  for (int r = 0; r < RG; ++r) {
    const int visible = causal_edge ? tile::visible_prefix(tile.pos, tile.count, w.query_pos[r0 + r]) : tile.count;
    correction[r] = narrow_softmax(w.probabilities + r * kKeyTile, visible, tile.count, w.state[r0 + r]);
    keys = std::max(keys, visible);
  }
  float* out = w.out + r0 * w.padded_dim;
  with_dtype(in.v.dtype, [&](auto dt) {
    narrow_all_values<decltype(dt)::value, RG>(w, v_rows, tile, next, keys, out, correction);
  });
}

void attend_narrow(const ItemInputs& in, const RowSink& sink) {
  const WorkItem& item = in.item;
  Workspace& ws = thread_workspace();
  NarrowItem w;
  w.rows = item.rows();
  w.dim = in.q.dim;
  w.padded_dim = round_up(w.dim, kLanes);
  w.chunks = w.padded_dim / kLanes;
  w.tail = simd::first_lanes(w.dim - (w.chunks - 1) * kLanes);
  w.full_chunks = w.tail == simd::kAllLanes ? w.chunks : w.chunks - 1;
  const std::size_t floats = static_cast<std::size_t>(w.rows) * w.padded_dim;
  w.queries = ws.queries.get(floats);
  w.out = ws.accumulators.get(floats);
  w.probabilities = ws.scores.get(kMaxNarrowRows * kKeyTile);
  std::fill(w.queries, w.queries + floats, 0.0f);
  std::fill(w.out, w.out + floats, 0.0f);
  const float prescale = tile::query_prescale(in.layout.scale);
  const int* heads = in.plan.heads.data() + item.heads_offset;
  for (int r = 0; r < w.rows; ++r) {
    const int token = item.token_begin + r / item.head_count;
    w.query_pos[r] = in.layout.first_query_pos + token;
    w.state[r] = {};
    for (int i = 0; i < w.dim; ++i) {
      w.queries[r * w.padded_dim + i] = query_value(in.q, heads[r % item.head_count], token, i) * prescale;
    }
  }

  const RowAccess k_rows(in.k, item.kv_head), v_rows(in.v, item.kv_head);
  for_each_tile(in.plan.ranges.data() + item.ranges_offset, item.range_count,
                [&](const KeyTile& tile, const KeyTile& next) {
                  const bool causal_edge = tile.pos[tile.count - 1] > w.query_pos[0];
                  for (int r0 = 0; r0 < w.rows;) {
                    const int left = w.rows - r0;
                    if (left >= 4) {
                      narrow_group<4>(w, in, k_rows, v_rows, tile, next, causal_edge, r0);
                      r0 += 4;
                    } else if (left >= 2) {
                      narrow_group<2>(w, in, k_rows, v_rows, tile, next, causal_edge, r0);
                      r0 += 2;
                    } else {
                      narrow_group<1>(w, in, k_rows, v_rows, tile, next, causal_edge, r0);
                      r0 += 1;
                    }
                  }
                });

  for (int r = 0; r < w.rows; ++r) write_row(in, sink, r, w.state[r], w.out + r * w.padded_dim, 1);
}

}  // namespace

void attend_item(const ItemInputs& in, const RowSink& sink) {
  if (in.item.rows() >= kLanes) {
    attend_wide(in, sink);
  } else {
    attend_narrow(in, sink);
  }
}

}  // namespace ctxbench::kernels::cpu
