// InfiniteHiP position modes (streaming, relative, chunk-indexed) over key lists, and RopeRotator, against a
// float64 reference: the positions are re-derived here from the rules of SPEC.md section 3 (not by calling
// the code under test) and the rotation is done in double from the type's inverse frequencies.
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

// Catch's --rng-seed (pinned by ctest, printed by Catch with a failure) replays any failure.
std::mt19937_64 fresh_rng() { return std::mt19937_64(Catch::rngSeed()); }

std::vector<float> random_vector(std::mt19937_64& rng, int n) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// One configuration of every RoPE type, head 64 (rotary 48 for the partial one).
std::vector<std::pair<std::string, RopeConfig>> rope_family() {
  auto parse = [](json scaling, double partial = 1.0) {
    json config = {{"hidden_size", 512},
                   {"num_attention_heads", 8},
                   {"rope_theta", 10000.0},
                   {"max_position_embeddings", 4096},
                   {"partial_rotary_factor", partial}};
    if (!scaling.is_null()) config["rope_scaling"] = scaling;
    return RopeConfig::from_hf_json(config);
  };
  std::vector<double> short_factor(32, 1.0), long_factor;
  for (int i = 0; i < 32; ++i) long_factor.push_back(1.0 + i * 0.25);
  return {
      {"default", parse(nullptr)},
      {"partial", parse(nullptr, 0.75)},
      {"linear", parse({{"rope_type", "linear"}, {"factor", 4.0}})},
      {"ntk", parse({{"rope_type", "ntk"}, {"factor", 4.0}})},
      {"dynamic", parse({{"rope_type", "dynamic"}, {"factor", 4.0}})},
      {"yarn", parse({{"rope_type", "yarn"}, {"factor", 8.0}, {"original_max_position_embeddings", 1024}})},
      {"llama3", parse({{"rope_type", "llama3"},
                        {"factor", 8.0},
                        {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", 1024}})},
      {"longrope", parse({{"rope_type", "longrope"},
                          {"short_factor", short_factor},
                          {"long_factor", long_factor},
                          {"original_max_position_embeddings", 1024},
                          {"start_token", 5}})},
  };
}

// x rotated to `position` in double: pair (a, b) -> (a cos - b sin, a sin + b cos) times the magnitude.
std::vector<double> reference_rotate(const std::vector<float>& x, const RopeFrequencies& f, std::int64_t position,
                                     RopeLayout layout) {
  std::vector<double> out(x.begin(), x.end());
  const bool start = position < f.start_tokens;
  const std::vector<double>& inv = start ? f.unscaled_inv_freq : f.inv_freq;
  const double magnitude = start ? 1.0 : f.attention_factor;
  const int half = f.rotary_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int a = layout == RopeLayout::neox ? i : 2 * i;
    const int b = layout == RopeLayout::neox ? i + half : 2 * i + 1;
    const double angle = static_cast<double>(position) * inv[i];
    out[a] = (x[a] * std::cos(angle) - x[b] * std::sin(angle)) * magnitude;
    out[b] = (x[a] * std::sin(angle) + x[b] * std::cos(angle)) * magnitude;
  }
  return out;
}

double reference_score(const std::vector<float>& q, std::int64_t q_pos, const std::vector<float>& k, std::int64_t k_pos,
                       const RopeFrequencies& f, RopeLayout layout) {
  const std::vector<double> rq = reference_rotate(q, f, q_pos, layout), rk = reference_rotate(k, f, k_pos, layout);
  double dot = 0;
  for (std::size_t i = 0; i < rq.size(); ++i) dot += rq[i] * rk[i];
  return dot;
}

float rotator_score(const RopeRotator& rotator, std::vector<float> q, std::int64_t q_pos, std::vector<float> k,
                    std::int64_t k_pos) {
  rotator.rotate(q.data(), q_pos);
  rotator.rotate(k.data(), k_pos);
  double dot = 0;
  for (std::size_t i = 0; i < q.size(); ++i) dot += static_cast<double>(q[i]) * k[i];
  return static_cast<float>(dot);
}

// |a - b| relative to |q| |k| times the squared magnitude: the scale of any score of those two vectors.
void require_score_close(double got, double want, const std::vector<float>& q, const std::vector<float>& k,
                         double magnitude) {
  double qq = 0, kk = 0;
  for (float x : q) qq += x * x;
  for (float x : k) kk += x * x;
  REQUIRE(std::abs(got - want) <= 2e-6 * std::sqrt(qq * kk) * std::max(1.0, magnitude * magnitude));
}

// Sorted disjoint chunks of random sizes in [sinks, end).
std::vector<KeyRange> random_chunks(std::mt19937_64& rng, int sinks, int end) {
  std::vector<KeyRange> chunks;
  int at = sinks;
  while (true) {
    at += static_cast<int>(rng() % 40);
    const int size = 1 + static_cast<int>(rng() % 64);
    if (at + size > end) break;
    chunks.push_back({at, at + size});
    at += size;
  }
  return chunks;
}

}  // namespace

TEST_CASE("RopeRotator equals the float64 rotation for every RoPE type and both layouts", "[rope][hip_rope]") {
  auto rng = fresh_rng();
  for (const auto& [name, config] : rope_family()) {
    INFO(name);
    const RopeFrequencies freqs = config.frequencies(1 << 20);
    for (RopeLayout layout : {RopeLayout::neox, RopeLayout::interleaved}) {
      RopeRotator rotator(freqs, layout);
      rotator.reserve(1 << 20);
      REQUIRE(rotator.capacity() >= (1 << 20));
      std::vector<std::int64_t> positions = {0, 1, 4, 5, 1023, 1024, 1025, (1 << 20) - 1};
      for (int i = 0; i < 40; ++i) positions.push_back(static_cast<std::int64_t>(rng() % (1 << 20)));
      for (std::int64_t p : positions) {
        INFO("position " << p);
        std::vector<float> x = random_vector(rng, config.head_dim);
        const std::vector<double> want = reference_rotate(x, freqs, p, layout);
        rotator.rotate(x.data(), p);
        for (int i = 0; i < config.head_dim; ++i) REQUIRE(std::abs(x[i] - want[i]) <= 2e-6 * (1 + std::abs(want[i])));
      }
      REQUIRE_THROWS_AS(rotator.rotate(std::vector<float>(64).data(), rotator.capacity()), std::out_of_range);
      REQUIRE_THROWS_AS(rotator.rotate(std::vector<float>(64).data(), -1), std::out_of_range);
    }
  }
}

TEST_CASE("InfiniteHiP relative and chunk-indexed pruning scores equal the float64 computation", "[rope][hip_rope]") {
  auto rng = fresh_rng();
  const int sinks = 16, window = 200, first_chunk = 64;
  const int tokens = 3000 + static_cast<int>(rng() % 3000);
  const std::vector<KeyRange> chunks = random_chunks(rng, sinks, tokens - window);
  REQUIRE(chunks.size() > 10);
  const HipScanGeometry geometry{static_cast<std::int64_t>(chunks.size()), window, first_chunk};
  const std::int64_t w = window - first_chunk;  // the shrunk window of hip-attention
  for (const auto& [name, config] : rope_family()) {
    INFO(name);
    const RopeFrequencies freqs = config.frequencies(tokens);
    RopeRotator rotator(freqs, RopeLayout::neox);
    rotator.reserve(tokens);
    for (int trial = 0; trial < 20; ++trial) {
      const std::int64_t pooled_first = tokens - 1 - static_cast<std::int64_t>(rng() % 64);
      const std::int64_t query = pooled_first + static_cast<std::int64_t>(rng() % 4);
      const std::size_t j = rng() % chunks.size();
      const std::int64_t token = chunks[j].begin + static_cast<std::int64_t>(rng() % (chunks[j].end - chunks[j].begin));
      const bool right = rng() % 2 == 1;
      const std::vector<float> q = random_vector(rng, config.head_dim), k = random_vector(rng, config.head_dim);
      struct Expected {
        HipPrunePositions mode;
        std::int64_t query, key;
      };
      const std::int64_t chunk_query =
          std::min<std::int64_t>(pooled_first, static_cast<std::int64_t>(chunks.size()) + w);
      for (const Expected& e :
           {Expected{HipPrunePositions::real, query, token},
            Expected{HipPrunePositions::relative, w + 1, right ? 1 : 0},
            Expected{HipPrunePositions::chunk_indexed, chunk_query, static_cast<std::int64_t>(j)}}) {
        INFO("mode " << static_cast<int>(e.mode));
        const std::int64_t q_pos = hip_prune_query_position(e.mode, query, pooled_first, geometry);
        const std::int64_t k_pos = hip_prune_key_position(e.mode, token, static_cast<std::int64_t>(j), right);
        REQUIRE(q_pos == e.query);
        REQUIRE(k_pos == e.key);
        require_score_close(rotator_score(rotator, q, q_pos, k, k_pos),
                            reference_score(q, e.query, k, e.key, freqs, RopeLayout::neox), q, k,
                            freqs.attention_factor);
      }
    }
  }
}

TEST_CASE("InfiniteHiP streaming scores equal the float64 computation", "[rope][hip_rope]") {
  auto rng = fresh_rng();
  const int sinks = 32, window = 128;
  const std::int64_t query = 4000 + static_cast<std::int64_t>(rng() % 4000);
  // [sinks | random selected chunks | window], the way the engine's plans look.
  std::vector<KeyRange> attended = {{0, sinks}};
  for (const KeyRange& c : random_chunks(rng, sinks + 1, static_cast<int>(query) - window)) attended.push_back(c);
  attended.push_back({static_cast<int>(query) - window + 1, static_cast<int>(query) + 1});
  std::vector<std::int64_t> keys;
  for (const KeyRange& r : attended) {
    for (int t = r.begin; t < r.end; ++t) keys.push_back(t);
  }
  const std::vector<std::int64_t> positions = hip_streaming_key_positions(attended, query);
  REQUIRE(positions.size() == keys.size());
  for (const auto& [name, config] : rope_family()) {
    INFO(name);
    const RopeFrequencies freqs = config.frequencies(query + 1);
    RopeRotator rotator(freqs, RopeLayout::interleaved);
    rotator.reserve(query + 1);
    const std::vector<float> q = random_vector(rng, config.head_dim);
    for (int trial = 0; trial < 30; ++trial) {
      const std::size_t slot = rng() % keys.size();
      // Written out again: the key's position is the query's minus the attended keys after it.
      const std::int64_t expected = query - static_cast<std::int64_t>(keys.size() - 1 - slot);
      REQUIRE(positions[slot] == expected);
      const std::vector<float> k = random_vector(rng, config.head_dim);
      require_score_close(rotator_score(rotator, q, query, k, positions[slot]),
                          reference_score(q, query, k, expected, freqs, RopeLayout::interleaved), q, k,
                          freqs.attention_factor);
    }
  }
}

TEST_CASE("InfiniteHiP position mode invariants", "[rope][hip_rope]") {
  auto rng = fresh_rng();
  SECTION("streaming: contiguous, ending at the query, window keys at the query minus their distance") {
    const std::int64_t query = 10000 + static_cast<std::int64_t>(rng() % 1000);
    const int window = 1 + static_cast<int>(rng() % 300);
    std::vector<KeyRange> attended = {{0, 7}};
    for (const KeyRange& c : random_chunks(rng, 8, static_cast<int>(query) - window)) attended.push_back(c);
    attended.push_back({static_cast<int>(query) - window + 1, static_cast<int>(query) + 1});
    const std::vector<std::int64_t> p = hip_streaming_key_positions(attended, query);
    REQUIRE(p.back() == query);
    for (std::size_t s = 1; s < p.size(); ++s) REQUIRE(p[s] == p[s - 1] + 1);
    for (int distance = 0; distance < window; ++distance) {
      REQUIRE(p[p.size() - 1 - distance] == query - distance);
    }
    // Every other key only moves closer to the query.
    std::size_t slot = 0;
    for (const KeyRange& r : attended) {
      for (int t = r.begin; t < r.end; ++t) REQUIRE(p[slot++] >= t);
    }
    // Everything attended: the streaming positions are the real ones.
    const std::vector<KeyRange> all = {{0, static_cast<int>(query) + 1}};
    const std::vector<std::int64_t> real = hip_streaming_key_positions(all, query);
    for (std::int64_t t = 0; t <= query; ++t) REQUIRE(real[t] == t);
    REQUIRE_THROWS_AS(hip_streaming_key_positions(std::vector<KeyRange>{{5, 9}, {3, 4}}, 20), std::invalid_argument);
    REQUIRE_THROWS_AS(hip_streaming_key_positions(std::vector<KeyRange>{{5, 22}}, 20), std::invalid_argument);
  }
  SECTION("chunk-indexed: every token of chunk j at j") {
    const std::vector<KeyRange> chunks = random_chunks(rng, 3, 5000);
    const std::vector<std::int64_t> p = hip_chunk_indexed_positions(chunks);
    std::size_t slot = 0;
    for (std::size_t j = 0; j < chunks.size(); ++j) {
      for (int t = chunks[j].begin; t < chunks[j].end; ++t) {
        REQUIRE(p[slot++] == static_cast<std::int64_t>(j));
        REQUIRE(hip_prune_key_position(HipPrunePositions::chunk_indexed, t, static_cast<std::int64_t>(j), t % 2 == 0) ==
                static_cast<std::int64_t>(j));
      }
    }
    REQUIRE(slot == p.size());
  }
  SECTION("relative: a chunk scores the same wherever it lies, and only offsets matter") {
    const HipScanGeometry geometry{500, 1024, 256};
    const std::int64_t q_pos = hip_prune_query_position(HipPrunePositions::relative, 900000, 899996, geometry);
    REQUIRE(q_pos == hip_prune_query_position(HipPrunePositions::relative, 3000, 2999, geometry));
    for (bool right : {false, true}) {
      REQUIRE(hip_prune_key_position(HipPrunePositions::relative, 17, 0, right) ==
              hip_prune_key_position(HipPrunePositions::relative, 800000, 499, right));
    }
    // Shifting query and key together leaves the score unchanged (types without start tokens).
    for (const auto& [name, config] : rope_family()) {
      if (config.start_tokens > 0) continue;
      INFO(name);
      RopeRotator rotator(config.frequencies(1 << 16), RopeLayout::neox);
      rotator.reserve(1 << 16);
      const std::vector<float> q = random_vector(rng, config.head_dim), k = random_vector(rng, config.head_dim);
      const float base = rotator_score(rotator, q, q_pos, k, 1);
      for (int trial = 0; trial < 10; ++trial) {
        const std::int64_t shift = static_cast<std::int64_t>(rng() % 60000);
        require_score_close(rotator_score(rotator, q, q_pos + shift, k, 1 + shift), base, q, k,
                            config.attention_factor());
      }
    }
  }
}
