// HiP v1.1 mask generation against a direct, unoptimized transcription of the original kernels
// (masking_iteration_draft_cuda_initialize / _dup_and_score / _partial_softmax / _argsort / _gather in
// attention2_draft_prefetch.py), in float64, on small shapes. What is compared: our mask (fp32 dot products)
// against the transcription ranking halves by raw q.k in float64, which is our documented deviation from
// the original's bf16 sigmoid ranking (engines/README.md). On small-integer inputs every dot product is exact
// in any summation order, so the two must pick the same blocks including every tie (broken towards the lower
// block in both); on real-valued inputs ties are rare and the float32/float64 sums must still agree. The
// transcription also ranks as the original does (bf16 of the sigmoid of the logit), and a test counts how
// many selected blocks that changes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <limits>
#include <numeric>
#include <set>

#include "core/random.h"
#include "engines/hip_mask.h"
#include "kernels/attention.h"

using namespace ctxbench;
using engines::hip::HipMaskParams;

namespace {

constexpr double kMasked = -32000.0;  // the original's score for a key hidden by the window mask
constexpr double kEmpty = -std::numeric_limits<double>::infinity();

struct Shape {
  int tokens, dim, count, first_position;
  HipMaskParams p;
};

std::vector<float> integer_vector(Rng& rng, std::size_t n) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.integer(-3, 3));
  return v;
}

std::vector<float> normal_vector(Rng& rng, std::size_t n) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// How the transcription ranks halves: by raw q.k (ours), or as the original's _partial_softmax does, by the
// sigmoid of the logit q.k / sqrt(dim) stored in bf16 (which ties every logit above about 6.24 at 1.0).
enum class Ranking { raw_dot, bf16_sigmoid };

double bf16_sigmoid(double logit) {
  const float sigmoid = static_cast<float>(1.0 / (1.0 + std::exp(-logit)));
  return kernels::bf16_to_float(kernels::float_to_bf16(sigmoid));
}

// The transcription. Positions are 1-based as in the original (pos = key index + 1).
std::vector<int> transcribed_mask(const HipMaskParams& p, const std::vector<float>& q, int count, int first_position,
                                  const std::vector<float>& k, int tokens, int dim,
                                  Ranking ranking = Ranking::raw_dot) {
  auto key_dot = [&](int query, int key) {
    double sum = 0;
    for (int i = 0; i < dim; ++i) sum += double(q[query * dim + i]) * double(k[key * dim + i]);
    return sum;
  };
  // initialize
  const long max_pos = first_position + count;  // max over the block's queries of pos
  const long TSRC = std::max(0L, max_pos - p.window - p.sinks);
  const long BSRC = (TSRC + p.block_size_k - 1) / p.block_size_k;
  const long N_SINK_BLOCK = p.sinks / p.block_size_k;
  std::vector<long> indices, group_sizes;
  if (TSRC <= p.mask_k) {
    std::vector<int> all;
    for (long b = 0; b < BSRC; ++b) all.push_back(static_cast<int>((b + N_SINK_BLOCK) * p.block_size_k));
    return all;
  }
  const long mask_block_k = (p.mask_k + p.block_size_k - 1) / p.block_size_k;
  long ALIGNED_BSRC = 1;
  while (ALIGNED_BSRC * 2 <= BSRC) ALIGNED_BSRC *= 2;
  const long ALIGN_STEP = (ALIGNED_BSRC + mask_block_k - 1) / mask_block_k;
  for (long i = 0; i < mask_block_k; ++i) {
    // (BSRC / mask_block_k * i) in exact arithmetic (the original computes it in fp32)
    const long start = std::min(BSRC * i / mask_block_k / ALIGN_STEP * ALIGN_STEP, BSRC) + N_SINK_BLOCK;
    const long next = std::min(BSRC * (i + 1) / mask_block_k / ALIGN_STEP * ALIGN_STEP, BSRC) + N_SINK_BLOCK;
    indices.push_back(start);
    group_sizes.push_back(std::max(0L, std::min(BSRC, next - start)));
  }
  double max_group_size = static_cast<double>(*std::max_element(group_sizes.begin(), group_sizes.end()));

  // sampled queries: idx_tdst = j * b_sq + (min(count, b_sq) - 1), masked beyond the block
  std::vector<int> sampled;
  for (int j = 0; j < p.block_size_q / p.block_stride_q; ++j) {
    const int idx = j * p.block_stride_q + std::min(count, p.block_stride_q) - 1;
    if (idx < count) sampled.push_back(idx);
  }

  while (max_group_size > 1) {
    // dup: each node becomes (index, floor(g / 2)) and (index + floor(g / 2), g - floor(g / 2))
    const std::size_t n = indices.size();
    std::vector<long> dupped_indices(2 * n), dupped_sizes(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      dupped_indices[2 * i] = indices[i];
      dupped_indices[2 * i + 1] = static_cast<long>(indices[i] + group_sizes[i] * 0.5);
    }
    for (std::size_t i = 0; i < n; ++i) {
      dupped_sizes[2 * i] = dupped_indices[2 * i + 1] - dupped_indices[2 * i];
      dupped_sizes[2 * i + 1] = dupped_indices[2 * i] + group_sizes[i] - dupped_indices[2 * i + 1];
    }
    // score: the centre block, max over sampled queries and the block's keys; window keys masked
    std::vector<double> scores(2 * n);
    for (std::size_t c = 0; c < 2 * n; ++c) {
      if (dupped_sizes[c] <= 0) {
        scores[c] = kEmpty;  // the original's -1 after its softmax: ranks after every real score
        continue;
      }
      const long centre = dupped_indices[c] + std::max(0L, dupped_sizes[c] / 2);
      double best = -std::numeric_limits<double>::infinity();
      for (int query : sampled) {
        const long pos = first_position + query + 1;
        for (long j = 0; j < p.block_size_k; ++j) {
          const long key = centre * p.block_size_k + j;
          if (key >= tokens) continue;
          best = std::max(best, key > pos - p.window - 1 ? kMasked : key_dot(query, static_cast<int>(key)));
        }
      }
      scores[c] = best;
    }
    if (ranking == Ranking::bf16_sigmoid) {
      // Masked keys (-32000) become 0; empty halves keep the original's -1, below every sigmoid.
      for (double& score : scores) score = score == kEmpty ? -1.0 : bf16_sigmoid(score / std::sqrt(double(dim)));
    }
    // argsort descending (ties to the lower block), then gather the top mask_block_k
    std::vector<std::size_t> order(2 * n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (scores[a] != scores[b]) return scores[a] > scores[b];
      return dupped_indices[a] < dupped_indices[b];
    });
    indices.clear();
    group_sizes.clear();
    for (std::size_t i = 0; i < std::min<std::size_t>(order.size(), mask_block_k); ++i) {
      indices.push_back(dupped_indices[order[i]]);
      group_sizes.push_back(dupped_sizes[order[i]]);
    }
    max_group_size *= 0.5;
  }
  std::set<int> blocks;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (group_sizes[i] > 0) blocks.insert(static_cast<int>(indices[i] * p.block_size_k));
  }
  return {blocks.begin(), blocks.end()};
}

HipMaskParams params(int k, int bq, int bsq, int bk, int sinks, int window) {
  return {.mask_k = k, .block_size_q = bq, .block_stride_q = bsq, .block_size_k = bk, .sinks = sinks, .window = window};
}

kernels::KvView view(const std::vector<float>& k, int tokens, int dim) {
  return {k.data(), kernels::DType::f32, 1, tokens, dim, static_cast<std::size_t>(tokens) * dim};
}

}  // namespace

TEST_CASE("HiP mask equals the float64 transcription ranking by raw q.k, on small integer inputs (exact ties)",
          "[hip][mask]") {
  const Shape shapes[] = {
      {3000, 16, 64, 2936, params(128, 64, 2, 2, 16, 64)},    // prefill block at the end
      {3000, 16, 1, 2999, params(128, 64, 2, 2, 16, 64)},     // decode
      {5000, 8, 37, 2000, params(300, 64, 2, 2, 32, 128)},    // partial block, K' = 150 not a power of two
      {4096, 32, 64, 4032, params(256, 64, 4, 4, 64, 256)},   // b_k 4, b_sq 4
      {2500, 16, 16, 2484, params(64, 16, 1, 1, 8, 32)},      // b_k 1: single-key blocks
      {2049, 8, 1, 2048, params(512, 64, 2, 2, 256, 1024)},   // the defaults, k just below the candidates
      {1800, 8, 64, 1736, params(512, 64, 2, 2, 256, 1024)},  // the defaults, every candidate selected
      {6000, 16, 2, 5998, params(200, 64, 2, 2, 0, 16)},      // no sinks, small window
  };
  for (const Shape& s : shapes) {
    Rng rng(s.tokens * 31 + s.count);
    const auto keys = integer_vector(rng, static_cast<std::size_t>(s.tokens) * s.dim);
    const auto queries = integer_vector(rng, static_cast<std::size_t>(s.count) * s.dim);
    DYNAMIC_SECTION("T=" << s.tokens << " queries=" << s.count << " k=" << s.p.mask_k << " b_k=" << s.p.block_size_k) {
      const engines::hip::KeyRows rows(view(keys, s.tokens, s.dim));
      engines::hip::MaskCounters counters;
      const auto mine =
          engines::hip::select_key_blocks(s.p, {queries.data(), s.count, s.first_position}, rows, 0, &counters);
      const auto expected = transcribed_mask(s.p, queries, s.count, s.first_position, keys, s.tokens, s.dim);
      CHECK(mine == expected);
      CHECK(std::is_sorted(mine.begin(), mine.end()));
      // Up to K' blocks when the top-k ran, after the sinks and before the last query's window.
      const int last = s.first_position + s.count - 1;
      if (last + 1 - s.p.window - s.p.sinks > s.p.mask_k) {
        CHECK(mine.size() <= static_cast<std::size_t>((s.p.mask_k + s.p.block_size_k - 1) / s.p.block_size_k));
      }
      for (int key : mine) {
        CHECK(key >= s.p.sinks);
        CHECK(key < std::max(s.p.sinks, last + 1 - s.p.window));
      }
    }
  }
}

const Shape kRealShapes[] = {
    {3000, 16, 64, 2936, params(128, 64, 2, 2, 16, 64)},   // prefill block at the end
    {3000, 16, 1, 2999, params(128, 64, 2, 2, 16, 64)},    // decode
    {5000, 8, 37, 2000, params(300, 64, 2, 2, 32, 128)},   // partial block, K' = 150
    {4096, 32, 64, 4032, params(256, 64, 4, 4, 64, 256)},  // b_k 4, b_sq 4
    {2500, 16, 16, 2484, params(64, 16, 1, 1, 8, 32)},     // single-key blocks
};

TEST_CASE("HiP mask equals the float64 transcription ranking by raw q.k, on real-valued inputs", "[hip][mask]") {
  for (const Shape& s : kRealShapes) {
    Rng rng(s.tokens * 17 + s.count);
    const auto keys = normal_vector(rng, static_cast<std::size_t>(s.tokens) * s.dim);
    const auto queries = normal_vector(rng, static_cast<std::size_t>(s.count) * s.dim);
    DYNAMIC_SECTION("T=" << s.tokens << " queries=" << s.count << " k=" << s.p.mask_k << " b_k=" << s.p.block_size_k) {
      const engines::hip::KeyRows rows(view(keys, s.tokens, s.dim));
      CHECK(engines::hip::select_key_blocks(s.p, {queries.data(), s.count, s.first_position}, rows, 0) ==
            transcribed_mask(s.p, queries, s.count, s.first_position, keys, s.tokens, s.dim));
    }
  }
}

// Not a check of our code: how much our documented deviation matters. Queries and keys with standard deviation
// 2 put logits q.k / sqrt(d) around 4 x 1 = 4 (standard deviation), so many exceed the 6.24 where bf16 ties.
TEST_CASE(
    "the original's bf16 sigmoid ranking changes some selected blocks of the raw q.k ranking, on real-valued "
    "inputs",
    "[hip][mask]") {
  std::size_t selected = 0, changed = 0;
  for (const Shape& s : kRealShapes) {
    Rng rng(s.tokens * 17 + s.count);
    auto keys = normal_vector(rng, static_cast<std::size_t>(s.tokens) * s.dim);
    auto queries = normal_vector(rng, static_cast<std::size_t>(s.count) * s.dim);
    for (auto* v : {&keys, &queries}) {
      for (float& x : *v) x *= 2.0f;
    }
    const auto raw = transcribed_mask(s.p, queries, s.count, s.first_position, keys, s.tokens, s.dim);
    const auto original =
        transcribed_mask(s.p, queries, s.count, s.first_position, keys, s.tokens, s.dim, Ranking::bf16_sigmoid);
    std::vector<int> only_raw;
    std::set_difference(raw.begin(), raw.end(), original.begin(), original.end(), std::back_inserter(only_raw));
    selected += raw.size();
    changed += only_raw.size();
  }
  // engines/README.md quotes this line.
  WARN("bf16 sigmoid ranking: " << changed << " of " << selected << " selected blocks differ from raw q.k ranking");
  CHECK(changed > 0);
  CHECK(changed < selected);
}

TEST_CASE("HiP mask on fp16 and bf16 keys reads the stored precision", "[hip][mask]") {
  const int tokens = 4000, dim = 32;
  const auto p = params(128, 64, 2, 2, 16, 64);
  Rng rng(7);
  const auto keys = integer_vector(rng, static_cast<std::size_t>(tokens) * dim);  // exact in both dtypes
  const auto queries = integer_vector(rng, 64 * dim);
  for (kernels::DType dtype : {kernels::DType::f16, kernels::DType::bf16}) {
    std::vector<std::uint16_t> stored(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      stored[i] = dtype == kernels::DType::f16 ? kernels::float_to_half(keys[i]) : kernels::float_to_bf16(keys[i]);
    }
    const kernels::KvView view16{stored.data(), dtype, 1, tokens, dim, static_cast<std::size_t>(tokens) * dim};
    const auto mine =
        engines::hip::select_key_blocks(p, {queries.data(), 64, tokens - 64}, engines::hip::KeyRows(view16), 0);
    INFO(kernels::dtype_name(dtype));
    CHECK(mine == transcribed_mask(p, queries, 64, tokens - 64, keys, tokens, dim));
  }
}

TEST_CASE("HiP mask finds keys that stand out from the haystack", "[hip][mask]") {
  // With a few keys far above every other score, the hierarchy must keep them whatever the noise.
  const int tokens = 20000, dim = 32;
  const auto p = params(256, 64, 2, 2, 32, 128);
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    Rng rng(seed);
    std::vector<float> keys(static_cast<std::size_t>(tokens) * dim);
    for (float& x : keys) x = static_cast<float>(rng.normal());
    std::vector<float> query(dim);
    for (float& x : query) x = static_cast<float>(rng.normal());
    // Runs of strong keys (a "needle sentence") are found through any centre that lands in them; the
    // edges of a run can be lost to halves whose centre fell outside it.
    const int runs[] = {1000 + static_cast<int>(seed) * 3000, 15000};
    for (int start : runs) {
      for (int t = start; t < start + 64; ++t) {
        for (int i = 0; i < dim; ++i) keys[static_cast<std::size_t>(t) * dim + i] = query[i] * 3.0f;
      }
    }
    const auto view_keys = view(keys, tokens, dim);
    const auto mine =
        engines::hip::select_key_blocks(p, {query.data(), 1, tokens - 1}, engines::hip::KeyRows(view_keys), 0);
    const std::set<int> chosen(mine.begin(), mine.end());
    for (int start : runs) {
      int found = 0;
      for (int t = start; t < start + 64; ++t) found += chosen.count(t / p.block_size_k * p.block_size_k);
      INFO("seed " << seed << " run at " << start);
      CHECK(found >= 32);  // a random choice of 128 of ~10K blocks would find about 1
    }
  }
}

TEST_CASE("HiP mask for a group of query heads equals separate masks per head", "[hip][mask]") {
  // Four heads searched together share key rows; each head's blocks must be those of its own search, on
  // integer inputs (ties) and real ones, including a shape where every candidate is selected.
  const Shape shapes[] = {
      kRealShapes[0], kRealShapes[1], kRealShapes[3], {1800, 8, 64, 1736, params(512, 64, 2, 2, 256, 1024)}};
  constexpr int kHeads = 4;
  for (const Shape& s : shapes) {
    for (bool integers : {true, false}) {
      Rng rng(s.tokens * 13 + s.count + integers);
      auto values = [&](std::size_t n) { return integers ? integer_vector(rng, n) : normal_vector(rng, n); };
      const auto keys = values(static_cast<std::size_t>(s.tokens) * s.dim);
      const auto queries = values(static_cast<std::size_t>(kHeads) * s.count * s.dim);
      const engines::hip::KeyRows rows(view(keys, s.tokens, s.dim));
      std::vector<engines::hip::QueryBlock> blocks;
      for (int h = 0; h < kHeads; ++h) {
        blocks.push_back({queries.data() + static_cast<std::size_t>(h) * s.count * s.dim, s.count, s.first_position});
      }
      engines::hip::MaskCounters group_counters, head_counters;
      const auto together = engines::hip::select_key_blocks_for_group(s.p, blocks, rows, 0, &group_counters);
      DYNAMIC_SECTION("T=" << s.tokens << " queries=" << s.count << " integers=" << integers) {
        REQUIRE(together.size() == static_cast<std::size_t>(kHeads));
        for (int h = 0; h < kHeads; ++h) {
          CHECK(together[h] == engines::hip::select_key_blocks(s.p, blocks[h], rows, 0, &head_counters));
        }
        CHECK(group_counters.key_rows_read == head_counters.key_rows_read);
      }
    }
  }
}

TEST_CASE("HiP sampled queries follow the block stride", "[hip][mask]") {
  const auto p = params(512, 64, 2, 2, 256, 1024);
  CHECK(engines::hip::sampled_query_offsets(p, 1) == std::vector<int>{0});
  CHECK(engines::hip::sampled_query_offsets(p, 5) == std::vector<int>{1, 3});
  CHECK(engines::hip::sampled_query_offsets(p, 64).size() == 32);
  CHECK(engines::hip::sampled_query_offsets(p, 64).back() == 63);
}

TEST_CASE("HiP mask parameters are checked", "[hip][mask]") {
  CHECK_THROWS_WITH(params(512, 64, 2, 2, 255, 1024).validate("hip"), Catch::Contains("sinks must be a multiple"));
  CHECK_THROWS_WITH(params(512, 64, 2, 4, 256, 1022).validate("hip"), Catch::Contains("window must be a multiple"));
  CHECK_THROWS_WITH(params(512, 2, 4, 2, 256, 1024).validate("hip"), Catch::Contains("block_stride_q"));
  CHECK_NOTHROW(params(512, 64, 2, 2, 256, 1024).validate("hip"));
}

namespace {

// A key row of `dim` normal values stored as `dtype`: the stored bytes and their exact fp32 values.
struct StoredRow {
  std::vector<std::byte> bytes;
  std::vector<float> values;
};

StoredRow stored_row(Rng& rng, kernels::DType dtype, int dim) {
  StoredRow row{std::vector<std::byte>(static_cast<std::size_t>(dim) * kernels::dtype_bytes(dtype)), {}};
  for (int i = 0; i < dim; ++i) {
    const float x = static_cast<float>(rng.normal());
    if (dtype == kernels::DType::f32) {
      std::memcpy(row.bytes.data() + i * sizeof(float), &x, sizeof(float));
      row.values.push_back(x);
      continue;
    }
    const std::uint16_t bits = dtype == kernels::DType::f16 ? kernels::float_to_half(x) : kernels::float_to_bf16(x);
    std::memcpy(row.bytes.data() + i * sizeof(bits), &bits, sizeof(bits));
    row.values.push_back(dtype == kernels::DType::f16 ? kernels::half_to_float(bits) : kernels::bf16_to_float(bits));
  }
  return row;
}

const kernels::DType kKeyDtypes[] = {kernels::DType::f32, kernels::DType::f16, kernels::DType::bf16};

}  // namespace

TEST_CASE("max_dot on a stored key row equals the float64 maximum of the dot products", "[hip][mask]") {
  // The vectorized paths take 16 or 8 queries per pass (dims a multiple of 16 or 8); any count and dimension,
  // in every stored dtype, must give the plain maximum up to fp32 rounding (dim ulps of the sum of |q_i k_i|).
  Rng rng(11);
  for (kernels::DType dtype : kKeyDtypes) {
    for (int dim : {1, 5, 8, 12, 16, 20, 24, 64, 100, 128}) {
      for (int count : {1, 7, 8, 9, 16, 23, 64}) {
        const std::vector<float> queries = normal_vector(rng, static_cast<std::size_t>(count) * dim);
        const StoredRow key = stored_row(rng, dtype, dim);
        double expected = -std::numeric_limits<double>::infinity(), tolerance = 0;
        for (int i = 0; i < count; ++i) {
          double sum = 0, magnitude = 0;
          for (int j = 0; j < dim; ++j) {
            const double term = double(queries[static_cast<std::size_t>(i) * dim + j]) * key.values[j];
            sum += term;
            magnitude += std::abs(term);
          }
          expected = std::max(expected, sum);
          tolerance = std::max(tolerance, dim * magnitude * std::numeric_limits<float>::epsilon());
        }
        INFO(kernels::dtype_name(dtype) << " dim " << dim << " count " << count);
        CHECK(engines::hip::max_dot(queries.data(), count, key.bytes.data(), dtype, dim) ==
              Approx(expected).margin(tolerance));
      }
    }
  }
}

TEST_CASE("max_dot on an f16 or bf16 key row is bit for bit max_dot on its fp32 copy", "[hip][mask]") {
  // Scoring in place widens exactly and sums in the same order, so masks equal those built from fp32 copies.
  Rng rng(12);
  for (kernels::DType dtype : {kernels::DType::f16, kernels::DType::bf16}) {
    for (int dim : {5, 8, 20, 128}) {
      for (int count : {1, 9, 32}) {
        const std::vector<float> queries = normal_vector(rng, static_cast<std::size_t>(count) * dim);
        const StoredRow key = stored_row(rng, dtype, dim);
        INFO(kernels::dtype_name(dtype) << " dim " << dim << " count " << count);
        CHECK(engines::hip::max_dot(queries.data(), count, key.bytes.data(), dtype, dim) ==
              engines::hip::max_dot(queries.data(), count, key.values.data(), kernels::DType::f32, dim));
      }
    }
  }
}
