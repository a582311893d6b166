// GEAR against a plain float64 transcription of the original's recipe: per row of the quantization direction the
// int(n s / 2) smallest and largest entries are outliers, replaced by the row's mean before KIVI's min-max
// quantization and kept exact; the error elsewhere gets a rank-r power-iteration fit (P uniform from the same
// seeded start, orthonormalized only in the last round, as in the original). The kernels' reconstruction, their
// packed dot products and weighted sums, the error's decrease as the rank and the sparsity grow, a session's
// segments (which tokens are compressed after each call, at which rank), its outputs against float64 attention
// over the reconstructed keys and values, and its resident bytes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

#include "core/random.h"
#include "engines/engine.h"
#include "kernels/gear_kv.h"
#include "kernels/reference.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

double stored(kernels::DType dtype, double x) { return kernels::round_to(dtype, static_cast<float>(x)); }

struct Recipe {
  int bits, group;
  kernels::DType meta;
  double sparsity;
  int iterations;
};

// One compressed segment [tokens][dim] in float64.
struct Transcription {
  int tokens, dim, rank;
  std::vector<double> reconstructed;
  std::vector<char> outlier;
};

// Column j of a [rows][cols] matrix made orthonormal against columns 0..j-1 (classical Gram-Schmidt, re-run once).
void gram_schmidt(std::vector<double>& m, int rows, int cols) {
  auto at = [&](int i, int j) -> double& { return m[static_cast<std::size_t>(i) * cols + j]; };
  for (int j = 0; j < cols; ++j) {
    for (int repeat = 0; repeat < 2; ++repeat) {
      std::vector<double> coefficients(j, 0.0);
      for (int k = 0; k < j; ++k)
        for (int i = 0; i < rows; ++i) coefficients[k] += at(i, k) * at(i, j);
      for (int k = 0; k < j; ++k)
        for (int i = 0; i < rows; ++i) at(i, j) -= coefficients[k] * at(i, k);
    }
    double norm = 0;
    for (int i = 0; i < rows; ++i) norm += at(i, j) * at(i, j);
    for (int i = 0; i < rows; ++i) at(i, j) /= std::sqrt(norm);
  }
}

// The original's recipe on x [tokens][dim]: keys quantize along channels (blocks of `group` tokens), values along
// tokens (groups of `group` channels, the last one shorter).
Transcription transcribe(const std::vector<double>& x, int tokens, int dim, bool keys, const Recipe& recipe, int rank,
                         std::uint64_t seed) {
  auto index = [&](int t, int c) { return static_cast<std::size_t>(t) * dim + c; };
  Transcription out{tokens, dim, std::min({rank, tokens, dim}), {}, std::vector<char>(x.size(), 0)};
  // Outliers of each row, replaced by the row's mean.
  std::vector<double> cleaned = x;
  const int rows = keys ? dim : tokens, length = keys ? tokens : dim;
  const int side = static_cast<int>(length * recipe.sparsity / 2);
  for (int r = 0; r < rows; ++r) {
    auto element = [&](int i) { return keys ? index(i, r) : index(r, i); };
    std::vector<std::pair<double, int>> sorted;
    double sum = 0;
    for (int i = 0; i < length; ++i) {
      sorted.emplace_back(x[element(i)], i);
      sum += x[element(i)];
    }
    const double mean = sum / length;
    std::sort(sorted.begin(), sorted.end());
    for (int k = 0; k < length; ++k) {
      if (k >= side && k < length - side) continue;
      out.outlier[element(sorted[k].second)] = 1;
      cleaned[element(sorted[k].second)] = static_cast<float>(mean);
    }
  }
  // Min-max quantization of each group, dequantized.
  const double levels = (1 << recipe.bits) - 1;
  std::vector<double> dequantized(x.size());
  const int group_rows = keys ? tokens / recipe.group : tokens,
            group_cols = keys ? dim : (dim + recipe.group - 1) / recipe.group;
  for (int gr = 0; gr < group_rows; ++gr) {
    for (int gc = 0; gc < group_cols; ++gc) {
      std::vector<std::size_t> members;
      if (keys) {
        for (int t = gr * recipe.group; t < (gr + 1) * recipe.group; ++t) members.push_back(index(t, gc));
      } else {
        for (int c = gc * recipe.group; c < std::min(dim, (gc + 1) * recipe.group); ++c)
          members.push_back(index(gr, c));
      }
      double lo = cleaned[members[0]], hi = lo;
      for (std::size_t i : members) lo = std::min(lo, cleaned[i]), hi = std::max(hi, cleaned[i]);
      const double scale = stored(recipe.meta, (hi - lo) / levels), zero = stored(recipe.meta, lo);
      for (std::size_t i : members) {
        const double code = scale > 0 ? std::clamp(std::nearbyint((cleaned[i] - zero) / scale), 0.0, levels) : 0.0;
        dequantized[i] = code * scale + zero;
      }
    }
  }
  // The error outside the outliers, and its power iteration exactly as the original orders it.
  std::vector<double> error(x.size(), 0.0);
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!out.outlier[i]) error[i] = x[i] - dequantized[i];
  const int r = out.rank;
  std::vector<double> p(static_cast<std::size_t>(dim) * r), q(static_cast<std::size_t>(tokens) * r);
  Rng rng(seed);
  for (int j = 0; j < r; ++j)
    for (int c = 0; c < dim; ++c) p[static_cast<std::size_t>(c) * r + j] = rng.uniform();
  for (int round = 0; round < recipe.iterations; ++round) {
    const bool last = round == recipe.iterations - 1;
    if (last) gram_schmidt(p, dim, r);
    std::fill(q.begin(), q.end(), 0.0);
    for (int t = 0; t < tokens; ++t)
      for (int j = 0; j < r; ++j)
        for (int c = 0; c < dim; ++c)
          q[static_cast<std::size_t>(t) * r + j] += error[index(t, c)] * p[static_cast<std::size_t>(c) * r + j];
    if (last) gram_schmidt(q, tokens, r);
    std::fill(p.begin(), p.end(), 0.0);
    for (int c = 0; c < dim; ++c)
      for (int j = 0; j < r; ++j)
        for (int t = 0; t < tokens; ++t)
          p[static_cast<std::size_t>(c) * r + j] += error[index(t, c)] * q[static_cast<std::size_t>(t) * r + j];
  }
  out.reconstructed = x;  // outliers stay exact
  for (int t = 0; t < tokens; ++t) {
    for (int c = 0; c < dim; ++c) {
      if (out.outlier[index(t, c)]) continue;
      double low_rank = 0;
      for (int j = 0; j < r; ++j)
        low_rank += stored(recipe.meta, q[static_cast<std::size_t>(t) * r + j]) *
                    stored(recipe.meta, p[static_cast<std::size_t>(c) * r + j]);
      out.reconstructed[index(t, c)] = dequantized[index(t, c)] + low_rank;
    }
  }
  return out;
}

std::vector<double> widened(const std::vector<float>& x, std::size_t from, std::size_t count) {
  return {x.begin() + from, x.begin() + from + count};
}

double relative_error(const std::vector<double>& approx, const std::vector<double>& exact) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < exact.size(); ++i) {
    diff += (approx[i] - exact[i]) * (approx[i] - exact[i]);
    norm += exact[i] * exact[i];
  }
  return std::sqrt(diff / norm);
}

// What the kernels reconstruct of their tokens [0, tokens).
template <class Tensor>
std::vector<double> reconstruction(const Tensor& tensor, int tokens, int dim) {
  std::vector<double> out;
  for (int t = 0; t < tokens; ++t)
    for (int c = 0; c < dim; ++c) out.push_back(tensor.reconstructed(t, c));
  return out;
}

}  // namespace

TEST_CASE("gear's reconstruction (quantized + low rank + sparse) equals the float64 transcription",
          "[baselines][gear]") {
  struct Shape {
    int dim, tokens;
    Recipe recipe;
    int ranks[2];
  };
  const Shape shapes[] = {
      {32, 64, {2, 16, kernels::DType::f32, 0.1, 3}, {4, 2}},
      {20, 48, {4, 8, kernels::DType::f32, 0.25, 2}, {3, 0}},    // head_dim not a multiple of the value group
      {16, 32, {2, 32, kernels::DType::f32, 0.0, 3}, {8, 16}},   // no outliers; rank up to the head dim
      {64, 32, {2, 16, kernels::DType::f16, 0.05, 3}, {2, 1}},   // factors and scales in fp16
      {24, 16, {4, 16, kernels::DType::bf16, 0.5, 1}, {40, 2}},  // half of every row exact; rank capped at tokens
  };
  for (const Shape& s : shapes) {
    DYNAMIC_SECTION("dim " << s.dim << " tokens " << s.tokens << " bits " << s.recipe.bits << " group "
                           << s.recipe.group << " sparsity " << s.recipe.sparsity) {
      Rng rng(Catch::rngSeed() + s.dim * 1000 + s.tokens);
      const kernels::GearSpec spec{
          {s.recipe.bits, s.recipe.group, s.recipe.meta}, s.recipe.sparsity, s.recipe.iterations};
      kernels::GearKeys keys(s.dim, spec);
      kernels::GearValues values(s.dim, spec);
      std::vector<double> expected_keys, expected_values, exact_keys, exact_values;
      std::vector<char> key_outliers, value_outliers;
      for (int segment = 0; segment < 2; ++segment) {  // the second segment has its own rank, seed and rows
        const int first = segment * s.tokens, rank = s.ranks[segment];
        const auto k = random_vector(rng, static_cast<std::size_t>(s.tokens) * s.dim);
        const auto v = random_vector(rng, k.size());
        keys.add_segment(k.data(), s.tokens, rank);
        values.add_segment(v.data(), s.tokens, rank);
        const auto tk = transcribe(widened(k, 0, k.size()), s.tokens, s.dim, true, s.recipe, rank,
                                   kernels::power_iteration_seed(first, false));
        const auto tv = transcribe(widened(v, 0, v.size()), s.tokens, s.dim, false, s.recipe, rank,
                                   kernels::power_iteration_seed(first, true));
        expected_keys.insert(expected_keys.end(), tk.reconstructed.begin(), tk.reconstructed.end());
        expected_values.insert(expected_values.end(), tv.reconstructed.begin(), tv.reconstructed.end());
        exact_keys.insert(exact_keys.end(), k.begin(), k.end());
        exact_values.insert(exact_values.end(), v.begin(), v.end());
        key_outliers.insert(key_outliers.end(), tk.outlier.begin(), tk.outlier.end());
        value_outliers.insert(value_outliers.end(), tv.outlier.begin(), tv.outlier.end());
        CHECK(keys.correction().rank_of(first) == std::min({rank, s.tokens, s.dim}));
      }
      const int tokens = 2 * s.tokens;
      const auto got_keys = reconstruction(keys, tokens, s.dim), got_values = reconstruction(values, tokens, s.dim);
      int outliers_k = 0, outliers_v = 0;
      for (std::size_t i = 0; i < got_keys.size(); ++i) {
        const int t = static_cast<int>(i) / s.dim, c = static_cast<int>(i) % s.dim;
        INFO("token " << t << " channel " << c);
        REQUIRE(keys.correction().is_outlier(t, c) == static_cast<bool>(key_outliers[i]));
        REQUIRE(values.correction().is_outlier(t, c) == static_cast<bool>(value_outliers[i]));
        REQUIRE(got_keys[i] == Approx(expected_keys[i]).margin(1e-5));
        REQUIRE(got_values[i] == Approx(expected_values[i]).margin(1e-5));
        if (key_outliers[i]) REQUIRE(got_keys[i] == Approx(exact_keys[i]).epsilon(1e-6).margin(1e-6));
        if (value_outliers[i]) REQUIRE(got_values[i] == Approx(exact_values[i]).epsilon(1e-6).margin(1e-6));
        outliers_k += key_outliers[i], outliers_v += value_outliers[i];
      }
      // int(n s / 2) at each end of every row: n = tokens of the segment (keys), head_dim (values).
      CHECK(outliers_k == 2 * 2 * s.dim * static_cast<int>(s.tokens * s.recipe.sparsity / 2));
      CHECK(outliers_v == 2 * 2 * s.tokens * static_cast<int>(s.dim * s.recipe.sparsity / 2));
      CHECK(keys.correction().outliers() == static_cast<std::uint64_t>(outliers_k));

      // The packed dot products and weighted sums equal those over the reconstruction.
      const auto q = random_vector(rng, s.dim);
      std::vector<float> logits(tokens), weights(tokens), sum(s.dim, 0.0f);
      for (int t = 0; t < tokens; ++t) weights[t] = 1.0f / (t + 2);
      keys.logits(q.data(), 0.25f, logits.data());
      values.accumulate(weights.data(), sum.data());
      std::vector<double> expected_sum(s.dim, 0.0);
      for (int t = 0; t < tokens; ++t) {
        double dot = 0;
        for (int c = 0; c < s.dim; ++c) {
          dot += q[c] * got_keys[static_cast<std::size_t>(t) * s.dim + c];
          expected_sum[c] += weights[t] * got_values[static_cast<std::size_t>(t) * s.dim + c];
        }
        CHECK(logits[t] == Approx(0.25 * dot).margin(1e-4));
      }
      CHECK(relative_l2_error(sum, expected_sum) < 1e-5);
    }
  }
}

TEST_CASE("gear's error shrinks as the rank and the sparse share grow", "[baselines][gear]") {
  const int dim = 64, tokens = 128;
  Rng rng(Catch::rngSeed() + 7);
  const auto x = random_vector(rng, static_cast<std::size_t>(tokens) * dim);
  const auto exact = widened(x, 0, x.size());
  const auto error_of = [&](bool keys, int rank, double sparsity) {
    const kernels::GearSpec spec{{2, 32, kernels::DType::f32}, sparsity, 3};
    if (keys) {
      kernels::GearKeys tensor(dim, spec);
      tensor.add_segment(x.data(), tokens, rank);
      return relative_error(reconstruction(tensor, tokens, dim), exact);
    }
    kernels::GearValues tensor(dim, spec);
    tensor.add_segment(x.data(), tokens, rank);
    return relative_error(reconstruction(tensor, tokens, dim), exact);
  };
  for (bool keys : {true, false}) {
    DYNAMIC_SECTION((keys ? "keys" : "values")) {
      double previous = error_of(keys, 0, 0.0);
      for (int rank : {1, 2, 4, 8, 16, 64}) {  // nested starts: each rank's subspace holds the previous one's
        const double e = error_of(keys, rank, 0.0);
        INFO("rank " << rank);
        CHECK(e < previous);
        previous = e;
      }
      CHECK(previous < 1e-5);  // full rank: the whole error
      previous = error_of(keys, 0, 0.0);
      for (double sparsity : {0.05, 0.1, 0.2, 0.4}) {
        const double e = error_of(keys, 0, sparsity);
        INFO("sparsity " << sparsity);
        CHECK(e < previous);
        previous = e;
      }
      CHECK(error_of(keys, 4, 0.1) < std::min(error_of(keys, 4, 0.0), error_of(keys, 0, 0.1)));
    }
  }
}

namespace {

struct Setting {
  int bits, group, buffer, rank, prefill_rank;
  double sparsity;
};

struct Case {
  engines::HeadLayout layout;
  int tokens, queries;
  Setting setting;
};

const Case kCases[] = {
    {{2, 1, 16, kernels::DType::f32, 0, 1}, 1, 1, {2, 4, 8, 2, 4, 0.1}},         // a single token
    {{4, 2, 32, kernels::DType::f32, 0, 1}, 50, 10, {2, 16, 64, 2, 4, 0.02}},    // shorter than the buffer: exact
    {{8, 2, 24, kernels::DType::f32, 0, 1}, 301, 23, {2, 8, 16, 2, 4, 0.2}},     // GQA 4, not a multiple of the buffer
    {{4, 4, 16, kernels::DType::f16, 0, 1}, 211, 30, {4, 32, 32, 1, 3, 0.1}},    // 4 bits, dim below the group, fp16
    {{8, 1, 40, kernels::DType::bf16, 0, 1}, 170, 12, {2, 16, 48, 3, 0, 0.05}},  // GQA 8, bf16, no prefill low rank
};

struct Segment {
  int first, tokens, rank;
};

std::unique_ptr<engines::Engine> make_gear(const Setting& s) {
  const auto& info = engines::EngineRegistry::instance().get("gear", "test");
  const Json params = {{"bits", s.bits},       {"group_size", s.group},          {"buffer", s.buffer},
                       {"rank", s.rank},       {"prefill_rank", s.prefill_rank}, {"sparsity", s.sparsity},
                       {"power_iterations", 3}};
  return info.make(resolve_params(info.params, params, "gear"));
}

// Keys (or values) of KV head g, tokens [0, tokens): each segment as the transcription reconstructs it, the rest
// exact; as fp32 rows [tokens][dim].
std::vector<float> reconstructed_head(const Problem& p, int g, int tokens, bool keys,
                                      const std::vector<Segment>& segments, const Setting& s) {
  const int dim = p.layout.head_dim;
  const auto& source = keys ? p.k : p.v;
  const std::size_t from = static_cast<std::size_t>(g) * p.tokens * dim;
  std::vector<float> out(source.begin() + from, source.begin() + from + static_cast<std::size_t>(tokens) * dim);
  const Recipe recipe{s.bits, s.group, p.layout.kv_dtype, s.sparsity, 3};
  for (const Segment& seg : segments) {
    const std::size_t at = static_cast<std::size_t>(seg.first) * dim,
                      count = static_cast<std::size_t>(seg.tokens) * dim;
    const auto t = transcribe(widened(out, at, count), seg.tokens, dim, keys, recipe, seg.rank,
                              kernels::power_iteration_seed(seg.first, !keys));
    std::copy(t.reconstructed.begin(), t.reconstructed.end(), out.begin() + at);
  }
  return out;
}

}  // namespace

TEST_CASE("gear compresses the buffer's whole multiples after each call and attends over the reconstruction",
          "[baselines][gear]") {
  for (const Case& c : kCases) {
    const Setting& s = c.setting;
    DYNAMIC_SECTION("T=" << c.tokens << " d=" << c.layout.head_dim << " bits=" << s.bits << " group=" << s.group
                         << " buffer=" << s.buffer) {
      const Problem p = random_problem(c.layout, c.tokens, c.queries, Catch::rngSeed() + 400 + c.tokens);
      const auto engine = make_gear(s);
      auto session = engine->open(p.layout);
      const int first = c.tokens - c.queries, chunk = std::max(1, c.queries / 3), dim = p.layout.head_dim;
      std::vector<Segment> segments;
      int done = 0, compressed = 0;
      append_tokens(*session, p, 0, first);
      for (int step = 0; done < c.queries; ++step) {
        const bool prefill = step == 0 || step == 3;
        const int n = prefill ? std::min(chunk, c.queries - done) : 1;
        append_tokens(*session, p, first + done, n);
        const int tokens = first + done + n;
        const auto q = slice_tokens(p.q, p.layout.heads_q, p.queries, dim, done, n);
        std::vector<float> out(q.size());
        session->attend(q.data(), n, prefill ? engines::Phase::prefill : engines::Phase::decode, out.data());
        std::vector<float> k, v;
        for (int g = 0; g < p.layout.heads_kv; ++g) {
          const auto kg = reconstructed_head(p, g, tokens, true, segments, s);
          const auto vg = reconstructed_head(p, g, tokens, false, segments, s);
          k.insert(k.end(), kg.begin(), kg.end());
          v.insert(v.end(), vg.begin(), vg.end());
        }
        const std::size_t stride = static_cast<std::size_t>(tokens) * dim;
        const kernels::KvView kview{k.data(), kernels::DType::f32, p.layout.heads_kv, tokens, dim, stride};
        const kernels::KvView vview{v.data(), kernels::DType::f32, p.layout.heads_kv, tokens, dim, stride};
        const auto expected = kernels::reference_attention({q.data(), p.layout.heads_q, n, dim}, kview, vview,
                                                           {tokens - n, 1.0f / std::sqrt(static_cast<float>(dim))});
        INFO("call at query " << done << ", compressed tokens " << compressed);
        CHECK(relative_l2_error(out, expected.out) < 1e-5);
        const int count = (tokens - compressed) / s.buffer * s.buffer;
        if (count > 0) segments.push_back({compressed, count, prefill ? s.prefill_rank : s.rank});
        compressed += count;
        done += n;
      }
      // Codes, scales and zeros, factors, outliers (value + 4-byte index), and the buffer in full precision.
      const std::uint64_t element = kernels::dtype_bytes(c.layout.kv_dtype), row = (dim * s.bits + 7) / 8;
      std::uint64_t per_head = static_cast<std::uint64_t>(2 * (c.tokens - compressed)) * dim * element;
      for (const Segment& seg : segments) {
        const std::uint64_t t = seg.tokens, rank = std::min({seg.rank, seg.tokens, dim});
        const std::uint64_t key_outliers = 2ull * dim * static_cast<int>(seg.tokens * s.sparsity / 2);
        const std::uint64_t value_outliers = 2ull * t * static_cast<int>(dim * s.sparsity / 2);
        per_head += 2 * t * row + (t / s.group) * dim * 2 * element +
                    t * ((dim + s.group - 1) / s.group) * 2 * element + 2 * rank * (t + dim) * element +
                    (key_outliers + value_outliers) * (element + 4);
      }
      CHECK(session->stats().kv_bytes_resident == per_head * c.layout.heads_kv);
      if (c.tokens > s.buffer) CHECK(!segments.empty());
    }
  }
}

TEST_CASE("gear refuses a buffer that is not a multiple of the group and 3 bits", "[baselines][gear]") {
  const auto& info = engines::EngineRegistry::instance().get("gear", "test");
  REQUIRE_THROWS_WITH(info.make(resolve_params(info.params, Json{{"buffer", 100}}, "gear")),
                      Catch::Contains("gear.buffer") && Catch::Contains("multiple of group_size"));
  REQUIRE_THROWS_WITH(info.make(resolve_params(info.params, Json{{"bits", 3}}, "gear")), Catch::Contains("gear.bits"));
}
