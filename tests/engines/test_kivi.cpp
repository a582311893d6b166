// KIVI against a plain float64 transcription: the quantized keys (per channel, blocks of `group` tokens) and
// values (per token, groups of `group` channels, the last one shorter) dequantize to what min-max quantization
// gives, and the packed dot products and weighted sums equal those over the dequantized values; a session
// quantizes exactly the keys and values the rule says after each call (keys `residual` at a time, values all
// but the `residual` newest), every output equals float64 attention over those dequantized keys and values,
// and the resident bytes are the packed codes, the scales and zeros, and the full-precision rest.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "engines/engine.h"
#include "kernels/quantized_kv.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

double stored(kernels::DType dtype, double x) {
  const float f = static_cast<float>(x);
  if (dtype == kernels::DType::f16) return kernels::half_to_float(kernels::float_to_half(f));
  if (dtype == kernels::DType::bf16) return kernels::bf16_to_float(kernels::float_to_bf16(f));
  return f;
}

// Min-max quantization of a group of values, dequantized, in float64 (scale and zero as `meta` stores them).
std::vector<double> fake_quantize(const std::vector<double>& xs, int bits, kernels::DType meta) {
  const double levels = (1 << bits) - 1;
  const double lo = *std::min_element(xs.begin(), xs.end()), hi = *std::max_element(xs.begin(), xs.end());
  const double scale = stored(meta, (hi - lo) / levels), zero = stored(meta, lo);
  std::vector<double> out;
  for (double x : xs)
    out.push_back((scale > 0 ? std::clamp(std::nearbyint((x - zero) / scale), 0.0, levels) : 0) * scale + zero);
  return out;
}

struct KeyValues {
  int tokens, dim;
  std::vector<double> k, v;  // [tokens][dim]
  double& key(int t, int c) { return k[static_cast<std::size_t>(t) * dim + c]; }
  double& value(int t, int c) { return v[static_cast<std::size_t>(t) * dim + c]; }
};

// Keys [0, quant_keys) quantized per channel in blocks of `group` tokens, values [0, quant_values) per token.
void quantize(KeyValues& kv, int quant_keys, int quant_values, int bits, int group, kernels::DType meta) {
  for (int block = 0; block < quant_keys; block += group) {
    for (int c = 0; c < kv.dim; ++c) {
      std::vector<double> xs;
      for (int t = block; t < block + group; ++t) xs.push_back(kv.key(t, c));
      const auto q = fake_quantize(xs, bits, meta);
      for (int t = block; t < block + group; ++t) kv.key(t, c) = q[t - block];
    }
  }
  for (int t = 0; t < quant_values; ++t) {
    for (int begin = 0; begin < kv.dim; begin += group) {
      const int end = std::min(kv.dim, begin + group);
      std::vector<double> xs;
      for (int c = begin; c < end; ++c) xs.push_back(kv.value(t, c));
      const auto q = fake_quantize(xs, bits, meta);
      for (int c = begin; c < end; ++c) kv.value(t, c) = q[c - begin];
    }
  }
}

KeyValues head_of(const Problem& p, int g, int tokens) {
  const int d = p.layout.head_dim;
  KeyValues kv{tokens, d, {}, {}};
  const std::size_t from = static_cast<std::size_t>(g) * p.tokens * d;
  kv.k.assign(p.k.begin() + from, p.k.begin() + from + static_cast<std::size_t>(tokens) * d);
  kv.v.assign(p.v.begin() + from, p.v.begin() + from + static_cast<std::size_t>(tokens) * d);
  return kv;
}

std::vector<double> attention_row(KeyValues& kv, const float* q, int visible) {
  std::vector<double> logits;
  for (int t = 0; t < visible; ++t) {
    double s = 0;
    for (int c = 0; c < kv.dim; ++c) s += q[c] * kv.key(t, c);
    logits.push_back(s / std::sqrt(static_cast<double>(kv.dim)));
  }
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> out(kv.dim, 0.0);
  double total = 0;
  for (int t = 0; t < visible; ++t) {
    const double w = std::exp(logits[t] - top);
    total += w;
    for (int c = 0; c < kv.dim; ++c) out[c] += w * kv.value(t, c);
  }
  for (double& x : out) x /= total;
  return out;
}

struct Setting {
  int bits, group, residual;
};

std::unique_ptr<engines::Engine> make_kivi(const Setting& s) {
  const auto& info = engines::EngineRegistry::instance().get("kivi", "test");
  const Json params = {{"bits", s.bits}, {"group_size", s.group}, {"residual", s.residual}};
  return info.make(resolve_params(info.params, params, "kivi"));
}

struct Case {
  engines::HeadLayout layout;
  int tokens, queries;
  Setting setting;
};

const Case kCases[] = {
    {{2, 1, 16, kernels::DType::f32, 0, 1}, 1, 1, {2, 4, 8}},        // a single token
    {{4, 2, 32, kernels::DType::f32, 0, 1}, 50, 10, {2, 32, 128}},   // shorter than the residual: exact
    {{8, 2, 64, kernels::DType::f32, 0, 1}, 301, 23, {2, 16, 32}},   // GQA 4, not a multiple of the group
    {{4, 4, 16, kernels::DType::f16, 0, 1}, 211, 30, {4, 32, 64}},   // 4 bits, dim below the group, fp16
    {{8, 1, 96, kernels::DType::bf16, 0, 1}, 170, 12, {4, 40, 40}},  // GQA 8, bf16, dim not a multiple
};

}  // namespace

TEST_CASE("kivi's packed keys and values dequantize as min-max quantization and attend as their dequantized form",
          "[baselines][kivi]") {
  for (int bits : {2, 4}) {
    for (auto [dim, group, meta] : {std::tuple{64, 32, kernels::DType::f16}, std::tuple{20, 8, kernels::DType::f32},
                                    std::tuple{24, 32, kernels::DType::bf16}}) {
      DYNAMIC_SECTION("bits " << bits << " dim " << dim << " group " << group) {
        Rng rng(bits * 100 + dim);
        const int tokens = 3 * group;
        const auto k = random_vector(rng, static_cast<std::size_t>(tokens) * dim);
        const auto v = random_vector(rng, k.size());
        const auto q = random_vector(rng, dim);
        const kernels::QuantSpec spec{bits, group, meta};
        kernels::ChannelQuantizedKeys keys(dim, spec);
        kernels::TokenQuantizedValues values(dim, spec);
        for (int b = 0; b < 3; ++b) keys.add_block(k.data() + static_cast<std::size_t>(b) * group * dim);
        for (int t = 0; t < tokens; ++t) values.add_token(v.data() + static_cast<std::size_t>(t) * dim);
        KeyValues kv{tokens, dim, {k.begin(), k.end()}, {v.begin(), v.end()}};
        quantize(kv, tokens, tokens, bits, group, meta);
        std::vector<float> logits(tokens), weights(tokens), sum(dim, 0.0f);
        keys.logits(q.data(), 0.5f, logits.data());
        for (int t = 0; t < tokens; ++t) weights[t] = 1.0f / (t + 1);
        values.accumulate(weights.data(), sum.data());
        std::vector<double> expected_sum(dim, 0.0);
        for (int t = 0; t < tokens; ++t) {
          double dot = 0;
          for (int c = 0; c < dim; ++c) {
            INFO("token " << t << " channel " << c);
            REQUIRE(keys.dequantized(t, c) == Approx(kv.key(t, c)).margin(1e-6));
            REQUIRE(values.dequantized(t, c) == Approx(kv.value(t, c)).margin(1e-6));
            dot += q[c] * kv.key(t, c);
            expected_sum[c] += weights[t] * kv.value(t, c);
          }
          CHECK(logits[t] == Approx(0.5 * dot).margin(1e-4));
        }
        CHECK(relative_l2_error(sum, expected_sum) < 1e-5);
        // Packed: bits per element, plus a scale and a zero per channel and block (keys) or per group (values).
        const std::uint64_t codes = static_cast<std::uint64_t>(tokens) * ((dim * bits + 7) / 8);
        const std::uint64_t meta_bytes = 2 * kernels::dtype_bytes(meta);
        CHECK(keys.bytes() == codes + 3ull * dim * meta_bytes);
        CHECK(values.bytes() == codes + static_cast<std::uint64_t>(tokens) * ((dim + group - 1) / group) * meta_bytes);
      }
    }
  }
}

TEST_CASE("kivi quantizes what the rule says after each call and attends over the dequantized cache",
          "[baselines][kivi]") {
  for (const Case& c : kCases) {
    const Setting& s = c.setting;
    DYNAMIC_SECTION("T=" << c.tokens << " d=" << c.layout.head_dim << " bits=" << s.bits << " group=" << s.group
                         << " residual=" << s.residual) {
      const Problem p = random_problem(c.layout, c.tokens, c.queries, 300 + c.tokens);
      const auto engine = make_kivi(s);
      auto session = engine->open(p.layout);
      const int first = c.tokens - c.queries, chunk = std::max(1, c.queries / 3);
      int done = 0, quant_keys = 0, quant_values = 0;
      append_tokens(*session, p, 0, first);
      for (int step = 0; done < c.queries; ++step) {
        const bool prefill = step == 0 || step == 3;
        const int n = prefill ? std::min(chunk, c.queries - done) : 1;
        append_tokens(*session, p, first + done, n);
        const int tokens = first + done + n;
        const auto q = slice_tokens(p.q, p.layout.heads_q, p.queries, p.layout.head_dim, done, n);
        std::vector<float> out(q.size());
        session->attend(q.data(), n, prefill ? engines::Phase::prefill : engines::Phase::decode, out.data());
        std::vector<double> expected;
        const int group = p.layout.heads_q / p.layout.heads_kv;
        for (int h = 0; h < p.layout.heads_q; ++h) {
          KeyValues kv = head_of(p, h / group, tokens);
          quantize(kv, quant_keys, quant_values, s.bits, s.group, c.layout.kv_dtype);
          for (int i = 0; i < n; ++i) {
            const auto row = attention_row(kv, q.data() + (static_cast<std::size_t>(h) * n + i) * p.layout.head_dim,
                                           tokens - n + i + 1);
            expected.insert(expected.end(), row.begin(), row.end());
          }
        }
        INFO("call at query " << done << ", quantized keys " << quant_keys << ", values " << quant_values);
        CHECK(relative_l2_error(out, expected) < 1e-5);
        quant_keys += (tokens - quant_keys) / s.residual * s.residual;
        quant_values = std::max(quant_values, tokens - s.residual);
        done += n;
      }
      const int d = c.layout.head_dim;
      const std::uint64_t row = (d * s.bits + 7) / 8, meta = 2 * kernels::dtype_bytes(c.layout.kv_dtype);
      const std::uint64_t element = kernels::dtype_bytes(c.layout.kv_dtype);
      const std::uint64_t per_head = quant_keys * row + quant_keys / s.group * d * meta + quant_values * row +
                                     quant_values * static_cast<std::uint64_t>((d + s.group - 1) / s.group) * meta +
                                     static_cast<std::uint64_t>(2 * c.tokens - quant_keys - quant_values) * d * element;
      CHECK(session->stats().kv_bytes_resident == per_head * c.layout.heads_kv);
    }
  }
}

TEST_CASE("kivi refuses a residual that is not a multiple of the group and 3 bits", "[baselines][kivi]") {
  const auto& info = engines::EngineRegistry::instance().get("kivi", "test");
  REQUIRE_THROWS_WITH(info.make(resolve_params(info.params, Json{{"residual", 100}}, "kivi")),
                      Catch::Contains("kivi.residual") && Catch::Contains("multiple of group_size"));
  REQUIRE_THROWS_WITH(info.make(resolve_params(info.params, Json{{"bits", 3}}, "kivi")), Catch::Contains("kivi.bits"));
}
