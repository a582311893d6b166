// Rotary position embeddings: the HF transformers RoPE family (default, linear, dynamic NTK, static NTK,
// YaRN, Llama 3.1, LongRoPE/"su") parsed from a model's config.json, cos/sin tables for arbitrary position
// lists, in-place rotation in the NeoX (HF) or interleaved (GGUF) layout, and the position remappings of
// Self-Extend and InfiniteHiP. The per-element arithmetic lives in kernels/rope_math.h.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/attention.h"
#include "kernels/rope_math.h"

namespace ctxbench::kernels {

using rope_math::HipScanPositions;
using rope_math::PositionPair;
using rope_math::RopeLayout;

enum class RopeType { standard, linear, dynamic, ntk, yarn, llama3, longrope };

std::string_view rope_type_name(RopeType type);

// YaRN's blend range over pair indices (floor/ceil unless `truncate` is false), clamped to [0, d-1].
struct YarnRange {
  double low = 0;
  double high = 0;
};

// Inverse frequencies and magnitude in effect for one sequence length.
struct RopeFrequencies {
  int rotary_dim = 0;
  std::vector<double> inv_freq;  // rotary_dim/2 entries
  double attention_factor = 1.0;
  // LongRoPE start tokens: positions in [0, start_tokens) keep the unscaled angles and no magnitude factor.
  std::int64_t start_tokens = 0;
  std::vector<double> unscaled_inv_freq;  // filled only when start_tokens > 0
};

struct RopeConfig {
  RopeType type = RopeType::standard;
  int head_dim = 0;    // elements per head vector
  int rotary_dim = 0;  // leading elements that rotate: int(head_dim * partial_rotary_factor), even
  double theta = 10000.0;
  std::int64_t max_position_embeddings = 0;           // 0 when the config has none
  std::int64_t original_max_position_embeddings = 0;  // L0 of yarn, llama3, longrope
  double factor = 1.0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;
  // yarn and longrope: an explicit magnitude replaces the derived one
  std::optional<double> attention_factor_override;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // longrope
  std::vector<double> short_factor;
  std::vector<double> long_factor;
  std::int64_t start_tokens = 0;  // LongRoPE n_hat ("start_token" key; not an HF field)

  // Reads an HF config.json object: head_dim (or hidden_size / num_attention_heads), partial_rotary_factor,
  // rope_theta, max_position_embeddings, original_max_position_embeddings and rope_parameters (transformers
  // 5) or rope_scaling, with rope_type or the legacy "type" key. Throws InputError naming the
  // field and what was expected.
  static RopeConfig from_hf_json(const nlohmann::json& config);

  // Default RoPE for a head size (what a config without rope_scaling yields).
  static RopeConfig standard_rope(int head_dim, double theta = 10000.0);

  // Throws InputError naming the offending field (used by from_hf_json; call it after editing
  // fields by hand).
  void validate() const;

  // Magnitude multiplied into cos and sin (the same for every sequence length).
  double attention_factor() const;
  YarnRange yarn_range() const;
  // seq_len = number of positions in play (max position + 1): dynamic NTK grows its base past
  // max_position_embeddings, LongRoPE uses long_factor when seq_len > L0 and short_factor otherwise.
  std::vector<double> inv_freq(std::int64_t seq_len) const;
  RopeFrequencies frequencies(std::int64_t seq_len) const;
};

// cos/sin for a list of positions, already multiplied by the attention factor; row t belongs to
// positions[t]. A runtime can keep one and reuse it for every head and layer.
struct RopeTable {
  int rotary_dim = 0;
  std::vector<float> cos;  // [positions][rotary_dim/2]
  std::vector<float> sin;

  std::size_t rows() const;
  const float* cos_row(std::size_t row) const { return cos.data() + row * (rotary_dim / 2); }
  const float* sin_row(std::size_t row) const { return sin.data() + row * (rotary_dim / 2); }
};

// Angles are formed in double (position * inv_freq) before cos/sin, so millions of positions stay exact.
RopeTable make_rope_table(const RopeFrequencies& freqs, std::span<const std::int64_t> positions);

// Rotates x[heads][tokens][head_dim] in place, token t with table row t; elements past rotary_dim pass
// through. Throws std::invalid_argument when the table has fewer rows than tokens or rotary_dim > head_dim.
void apply_rope(float* x, int heads, int tokens, int head_dim, const RopeTable& table, RopeLayout layout);

// Same, building the table for `positions` (one per token).
void apply_rope(float* x, int heads, int tokens, int head_dim, const RopeFrequencies& freqs,
                std::span<const std::int64_t> positions, RopeLayout layout);

// ---- Position remappings ----------------------------------------------------------------------------

struct SelfExtendParams {
  std::int64_t window = 1024;  // neighbour window W (LongLM group_size_2)
  std::int64_t group = 8;      // group size G (LongLM group_size_1)
  void validate() const;
};

// Effective (query, key) positions of one pair: real positions when q - k < W, else the grouped
// positions (q//G + W - W//G, k//G). Keys must not be after the query.
PositionPair self_extend_positions(std::int64_t query, std::int64_t key, const SelfExtendParams& params);

// The pairs for keys 0..query (causal) of one query, in key order.
std::vector<PositionPair> self_extend_key_positions(std::int64_t query, const SelfExtendParams& params);

// InfiniteHiP "streaming" attention positions for the attended keys laid out [sinks | selected | window]:
// contiguous, the last one at `end` (the query's real position, or n-1 for hip-attention's compact
// numbering), never below 0.
std::vector<std::int64_t> hip_streaming_positions(std::int64_t num_sinks, std::int64_t num_selected,
                                                  std::int64_t num_window, std::int64_t end);

// ---- InfiniteHiP position modes over key lists (an engine that caches un-rotated keys) -------------

// Where one pruning stage puts its query vectors and the keys it scores: `real` keeps every token's own
// position (what keys rotated once at their positions give); `relative` and `chunk_indexed` are the
// remappings of rope_math.h.
enum class HipPrunePositions { real, relative, chunk_indexed };

struct HipScanGeometry {
  std::int64_t num_chunks = 0;   // chunks of the stage being scanned (its input list)
  std::int64_t window = 0;       // the sliding window
  std::int64_t first_chunk = 0;  // the first stage's chunk size (hip-attention shrinks the window by it)
};

// Position of a query whose real position is `query`; `pooled_first` is the real position of the first
// query of the pooled vector it belongs to (hip-attention rotates a pooled group at one position).
std::int64_t hip_prune_query_position(HipPrunePositions mode, std::int64_t query, std::int64_t pooled_first,
                                      const HipScanGeometry& geometry);

// Position of key `token` when it represents the left or right half of chunk `chunk_index` (0-based in the
// stage's sorted chunk list) during the descent.
std::int64_t hip_prune_key_position(HipPrunePositions mode, std::int64_t token, std::int64_t chunk_index,
                                    bool right_half);

// Chunk-indexed positions of every token of `chunks` (sorted, disjoint), in order: all of chunk j at j.
std::vector<std::int64_t> hip_chunk_indexed_positions(std::span<const KeyRange> chunks);

// Streaming positions of the keys of `attended` (sorted, disjoint, none after `query`), in order: laid out
// contiguously so that the last key sits at `query`. A key of the unbroken run ending at the query (the
// window) keeps its real position; every other key moves closer. Throws std::invalid_argument on ranges
// that are unsorted, overlapping or past the query.
std::vector<std::int64_t> hip_streaming_key_positions(std::span<const KeyRange> attended, std::int64_t query);

// Rotates head vectors to arbitrary positions with any RoPE of the family without a table row per
// position: p = hi * 1024 + lo, and cos/sin of p come from a fine table (lo) and a coarse one (hi) by the
// angle-addition formulas in double, rounded to float once, like make_rope_table (LongRoPE start tokens
// keep their own rows). Memory is O(sqrt(positions)); rotate() is thread-safe, reserve() is not.
class RopeRotator {
 public:
  RopeRotator(RopeFrequencies freqs, RopeLayout layout);

  // Makes rotate() valid for positions in [0, positions).
  void reserve(std::int64_t positions);
  std::int64_t capacity() const { return static_cast<std::int64_t>(coarse_rows_) * kFine; }
  int rotary_dim() const { return freqs_.rotary_dim; }
  RopeLayout layout() const { return layout_; }
  const RopeFrequencies& frequencies() const { return freqs_; }

  // Rotates the first rotary_dim elements of one head vector to `position` (cos and sin carry the
  // attention factor). Throws std::out_of_range outside [0, capacity()).
  void rotate(float* x, std::int64_t position) const;
  // Rotates rows [heads][n][dim] of n consecutive tokens to positions first .. first + n - 1, reserving them
  // first (so, like reserve(), not thread-safe).
  void rotate_rows(float* rows, int heads, int n, int dim, std::int64_t first);

 private:
  static constexpr int kFine = 1024;
  void fill_rows(std::vector<double>& cos, std::vector<double>& sin, std::int64_t first, std::int64_t count,
                 std::int64_t stride, const std::vector<double>& inv) const;

  RopeFrequencies freqs_;
  RopeLayout layout_;
  int pairs_;
  std::vector<double> fine_cos_, fine_sin_;      // [kFine][pairs]: angle lo * inv
  std::vector<double> coarse_cos_, coarse_sin_;  // [coarse_rows_][pairs]: angle hi * kFine * inv
  std::size_t coarse_rows_ = 0;
  RopeTable start_;  // LongRoPE start tokens [0, start_tokens)
};

}  // namespace ctxbench::kernels
