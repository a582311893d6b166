// RoPE family: config parsing, per-type inverse frequencies and magnitudes against an independent float64
// re-derivation of the HF formulas, rotation against a float64 reference in both layouts, and the
// Self-Extend / InfiniteHiP position rules.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "kernels/rope.h"

namespace {

using nlohmann::json;
using namespace ctxbench::kernels;

constexpr double kPi = 3.14159265358979323846;

// ---- Golden formulas, written out again in float64 (not calling the code under test) ----------------

std::vector<double> golden_default(int d, double base) {
  std::vector<double> inv;
  for (int j = 0; j < d; j += 2) inv.push_back(std::pow(base, -static_cast<double>(j) / d));
  return inv;
}

double golden_corr_dim(double rotations, int d, double base, double l0) {
  return d * std::log(l0 / (rotations * 2 * kPi)) / (2 * std::log(base));
}

std::vector<double> golden_yarn(int d, double base, double l0, double s, double* low_out, double* high_out) {
  double low = std::max(std::floor(golden_corr_dim(32, d, base, l0)), 0.0);
  double high = std::min(std::ceil(golden_corr_dim(1, d, base, l0)), d - 1.0);
  *low_out = low;
  *high_out = high;
  if (low == high) high += 0.001;
  std::vector<double> inv = golden_default(d, base);
  for (std::size_t i = 0; i < inv.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1 - ramp;
    inv[i] = inv[i] / s * (1 - extrapolation_weight) + inv[i] * extrapolation_weight;
  }
  return inv;
}

std::vector<double> golden_llama3(int d, double base, double factor, double lff, double hff, double l0) {
  std::vector<double> inv = golden_default(d, base);
  for (double& f : inv) {
    const double wavelen = 2 * kPi / f;
    if (wavelen > l0 / lff) {
      f = f / factor;
    } else if (wavelen >= l0 / hff) {
      const double smooth = (l0 / wavelen - lff) / (hff - lff);
      f = (1 - smooth) * f / factor + smooth * f;
    }
  }
  return inv;
}

void require_close(const std::vector<double>& got, const std::vector<double>& want, double rel = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("pair " << i);
    REQUIRE(got[i] == Approx(want[i]).epsilon(rel));
  }
}

json llama2_config() {
  return json{
      {"hidden_size", 4096}, {"num_attention_heads", 32}, {"rope_theta", 10000.0}, {"max_position_embeddings", 4096}};
}

// Catch's --rng-seed (pinned by ctest, printed by Catch with a failure) replays any failure.
std::mt19937 seeded_rng() { return std::mt19937(Catch::rngSeed()); }

std::vector<float> random_vector(std::mt19937& rng, std::size_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Rotation in float64 from first principles: pair i of the NeoX layout is (i, i + d/2), of the interleaved
// layout (2i, 2i + 1); both elements scale by `magnitude`.
std::vector<double> reference_rotate(const float* x, int head_dim, int rotary_dim, const std::vector<double>& inv,
                                     double position, double magnitude, bool neox) {
  std::vector<double> out(x, x + head_dim);
  for (int i = 0; i < rotary_dim / 2; ++i) {
    const int a = neox ? i : 2 * i;
    const int b = neox ? i + rotary_dim / 2 : 2 * i + 1;
    const double angle = position * inv[i];
    out[a] = magnitude * (x[a] * std::cos(angle) - x[b] * std::sin(angle));
    out[b] = magnitude * (x[b] * std::cos(angle) + x[a] * std::sin(angle));
  }
  return out;
}

double dot(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Rotates a copy of one vector to `position` with the default RoPE of its size.
std::vector<float> rotated(const std::vector<float>& x, std::int64_t position, RopeLayout layout) {
  const RopeFrequencies freqs = RopeConfig::standard_rope(static_cast<int>(x.size())).frequencies(1);
  std::vector<float> out = x;
  const std::int64_t pos[] = {position};
  apply_rope(out.data(), 1, 1, static_cast<int>(x.size()), freqs, pos, layout);
  return out;
}

}  // namespace

// ---- Config parsing and per-type frequencies --------------------------------------------------------

TEST_CASE("rope default type from hidden_size / num_attention_heads", "[rope]") {
  const RopeConfig rope = RopeConfig::from_hf_json(llama2_config());
  CHECK(rope.type == RopeType::standard);
  CHECK(rope.head_dim == 128);
  CHECK(rope.rotary_dim == 128);
  CHECK(rope.attention_factor() == 1.0);
  require_close(rope.inv_freq(100000), golden_default(128, 1e4));
}

TEST_CASE("rope head_dim, partial_rotary_factor and a null rope_scaling", "[rope]") {
  json config{{"hidden_size", 2560},
              {"num_attention_heads", 32},
              {"partial_rotary_factor", 0.4},
              {"rope_theta", 10000},
              {"rope_scaling", nullptr}};
  RopeConfig rope = RopeConfig::from_hf_json(config);
  CHECK(rope.head_dim == 80);
  CHECK(rope.rotary_dim == 32);
  require_close(rope.inv_freq(10), golden_default(32, 1e4));

  config["head_dim"] = 60;  // an explicit head_dim wins over hidden_size / heads
  rope = RopeConfig::from_hf_json(config);
  CHECK(rope.head_dim == 60);
  CHECK(rope.rotary_dim == 24);
}

TEST_CASE("rope linear, static NTK and dynamic NTK frequencies", "[rope]") {
  json config = llama2_config();
  const std::vector<double> base = golden_default(128, 1e4);

  SECTION("linear divides every frequency by the factor") {
    config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
    const RopeConfig rope = RopeConfig::from_hf_json(config);
    std::vector<double> want = base;
    for (double& f : want) f /= 4.0;
    require_close(rope.inv_freq(1), want);
    require_close(rope.inv_freq(1 << 20), want);
    CHECK(rope.attention_factor() == 1.0);
  }
  SECTION("static NTK raises the base to b * factor^(d/(d-2)) at every length") {
    config["rope_scaling"] = {{"rope_type", "ntk"}, {"factor", 4}};
    const RopeConfig rope = RopeConfig::from_hf_json(config);
    const std::vector<double> want = golden_default(128, 1e4 * std::pow(4.0, 128.0 / 126.0));
    require_close(rope.inv_freq(1), want);
    require_close(rope.inv_freq(50000), want);
  }
  SECTION("dynamic NTK is the default up to L and grows its base past L") {
    config["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
    const RopeConfig rope = RopeConfig::from_hf_json(config);
    require_close(rope.inv_freq(1), base);
    require_close(rope.inv_freq(4096), base);
    for (const std::int64_t seq_len : {4097, 16384, 1000000}) {
      INFO("seq_len " << seq_len);
      const double grown = 1e4 * std::pow(2.0 * seq_len / 4096.0 - 1.0, 128.0 / 126.0);
      require_close(rope.inv_freq(seq_len), golden_default(128, grown));
    }
    CHECK(rope.inv_freq(16384)[10] < base[10]);
  }
}

TEST_CASE("rope YaRN on Llama-2 blends pairs 20..46", "[rope]") {
  json config = llama2_config();
  config["max_position_embeddings"] = 16384;
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 4096}};
  const RopeConfig rope = RopeConfig::from_hf_json(config);
  double low = 0, high = 0;
  const std::vector<double> want = golden_yarn(128, 1e4, 4096, 4.0, &low, &high);
  CHECK(low == 20);
  CHECK(high == 46);
  CHECK(rope.yarn_range().low == 20);
  CHECK(rope.yarn_range().high == 46);
  require_close(rope.inv_freq(1), want);
  CHECK(rope.attention_factor() == Approx(0.1 * std::log(4.0) + 1.0).epsilon(1e-14));
  // Pairs below `low` extrapolate (unchanged), pairs above `high` interpolate (divided by the factor).
  const std::vector<double> base = golden_default(128, 1e4);
  CHECK(rope.inv_freq(1)[19] == Approx(base[19]).epsilon(1e-14));
  CHECK(rope.inv_freq(1)[50] == Approx(base[50] / 4).epsilon(1e-14));

  SECTION("without original_max_position_embeddings L0 is max_position_embeddings") {
    config["max_position_embeddings"] = 4096;
    config["rope_scaling"].erase("original_max_position_embeddings");
    require_close(RopeConfig::from_hf_json(config).inv_freq(1), want);
  }
}

TEST_CASE("rope YaRN on Llama-3 blends pairs 18..35", "[rope]") {
  json config{{"head_dim", 128},
              {"rope_theta", 500000.0},
              {"max_position_embeddings", 32768},
              {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 8192}}}};
  const RopeConfig rope = RopeConfig::from_hf_json(config);
  double low = 0, high = 0;
  const std::vector<double> want = golden_yarn(128, 5e5, 8192, 4.0, &low, &high);
  CHECK(low == 18);
  CHECK(high == 35);
  CHECK(rope.yarn_range().low == 18);
  CHECK(rope.yarn_range().high == 35);
  require_close(rope.inv_freq(123), want);
}

TEST_CASE("rope YaRN magnitude: mscale, mscale_all_dim, explicit factor, truncate", "[rope]") {
  json config{{"head_dim", 64}, {"rope_theta", 10000}, {"max_position_embeddings", 163840}};
  json scaling{{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}};
  auto parse = [&](const json& s) {
    json c = config;
    c["rope_scaling"] = s;
    return RopeConfig::from_hf_json(c);
  };
  const auto g = [](double s, double m) { return 0.1 * m * std::log(s) + 1.0; };

  CHECK(parse(scaling).attention_factor() == Approx(g(40, 1)).epsilon(1e-14));
  json deepseek = scaling;
  deepseek["mscale"] = 1.0;
  deepseek["mscale_all_dim"] = 1.0;
  CHECK(parse(deepseek).attention_factor() == Approx(1.0).epsilon(1e-14));
  deepseek["mscale"] = 0.707;
  CHECK(parse(deepseek).attention_factor() == Approx(g(40, 0.707) / g(40, 1.0)).epsilon(1e-14));
  json mscale_only = scaling;
  mscale_only["mscale"] = 0.707;  // HF needs both to be set; otherwise plain g(s, 1)
  CHECK(parse(mscale_only).attention_factor() == Approx(g(40, 1)).epsilon(1e-14));
  json all_dim_only = scaling;
  all_dim_only["mscale_all_dim"] = 0.5;
  CHECK(parse(all_dim_only).attention_factor() == Approx(g(40, 1)).epsilon(1e-14));
  json explicit_factor = scaling;
  explicit_factor["attention_factor"] = 1.25;
  CHECK(parse(explicit_factor).attention_factor() == 1.25);

  json untruncated = scaling;
  untruncated["truncate"] = false;
  const YarnRange range = parse(untruncated).yarn_range();
  CHECK(range.low == Approx(golden_corr_dim(32, 64, 1e4, 4096)).epsilon(1e-14));
  CHECK(range.high == Approx(golden_corr_dim(1, 64, 1e4, 4096)).epsilon(1e-14));
  CHECK(range.low != std::floor(range.low));

  json implicit_factor = scaling;  // no factor: max_position_embeddings / L0 = 40
  implicit_factor.erase("factor");
  CHECK(parse(implicit_factor).factor == 40.0);
}

TEST_CASE("rope YaRN with low == high nudges high by 0.001 instead of dividing by zero", "[rope]") {
  // L0 = 6 puts both correction dims at or below 0, so low = high = 0 after clamping.
  json config{{"head_dim", 64},
              {"rope_theta", 10000},
              {"max_position_embeddings", 24},
              {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 6}}}};
  const RopeConfig rope = RopeConfig::from_hf_json(config);
  REQUIRE(rope.yarn_range().low == 0);
  REQUIRE(rope.yarn_range().high == 0);
  const std::vector<double> got = rope.inv_freq(1);
  const std::vector<double> base = golden_default(64, 1e4);
  CHECK(got[0] == base[0]);  // ramp (0 - 0) / 0.001 = 0: extrapolated
  for (std::size_t i = 1; i < got.size(); ++i) REQUIRE(got[i] == Approx(base[i] / 4).epsilon(1e-14));
}

TEST_CASE("rope llama3 smooths between L0/hff and L0/lff", "[rope]") {
  json config{{"hidden_size", 4096},
              {"num_attention_heads", 32},
              {"rope_theta", 500000.0},
              {"max_position_embeddings", 131072},
              {"rope_scaling",
               {{"rope_type", "llama3"},
                {"factor", 8.0},
                {"low_freq_factor", 1.0},
                {"high_freq_factor", 4.0},
                {"original_max_position_embeddings", 8192}}}};
  const RopeConfig rope = RopeConfig::from_hf_json(config);
  const std::vector<double> got = rope.inv_freq(1);
  require_close(got, golden_llama3(128, 5e5, 8, 1, 4, 8192));
  CHECK(rope.attention_factor() == 1.0);
  // All three regions occur: kept, blended, divided by 8.
  const std::vector<double> base = golden_default(128, 5e5);
  int kept = 0, divided = 0, blended = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] == base[i])
      ++kept;
    else if (std::abs(got[i] - base[i] / 8) < 1e-18)
      ++divided;
    else
      ++blended;
  }
  CHECK(kept > 0);
  CHECK(divided > 0);
  CHECK(blended > 0);
}

TEST_CASE("rope longrope (Phi-3-128k): factors by length and magnitude 1.1902", "[rope]") {
  auto rng = seeded_rng();
  std::uniform_real_distribution<double> uniform(1.0, 60.0);
  std::vector<double> long_factor(48), short_factor(48);
  for (double& f : long_factor) f = uniform(rng);
  for (double& f : short_factor) f = uniform(rng) / 20.0;
  json config{{"hidden_size", 3072},
              {"num_attention_heads", 32},
              {"rope_theta", 10000.0},
              {"max_position_embeddings", 131072},
              {"original_max_position_embeddings", 4096},
              {"rope_scaling", {{"type", "su"}, {"long_factor", long_factor}, {"short_factor", short_factor}}}};
  const RopeConfig rope = RopeConfig::from_hf_json(config);
  CHECK(rope.type == RopeType::longrope);
  CHECK(rope.head_dim == 96);
  const double want_af = std::sqrt(1 + std::log(131072.0 / 4096.0) / std::log(4096.0));
  CHECK(rope.attention_factor() == Approx(want_af).epsilon(1e-14));
  CHECK(rope.attention_factor() == Approx(1.1902).margin(5e-5));

  const std::vector<double> base = golden_default(96, 1e4);
  std::vector<double> want_short(48), want_long(48);
  for (int i = 0; i < 48; ++i) {
    want_short[i] = 1.0 / (short_factor[i] * std::pow(1e4, 2.0 * i / 96));
    want_long[i] = 1.0 / (long_factor[i] * std::pow(1e4, 2.0 * i / 96));
  }
  require_close(rope.inv_freq(4096), want_short);
  require_close(rope.inv_freq(4097), want_long);
  // The magnitude applies to short inputs too.
  CHECK(rope.frequencies(10).attention_factor == Approx(want_af).epsilon(1e-14));

  SECTION("transformers 5 rope_parameters with L0 and theta inside, and an explicit factor") {
    json v5{{"head_dim", 96},
            {"max_position_embeddings", 131072},
            {"rope_parameters",
             {{"rope_type", "longrope"},
              {"rope_theta", 250000.0},
              {"factor", 16.0},
              {"original_max_position_embeddings", 8192},
              {"long_factor", long_factor},
              {"short_factor", short_factor}}}};
    const RopeConfig r5 = RopeConfig::from_hf_json(v5);
    CHECK(r5.theta == 250000.0);
    CHECK(r5.original_max_position_embeddings == 8192);
    CHECK(r5.attention_factor() == Approx(std::sqrt(1 + std::log(16.0) / std::log(8192.0))).epsilon(1e-14));
    CHECK(r5.inv_freq(8192)[5] == Approx(1.0 / (short_factor[5] * std::pow(2.5e5, 10.0 / 96))).epsilon(1e-12));
  }
}

TEST_CASE("rope bad configs name the field and what was expected", "[rope]") {
  auto with_scaling = [](const json& scaling) {
    json c = llama2_config();
    c["rope_scaling"] = scaling;
    return c;
  };
  using Catch::Matchers::Contains;
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"type", "yarn"}, {"factor", 0.5}})),
                      Contains("rope_scaling.factor: expected a number >= 1"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"rope_type", "linear"}, {"factor", "4"}})),
                      Contains("rope_scaling.factor: expected a number"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"rope_type", "linear"}})),
                      Contains("rope_scaling.factor") && Contains("missing"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"rope_type", "xpos"}, {"factor", 2}})),
                      Contains("rope_scaling.rope_type: expected one of") && Contains("xpos"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"rope_type", "llama3"},
                                                             {"factor", 8},
                                                             {"high_freq_factor", 4},
                                                             {"original_max_position_embeddings", 8192}})),
                      Contains("rope_scaling.low_freq_factor"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"rope_type", "llama3"},
                                                             {"factor", 8},
                                                             {"low_freq_factor", 4},
                                                             {"high_freq_factor", 1},
                                                             {"original_max_position_embeddings", 8192}})),
                      Contains("high_freq_factor"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"type", "longrope"},
                                                             {"long_factor", std::vector<double>(63, 1.0)},
                                                             {"short_factor", std::vector<double>(64, 1.0)}})),
                      Contains("rope_scaling.long_factor: expected an array of 64") && Contains("got 63 entries"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"type", "longrope"},
                                                             {"long_factor", std::vector<double>(64, 1.0)},
                                                             {"short_factor", std::vector<double>(64, -1.0)}})),
                      Contains("rope_scaling.short_factor[0]: expected a positive number"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling("yarn")),
                      Contains("rope_scaling: expected an object or null"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(json{{"rope_theta", 1e4}}), Contains("head_dim:"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(json{{"head_dim", 64}, {"rope_theta", 0.5}}),
                      Contains("rope_theta: expected a number > 1"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(json{{"head_dim", 64}, {"partial_rotary_factor", 0.4}}),
                      Contains("partial_rotary_factor") && Contains("even"));
  REQUIRE_THROWS_WITH(
      RopeConfig::from_hf_json(json{{"head_dim", 64}, {"rope_scaling", {{"type", "dynamic"}, {"factor", 2}}}}),
      Contains("max_position_embeddings: expected a positive integer"));
  REQUIRE_THROWS_WITH(
      RopeConfig::from_hf_json(json{{"head_dim", 64}, {"rope_parameters", {{"rope_type", "yarn"}, {"factor", 0}}}}),
      Contains("max_position_embeddings") && Contains("rope_parameters.original_max_position_embeddings"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(json{{"head_dim", 64},
                                                    {"max_position_embeddings", 4096},
                                                    {"rope_parameters", {{"rope_type", "yarn"}, {"factor", 0}}}}),
                      Contains("rope_parameters.factor: expected a number >= 1, got 0"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(json{{"head_dim", 64.5}}),
                      Contains("head_dim: expected a positive integer"));
  REQUIRE_THROWS_WITH(RopeConfig::from_hf_json(with_scaling({{"type", "longrope"},
                                                             {"long_factor", std::vector<double>(64, 1.0)},
                                                             {"short_factor", std::vector<double>(64, 1.0)},
                                                             {"start_token", -1}})),
                      Contains("rope_scaling.start_token: expected an integer >= 0, got -1"));
}

// ---- Tables and rotation ----------------------------------------------------------------------------

TEST_CASE("rope tables hold cos/sin of double angles times the magnitude, up to millions of tokens", "[rope]") {
  json config = llama2_config();
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 8.0}};
  const RopeFrequencies freqs = RopeConfig::from_hf_json(config).frequencies(1);
  double low = 0, high = 0;
  const std::vector<double> inv = golden_yarn(128, 1e4, 4096, 8.0, &low, &high);
  const double af = 0.1 * std::log(8.0) + 1.0;
  const std::vector<std::int64_t> positions{0, 1, 4095, 32768, 1000003, 3999999};
  const RopeTable table = make_rope_table(freqs, positions);
  REQUIRE(table.rows() == positions.size());
  for (std::size_t t = 0; t < positions.size(); ++t) {
    for (int i = 0; i < 64; ++i) {
      INFO("position " << positions[t] << " pair " << i);
      const double angle = static_cast<double>(positions[t]) * inv[i];
      REQUIRE(table.cos_row(t)[i] == Approx(af * std::cos(angle)).margin(2e-6));
      REQUIRE(table.sin_row(t)[i] == Approx(af * std::sin(angle)).margin(2e-6));
    }
  }
}

TEST_CASE("rope apply matches a float64 rotation in both layouts, with partial rotary dims", "[rope]") {
  auto rng = seeded_rng();
  struct Shape {
    int heads, tokens, head_dim, rotary_dim;
  };
  for (const Shape shape : {Shape{1, 1, 8, 8}, Shape{3, 17, 64, 64}, Shape{2, 5, 96, 32}, Shape{4, 9, 128, 128}}) {
    for (const RopeLayout layout : {RopeLayout::neox, RopeLayout::interleaved}) {
      const bool neox = layout == RopeLayout::neox;
      INFO("heads " << shape.heads << " tokens " << shape.tokens << " head_dim " << shape.head_dim << " rotary "
                    << shape.rotary_dim << (neox ? " neox" : " interleaved"));
      RopeConfig rope = RopeConfig::standard_rope(shape.head_dim, 5e5);
      rope.rotary_dim = shape.rotary_dim;
      rope.type = RopeType::yarn;  // a non-unit magnitude must scale both elements
      rope.factor = 4.0;
      rope.original_max_position_embeddings = 8192;
      rope.validate();
      const RopeFrequencies freqs = rope.frequencies(1);
      std::uniform_int_distribution<std::int64_t> pos_dist(0, 2000000);
      std::vector<std::int64_t> positions(shape.tokens);
      for (auto& p : positions) p = pos_dist(rng);
      const std::vector<float> input = random_vector(rng, std::size_t(shape.heads) * shape.tokens * shape.head_dim);
      std::vector<float> x = input;
      apply_rope(x.data(), shape.heads, shape.tokens, shape.head_dim, freqs, positions, layout);

      // Independent inverse frequencies: Llama-3-style YaRN derived above.
      double low = 0, high = 0;
      const std::vector<double> inv = golden_yarn(shape.rotary_dim, 5e5, 8192, 4.0, &low, &high);
      for (int h = 0; h < shape.heads; ++h) {
        for (int t = 0; t < shape.tokens; ++t) {
          const std::size_t offset = (std::size_t(h) * shape.tokens + t) * shape.head_dim;
          const std::vector<double> want =
              reference_rotate(input.data() + offset, shape.head_dim, shape.rotary_dim, inv,
                               static_cast<double>(positions[t]), 0.1 * std::log(4.0) + 1.0, neox);
          for (int e = 0; e < shape.head_dim; ++e) {
            INFO("h " << h << " t " << t << " e " << e);
            REQUIRE(x[offset + e] == Approx(want[e]).margin(1e-5));
          }
        }
      }
    }
  }
}

TEST_CASE("rope q.k after rotation depends only on the position difference", "[rope]") {
  auto rng = seeded_rng();
  for (const int dim : {16, 64, 128}) {
    for (const RopeLayout layout : {RopeLayout::neox, RopeLayout::interleaved}) {
      const std::vector<float> q = random_vector(rng, dim);
      const std::vector<float> k = random_vector(rng, dim);
      for (const std::int64_t distance : {0, 1, 7, 300, 5000}) {
        const auto q0 = rotated(q, distance, layout);
        const auto k0 = rotated(k, 0, layout);
        const double at_origin = dot(q0.data(), k0.data(), dim);
        for (const std::int64_t shift : {1, 999, 123456, 2500000}) {
          INFO("dim " << dim << " distance " << distance << " shift " << shift);
          const auto qs = rotated(q, distance + shift, layout);
          const auto ks = rotated(k, shift, layout);
          REQUIRE(dot(qs.data(), ks.data(), dim) == Approx(at_origin).margin(2e-4 * dim));
        }
      }
      // And it does change with the distance (so the check above can fail).
      const double d1 = dot(rotated(q, 10, layout).data(), rotated(k, 0, layout).data(), dim);
      const double d2 = dot(rotated(q, 11, layout).data(), rotated(k, 0, layout).data(), dim);
      CHECK(std::abs(d1 - d2) > 1e-3);
    }
  }
}

TEST_CASE("rope NeoX and interleaved layouts agree under the pair permutation", "[rope]") {
  auto rng = seeded_rng();
  const int dim = 64;
  const std::vector<float> neox_input = random_vector(rng, std::size_t(2) * 3 * dim);
  // Interleaved element 2i holds NeoX element i and 2i+1 holds NeoX element i + d/2.
  auto to_interleaved = [&](const std::vector<float>& v) {
    std::vector<float> out(v.size());
    for (std::size_t row = 0; row < v.size() / dim; ++row) {
      for (int i = 0; i < dim / 2; ++i) {
        out[row * dim + 2 * i] = v[row * dim + i];
        out[row * dim + 2 * i + 1] = v[row * dim + i + dim / 2];
      }
    }
    return out;
  };
  const RopeFrequencies freqs = RopeConfig::standard_rope(dim).frequencies(1);
  const std::vector<std::int64_t> positions{3, 40000, 777777};
  std::vector<float> neox = neox_input;
  std::vector<float> interleaved = to_interleaved(neox_input);
  apply_rope(neox.data(), 2, 3, dim, freqs, positions, RopeLayout::neox);
  apply_rope(interleaved.data(), 2, 3, dim, freqs, positions, RopeLayout::interleaved);
  const std::vector<float> permuted = to_interleaved(neox);
  for (std::size_t e = 0; e < permuted.size(); ++e) REQUIRE(interleaved[e] == permuted[e]);
  CHECK(neox != neox_input);
}

TEST_CASE("rope LongRoPE start tokens keep unscaled angles and no magnitude", "[rope]") {
  json config{{"head_dim", 32},
              {"rope_theta", 10000},
              {"max_position_embeddings", 65536},
              {"rope_scaling",
               {{"type", "longrope"},
                {"original_max_position_embeddings", 4096},
                {"long_factor", std::vector<double>(16, 8.0)},
                {"short_factor", std::vector<double>(16, 1.5)},
                {"start_token", 4}}}};
  config["rope_scaling"]["start_token"] = 0;  // n_hat = 0 is LongRoPE's plain setting
  CHECK(RopeConfig::from_hf_json(config).frequencies(60000).start_tokens == 0);
  config["rope_scaling"]["start_token"] = 4;
  const RopeConfig rope = RopeConfig::from_hf_json(config);
  const RopeFrequencies freqs = rope.frequencies(60000);
  const double af = std::sqrt(1 + std::log(16.0) / std::log(4096.0));
  const std::vector<double> base = golden_default(32, 1e4);
  const std::vector<std::int64_t> positions{0, 3, 4, 59999};
  const RopeTable table = make_rope_table(freqs, positions);
  for (std::size_t t = 0; t < positions.size(); ++t) {
    const bool start = positions[t] < 4;
    for (int i = 0; i < 16; ++i) {
      INFO("position " << positions[t] << " pair " << i);
      const double inv = start ? base[i] : base[i] / 8.0;
      const double magnitude = start ? 1.0 : af;
      REQUIRE(table.cos_row(t)[i] == Approx(magnitude * std::cos(positions[t] * inv)).margin(1e-6));
      REQUIRE(table.sin_row(t)[i] == Approx(magnitude * std::sin(positions[t] * inv)).margin(1e-6));
    }
  }
}

TEST_CASE("rope apply rejects mismatched shapes", "[rope]") {
  const RopeFrequencies freqs = RopeConfig::standard_rope(64).frequencies(1);
  std::vector<float> x(64 * 4);
  const std::vector<std::int64_t> three{0, 1, 2};
  REQUIRE_THROWS_AS(apply_rope(x.data(), 1, 4, 64, freqs, three, RopeLayout::neox), std::invalid_argument);
  const RopeTable table = make_rope_table(freqs, three);
  REQUIRE_THROWS_AS(apply_rope(x.data(), 1, 4, 64, table, RopeLayout::neox), std::invalid_argument);
  REQUIRE_THROWS_AS(apply_rope(x.data(), 1, 2, 32, table, RopeLayout::neox), std::invalid_argument);
}

// ---- Position remappings ----------------------------------------------------------------------------

TEST_CASE("rope Self-Extend positions follow LongLM's mask and grouped positions", "[rope]") {
  for (const auto& [window, group] : std::vector<std::pair<int, int>>{{8, 2}, {16, 4}, {6, 4}, {5, 1}}) {
    const SelfExtendParams params{window, group};
    const int n = 40;
    // LongLM prefill mask: lower-triangular ones, minus tril(ones(n-W, n-W)) placed at rows >= W, cols < n-W.
    std::vector<std::vector<int>> neighbour(n, std::vector<int>(n, 0));
    for (int r = 0; r < n; ++r) {
      for (int c = 0; c <= r; ++c) neighbour[r][c] = 1;
    }
    for (int r = 0; r < n - window; ++r) {
      for (int c = 0; c <= r; ++c) neighbour[window + r][c] -= 1;
    }
    for (int q = 0; q < n; ++q) {
      const std::vector<PositionPair> keys = self_extend_key_positions(q, params);
      REQUIRE(keys.size() == std::size_t(q + 1));
      for (int k = 0; k <= q; ++k) {
        INFO("W " << window << " G " << group << " q " << q << " k " << k);
        REQUIRE(keys[k].query == self_extend_positions(q, k, params).query);
        REQUIRE(keys[k].key == self_extend_positions(q, k, params).key);
        if (neighbour[q][k] == 1) {
          REQUIRE(keys[k].query == q);
          REQUIRE(keys[k].key == k);
        } else {
          // LongLM decode path: grouped distance q//G - k//G + (W - W//G).
          REQUIRE(keys[k].query - keys[k].key == q / group - k / group + (window - window / group));
          REQUIRE(keys[k].key == k / group);
        }
      }
    }
  }
  // Boundary: q - k = W-1 is a neighbour, q - k = W is grouped.
  const SelfExtendParams params{1024, 8};
  CHECK(self_extend_positions(5000, 5000 - 1023, params).key == 5000 - 1023);
  CHECK(self_extend_positions(5000, 5000 - 1024, params).key == (5000 - 1024) / 8);
  CHECK(self_extend_positions(5000, 5000 - 1024, params).query == 5000 / 8 + 1024 - 128);
  REQUIRE_THROWS_AS(self_extend_positions(3, 4, params), std::invalid_argument);
  REQUIRE_THROWS_WITH(self_extend_positions(3, 1, SelfExtendParams{1024, 0}), Catch::Contains("self_extend.group"));
}

TEST_CASE("rope InfiniteHiP streaming, relative and chunk-indexed positions", "[rope]") {
  SECTION("streaming lays [sinks | selected | window] out contiguously ending at the query") {
    const std::vector<std::int64_t> p = hip_streaming_positions(4, 10, 6, 100000);
    REQUIRE(p.size() == 20);
    CHECK(p.back() == 100000);
    for (std::size_t s = 1; s < p.size(); ++s) REQUIRE(p[s] == p[s - 1] + 1);
    // hip-attention's compact numbering starts at 0.
    const std::vector<std::int64_t> compact = hip_streaming_positions(4, 10, 6, 19);
    CHECK(compact.front() == 0);
    // Not enough room before `end`: clamped at 0.
    const std::vector<std::int64_t> clamped = hip_streaming_positions(2, 0, 2, 1);
    CHECK(clamped == std::vector<std::int64_t>{0, 0, 0, 1});
  }
  SECTION("relative: left half at 0, right half at 1, query at window - first_chunk + 1") {
    using rope_math::hip_scan_key_position;
    using rope_math::hip_scan_query_position;
    CHECK(hip_scan_key_position(HipScanPositions::relative, 77, false) == 0);
    CHECK(hip_scan_key_position(HipScanPositions::relative, 77, true) == 1);
    CHECK(hip_scan_query_position(HipScanPositions::relative, 500000, 1000, 1024, 64) == 1024 - 64 + 1);
    CHECK(hip_scan_query_position(HipScanPositions::relative, 500000, 1000, 32, 64) == 1);
  }
  SECTION("chunk-indexed: chunk j at j, query at min(q, chunks + window - first_chunk)") {
    using rope_math::hip_scan_key_position;
    using rope_math::hip_scan_query_position;
    CHECK(hip_scan_key_position(HipScanPositions::chunk_indexed, 77, true) == 77);
    CHECK(hip_scan_key_position(HipScanPositions::chunk_indexed, 77, false) == 77);
    CHECK(hip_scan_query_position(HipScanPositions::chunk_indexed, 500000, 1000, 1024, 64) == 1000 + 960);
    CHECK(hip_scan_query_position(HipScanPositions::chunk_indexed, 1500, 1000, 1024, 64) == 1500);
  }
}
