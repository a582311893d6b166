#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/json_fields.h"

namespace ctxbench::kernels {
namespace {

using nlohmann::json;

// What a LongRoPE factor list holds, for messages.
constexpr const char* kPairsWhat = "one per rotary pair, rotary_dim/2";

std::string shown(const json& value) { return value.dump(); }

RopeType parse_rope_type(const JsonFields& scaling) {
  std::string_view key = scaling.find("rope_type") ? "rope_type" : "type";
  const json* value = scaling.find(key);
  const std::string expected = "one of default, linear, dynamic, ntk, yarn, llama3, longrope, su";
  if (!value) return RopeType::standard;
  if (!value->is_string()) fail_field(scaling.name(key), expected + ", got " + shown(*value));
  const std::string name = value->get<std::string>();
  if (name == "default") return RopeType::standard;
  if (name == "linear") return RopeType::linear;
  if (name == "dynamic") return RopeType::dynamic;
  if (name == "ntk") return RopeType::ntk;
  if (name == "yarn") return RopeType::yarn;
  if (name == "llama3") return RopeType::llama3;
  if (name == "longrope" || name == "su") return RopeType::longrope;
  fail_field(scaling.name(key), expected + ", got \"" + name + "\"");
}

// Far above any model's (at most 256 today), low enough that RoPE tables of it fit in memory.
constexpr std::int64_t kMaxHeadDim = 1 << 16;

int parse_head_dim(const JsonFields& top) {
  const auto at_most_max = [](const char* field, std::int64_t value) {
    if (value > kMaxHeadDim)
      fail_field(field, "at most " + std::to_string(kMaxHeadDim) + ", got " + std::to_string(value));
    return static_cast<int>(value);
  };
  if (const auto head_dim = top.positive_integer("head_dim")) return at_most_max("head_dim", *head_dim);
  const auto hidden = top.positive_integer("hidden_size");
  const auto heads = top.positive_integer("num_attention_heads");
  if (!hidden || !heads) fail_field("head_dim", "head_dim, or hidden_size and num_attention_heads (missing)");
  return at_most_max("hidden_size / num_attention_heads", *hidden / *heads);
}

// The scaling object: transformers 5 writes rope_parameters (holding rope_theta too), older configs
// rope_scaling. Returns the key used, or an empty name when there is none.
std::string scaling_key(const json& config) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    if (!it->is_object()) fail_field(key, "an object or null, got " + shown(*it));
    return key;
  }
  return {};
}

void parse_yarn(const JsonFields& scaling, RopeConfig& rope) {
  const auto original = scaling.positive_integer("original_max_position_embeddings");
  rope.original_max_position_embeddings = original.value_or(rope.max_position_embeddings);
  if (rope.original_max_position_embeddings == 0) {
    fail_field("max_position_embeddings",
               "a positive integer (yarn needs it or " + scaling.name("original_max_position_embeddings") + ")");
  }
  // Post-2025 transformers: an explicit factor wins; without one, the context ratio stands in.
  if (!scaling.find("factor") && original && rope.max_position_embeddings > 0) {
    rope.factor = static_cast<double>(rope.max_position_embeddings) / static_cast<double>(*original);
  } else {
    rope.factor = scaling.required_number_at_least("factor", 1.0);
  }
  // HF: `beta_fast or 32`, so 0 also means the default.
  const double beta_fast = scaling.number("beta_fast").value_or(0.0);
  const double beta_slow = scaling.number("beta_slow").value_or(0.0);
  rope.beta_fast = beta_fast != 0.0 ? beta_fast : 32.0;
  rope.beta_slow = beta_slow != 0.0 ? beta_slow : 1.0;
  rope.mscale = scaling.number("mscale");
  rope.mscale_all_dim = scaling.number("mscale_all_dim");
  rope.truncate = scaling.boolean("truncate").value_or(true);
  rope.attention_factor_override = scaling.positive_number("attention_factor");
}

void parse_llama3(const JsonFields& scaling, RopeConfig& rope) {
  rope.factor = scaling.required_number_at_least("factor", 1.0);
  const auto low = scaling.positive_number("low_freq_factor");
  const auto high = scaling.positive_number("high_freq_factor");
  const auto original = scaling.positive_integer("original_max_position_embeddings");
  if (!low) fail_field(scaling.name("low_freq_factor"), "a number > 0 (missing)");
  if (!high) fail_field(scaling.name("high_freq_factor"), "a number > 0 (missing)");
  if (!original) fail_field(scaling.name("original_max_position_embeddings"), "a positive integer (missing)");
  rope.low_freq_factor = *low;
  rope.high_freq_factor = *high;
  rope.original_max_position_embeddings = *original;
}

void parse_longrope(const JsonFields& top, const JsonFields& scaling, RopeConfig& rope) {
  const auto pairs = static_cast<std::size_t>(rope.rotary_dim / 2);
  rope.short_factor = scaling.positive_numbers("short_factor", pairs, kPairsWhat);
  rope.long_factor = scaling.positive_numbers("long_factor", pairs, kPairsWhat);
  // Phi-3 keeps original_max_position_embeddings at the top level; transformers 5 moves it inside.
  auto original = scaling.positive_integer("original_max_position_embeddings");
  if (!original) original = top.positive_integer("original_max_position_embeddings");
  rope.original_max_position_embeddings = original.value_or(rope.max_position_embeddings);
  if (rope.original_max_position_embeddings == 0) {
    fail_field("max_position_embeddings", "a positive integer (longrope needs it or original_max_position_embeddings)");
  }
  if (scaling.find("factor")) {
    rope.factor = scaling.number_at_least("factor", 1.0, 1.0);
  } else {
    const auto max_positions = static_cast<double>(std::max(rope.max_position_embeddings, std::int64_t{1}));
    rope.factor = max_positions / static_cast<double>(rope.original_max_position_embeddings);
  }
  rope.attention_factor_override = scaling.positive_number("attention_factor");
  rope.start_tokens = scaling.integer_at_least("start_token", 0).value_or(0);
}

}  // namespace

std::string_view rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::standard: return "default";
    case RopeType::linear: return "linear";
    case RopeType::dynamic: return "dynamic";
    case RopeType::ntk: return "ntk";
    case RopeType::yarn: return "yarn";
    case RopeType::llama3: return "llama3";
    case RopeType::longrope: return "longrope";
  }
  return "unknown";
}

RopeConfig RopeConfig::standard_rope(int head_dim, double theta) {
  RopeConfig rope;
  rope.head_dim = head_dim;
  rope.rotary_dim = head_dim;
  rope.theta = theta;
  rope.validate();
  return rope;
}

RopeConfig RopeConfig::from_hf_json(const json& config) {
  if (!config.is_object()) fail_field("config", "a JSON object, got " + shown(config));
  const JsonFields top(config, "");
  const std::string key = scaling_key(config);
  const json empty = json::object();
  const JsonFields scaling(key.empty() ? empty : config.at(key), key.empty() ? "rope_scaling" : key);

  RopeConfig rope;
  rope.type = parse_rope_type(scaling);
  rope.head_dim = parse_head_dim(top);
  const JsonFields& partial_source = scaling.find("partial_rotary_factor") ? scaling : top;
  const double partial = partial_source.positive_number("partial_rotary_factor").value_or(1.0);
  if (partial > 1.0) fail_field(partial_source.name("partial_rotary_factor"), "a number in (0, 1]");
  rope.rotary_dim = static_cast<int>(rope.head_dim * partial);
  if (rope.rotary_dim < 2 || rope.rotary_dim % 2 != 0) {
    fail_field(
        partial_source.name("partial_rotary_factor"),
        "int(head_dim * partial_rotary_factor) to be an even number >= 2, got " + std::to_string(rope.rotary_dim));
  }
  const JsonFields& theta_source = scaling.find("rope_theta") ? scaling : top;
  rope.theta = theta_source.number("rope_theta").value_or(10000.0);
  if (!(rope.theta > 1.0)) fail_field(theta_source.name("rope_theta"), "a number > 1");
  rope.max_position_embeddings = top.positive_integer("max_position_embeddings").value_or(0);

  switch (rope.type) {
    case RopeType::standard: break;
    case RopeType::linear:
    case RopeType::ntk: rope.factor = scaling.required_number_at_least("factor", 1.0); break;
    case RopeType::dynamic:
      rope.factor = scaling.required_number_at_least("factor", 1.0);
      if (rope.max_position_embeddings == 0)
        fail_field("max_position_embeddings", "a positive integer (dynamic needs it)");
      break;
    case RopeType::yarn: parse_yarn(scaling, rope); break;
    case RopeType::llama3: parse_llama3(scaling, rope); break;
    case RopeType::longrope: parse_longrope(top, scaling, rope); break;
  }
  rope.validate();
  return rope;
}

void RopeConfig::validate() const {
  if (head_dim < 2) fail_field("head_dim", "an integer >= 2, got " + std::to_string(head_dim));
  if (rotary_dim < 2 || rotary_dim % 2 != 0 || rotary_dim > head_dim) {
    fail_field("rotary_dim", "an even number in [2, head_dim], got " + std::to_string(rotary_dim));
  }
  if (!(theta > 1.0)) fail_field("rope_theta", "a number > 1");
  if (!(factor >= 1.0) && type != RopeType::longrope) fail_field("rope_scaling.factor", "a number >= 1");
  if (type == RopeType::dynamic && max_position_embeddings < 1) {
    fail_field("max_position_embeddings", "a positive integer (dynamic needs it)");
  }
  const bool needs_original = type == RopeType::yarn || type == RopeType::llama3 || type == RopeType::longrope;
  if (needs_original && original_max_position_embeddings < 1) {
    fail_field("rope_scaling.original_max_position_embeddings", "a positive integer");
  }
  if (type == RopeType::yarn && !(beta_slow > 0 && beta_fast >= beta_slow)) {
    fail_field("rope_scaling.beta_fast", "beta_fast >= beta_slow > 0");
  }
  if (type == RopeType::llama3 && !(low_freq_factor > 0 && high_freq_factor > low_freq_factor)) {
    fail_field("rope_scaling.high_freq_factor", "a number > low_freq_factor > 0");
  }
  if (type == RopeType::longrope) {
    const auto pairs = static_cast<std::size_t>(rotary_dim / 2);
    if (short_factor.size() != pairs) fail_field("rope_scaling.short_factor", std::to_string(pairs) + " entries");
    if (long_factor.size() != pairs) fail_field("rope_scaling.long_factor", std::to_string(pairs) + " entries");
    if (start_tokens < 0) fail_field("rope_scaling.start_token", "a number >= 0");
  }
}

double RopeConfig::attention_factor() const {
  if (attention_factor_override && (type == RopeType::yarn || type == RopeType::longrope)) {
    return *attention_factor_override;
  }
  if (type == RopeType::yarn) {
    // HF: `if mscale and mscale_all_dim` -- both present and non-zero, else the plain g(s, 1).
    if (mscale.value_or(0.0) != 0.0 && mscale_all_dim.value_or(0.0) != 0.0) {
      return rope_math::yarn_mscale(factor, *mscale) / rope_math::yarn_mscale(factor, *mscale_all_dim);
    }
    return rope_math::yarn_mscale(factor, 1.0);
  }
  if (type == RopeType::longrope) {
    return rope_math::longrope_attention_factor(factor, static_cast<double>(original_max_position_embeddings));
  }
  return 1.0;
}

YarnRange RopeConfig::yarn_range() const {
  const auto original = static_cast<double>(original_max_position_embeddings);
  double low = rope_math::yarn_correction_dim(beta_fast, rotary_dim, theta, original);
  double high = rope_math::yarn_correction_dim(beta_slow, rotary_dim, theta, original);
  if (truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  return {std::max(low, 0.0), std::min(high, static_cast<double>(rotary_dim - 1))};
}

std::vector<double> RopeConfig::inv_freq(std::int64_t seq_len) const {
  const int pairs = rotary_dim / 2;
  double base = theta;
  if (type == RopeType::ntk) base = rope_math::ntk_theta(theta, factor, rotary_dim);
  if (type == RopeType::dynamic) {
    base = rope_math::dynamic_ntk_theta(theta, factor, seq_len, max_position_embeddings, rotary_dim);
  }
  const YarnRange range = type == RopeType::yarn ? yarn_range() : YarnRange{};
  const std::vector<double>& ext = seq_len > original_max_position_embeddings ? long_factor : short_factor;

  std::vector<double> out(pairs);
  for (int i = 0; i < pairs; ++i) {
    const double inv = rope_math::default_inv_freq(i, rotary_dim, base);
    switch (type) {
      case RopeType::standard:
      case RopeType::dynamic:
      case RopeType::ntk: out[i] = inv; break;
      case RopeType::linear: out[i] = inv / factor; break;
      case RopeType::yarn:
        out[i] = rope_math::yarn_inv_freq(inv, factor, rope_math::yarn_ramp(i, range.low, range.high));
        break;
      case RopeType::llama3:
        out[i] = rope_math::llama3_inv_freq(inv, factor, low_freq_factor, high_freq_factor,
                                            static_cast<double>(original_max_position_embeddings));
        break;
      case RopeType::longrope: out[i] = rope_math::longrope_inv_freq(i, rotary_dim, theta, ext[i]); break;
    }
  }
  return out;
}

RopeFrequencies RopeConfig::frequencies(std::int64_t seq_len) const {
  RopeFrequencies freqs;
  freqs.rotary_dim = rotary_dim;
  freqs.inv_freq = inv_freq(seq_len);
  freqs.attention_factor = attention_factor();
  if (type == RopeType::longrope && start_tokens > 0) {
    freqs.start_tokens = start_tokens;
    for (int i = 0; i < rotary_dim / 2; ++i) {
      freqs.unscaled_inv_freq.push_back(rope_math::default_inv_freq(i, rotary_dim, theta));
    }
  }
  return freqs;
}

std::size_t RopeTable::rows() const { return rotary_dim == 0 ? 0 : cos.size() / (rotary_dim / 2); }

RopeTable make_rope_table(const RopeFrequencies& freqs, std::span<const std::int64_t> positions) {
  const int pairs = freqs.rotary_dim / 2;
  if (freqs.inv_freq.size() != static_cast<std::size_t>(pairs)) {
    throw std::invalid_argument("make_rope_table: inv_freq has " + std::to_string(freqs.inv_freq.size()) +
                                " entries, expected rotary_dim/2 = " + std::to_string(pairs));
  }
  RopeTable table;
  table.rotary_dim = freqs.rotary_dim;
  table.cos.resize(positions.size() * pairs);
  table.sin.resize(positions.size() * pairs);
  for (std::size_t t = 0; t < positions.size(); ++t) {
    const bool start_token = positions[t] >= 0 && positions[t] < freqs.start_tokens;
    const std::vector<double>& inv = start_token ? freqs.unscaled_inv_freq : freqs.inv_freq;
    const double magnitude = start_token ? 1.0 : freqs.attention_factor;
    for (int i = 0; i < pairs; ++i) {
      const double angle = rope_math::rope_angle(positions[t], inv[i]);
      table.cos[t * pairs + i] = static_cast<float>(std::cos(angle) * magnitude);
      table.sin[t * pairs + i] = static_cast<float>(std::sin(angle) * magnitude);
    }
  }
  return table;
}

void apply_rope(float* x, int heads, int tokens, int head_dim, const RopeTable& table, RopeLayout layout) {
  if (heads < 0 || tokens < 0) throw std::invalid_argument("apply_rope: heads and tokens must be >= 0");
  if (table.rotary_dim > head_dim) {
    throw std::invalid_argument("apply_rope: rotary_dim " + std::to_string(table.rotary_dim) + " exceeds head_dim " +
                                std::to_string(head_dim));
  }
  if (table.rows() < static_cast<std::size_t>(tokens)) {
    throw std::invalid_argument("apply_rope: table has " + std::to_string(table.rows()) + " rows for " +
                                std::to_string(tokens) + " tokens");
  }
  const int pairs = table.rotary_dim / 2;
  for (int h = 0; h < heads; ++h) {
    for (int t = 0; t < tokens; ++t) {
      float* row = x + (static_cast<std::size_t>(h) * tokens + t) * head_dim;
      const float* cos_row = table.cos_row(t);
      const float* sin_row = table.sin_row(t);
      for (int i = 0; i < pairs; ++i) {
        const rope_math::PairIndex pair = rope_math::pair_index(layout, i, table.rotary_dim);
        rope_math::rotate_pair(row[pair.first], row[pair.second], cos_row[i], sin_row[i]);
      }
    }
  }
}

void apply_rope(float* x, int heads, int tokens, int head_dim, const RopeFrequencies& freqs,
                std::span<const std::int64_t> positions, RopeLayout layout) {
  if (positions.size() != static_cast<std::size_t>(tokens)) {
    throw std::invalid_argument("apply_rope: " + std::to_string(positions.size()) + " positions for " +
                                std::to_string(tokens) + " tokens");
  }
  apply_rope(x, heads, tokens, head_dim, make_rope_table(freqs, positions), layout);
}

void SelfExtendParams::validate() const {
  if (group < 1)
    throw std::invalid_argument("self_extend.group: expected an integer >= 1, got " + std::to_string(group));
  if (window < 1) {
    throw std::invalid_argument("self_extend.window: expected an integer >= 1, got " + std::to_string(window));
  }
}

PositionPair self_extend_positions(std::int64_t query, std::int64_t key, const SelfExtendParams& params) {
  params.validate();
  if (key < 0 || key > query) {
    throw std::invalid_argument("self_extend_positions: key " + std::to_string(key) + " outside [0, query " +
                                std::to_string(query) + "]");
  }
  return rope_math::self_extend_positions(query, key, params.window, params.group);
}

std::vector<PositionPair> self_extend_key_positions(std::int64_t query, const SelfExtendParams& params) {
  params.validate();
  if (query < 0) throw std::invalid_argument("self_extend_key_positions: query must be >= 0");
  std::vector<PositionPair> out(static_cast<std::size_t>(query + 1));
  for (std::int64_t k = 0; k <= query; ++k) {
    out[k] = rope_math::self_extend_positions(query, k, params.window, params.group);
  }
  return out;
}

std::vector<std::int64_t> hip_streaming_positions(std::int64_t num_sinks, std::int64_t num_selected,
                                                  std::int64_t num_window, std::int64_t end) {
  if (num_sinks < 0 || num_selected < 0 || num_window < 0) {
    throw std::invalid_argument("hip_streaming_positions: counts must be >= 0");
  }
  const std::int64_t total = num_sinks + num_selected + num_window;
  std::vector<std::int64_t> out(static_cast<std::size_t>(total));
  for (std::int64_t slot = 0; slot < total; ++slot) {
    out[slot] = rope_math::hip_streaming_key_position(slot, total, end);
  }
  return out;
}

}  // namespace ctxbench::kernels

namespace ctxbench::kernels {

std::int64_t hip_prune_query_position(HipPrunePositions mode, std::int64_t query, std::int64_t pooled_first,
                                      const HipScanGeometry& geometry) {
  switch (mode) {
    case HipPrunePositions::real: return query;
    case HipPrunePositions::relative:
      return rope_math::hip_scan_query_position(HipScanPositions::relative, query, geometry.num_chunks, geometry.window,
                                                geometry.first_chunk);
    case HipPrunePositions::chunk_indexed:
      return rope_math::hip_scan_query_position(HipScanPositions::chunk_indexed, pooled_first, geometry.num_chunks,
                                                geometry.window, geometry.first_chunk);
  }
  return query;
}

std::int64_t hip_prune_key_position(HipPrunePositions mode, std::int64_t token, std::int64_t chunk_index,
                                    bool right_half) {
  switch (mode) {
    case HipPrunePositions::real: return token;
    case HipPrunePositions::relative:
      return rope_math::hip_scan_key_position(HipScanPositions::relative, chunk_index, right_half);
    case HipPrunePositions::chunk_indexed:
      return rope_math::hip_scan_key_position(HipScanPositions::chunk_indexed, chunk_index, right_half);
  }
  return token;
}

std::vector<std::int64_t> hip_chunk_indexed_positions(std::span<const KeyRange> chunks) {
  std::vector<std::int64_t> out;
  for (std::size_t j = 0; j < chunks.size(); ++j) {
    for (int t = chunks[j].begin; t < chunks[j].end; ++t) {
      out.push_back(hip_prune_key_position(HipPrunePositions::chunk_indexed, t, static_cast<std::int64_t>(j), false));
    }
  }
  return out;
}

std::vector<std::int64_t> hip_streaming_key_positions(std::span<const KeyRange> attended, std::int64_t query) {
  std::int64_t total = 0;
  std::int64_t previous_end = 0;
  for (const KeyRange& r : attended) {
    if (r.begin < previous_end || r.end < r.begin || r.end > query + 1) {
      throw std::invalid_argument(
          "hip_streaming_key_positions: ranges must be sorted, disjoint and end at or before "
          "the query " +
          std::to_string(query) + ", got [" + std::to_string(r.begin) + ", " + std::to_string(r.end) + ")");
    }
    previous_end = r.end;
    total += r.end - r.begin;
  }
  std::vector<std::int64_t> out(static_cast<std::size_t>(total));
  for (std::int64_t slot = 0; slot < total; ++slot) {
    out[slot] = rope_math::hip_streaming_key_position(slot, total, query);
  }
  return out;
}

RopeRotator::RopeRotator(RopeFrequencies freqs, RopeLayout layout)
    : freqs_(std::move(freqs)), layout_(layout), pairs_(freqs_.rotary_dim / 2) {
  if (freqs_.inv_freq.size() != static_cast<std::size_t>(pairs_)) {
    throw std::invalid_argument("RopeRotator: inv_freq has " + std::to_string(freqs_.inv_freq.size()) +
                                " entries, expected rotary_dim/2 = " + std::to_string(pairs_));
  }
  fill_rows(fine_cos_, fine_sin_, 0, kFine, 1, freqs_.inv_freq);
  if (freqs_.start_tokens > 0) {
    std::vector<std::int64_t> positions(static_cast<std::size_t>(freqs_.start_tokens));
    for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<std::int64_t>(i);
    start_ = make_rope_table(freqs_, positions);
  }
  reserve(kFine);
}

void RopeRotator::fill_rows(std::vector<double>& cos, std::vector<double>& sin, std::int64_t first, std::int64_t count,
                            std::int64_t stride, const std::vector<double>& inv) const {
  for (std::int64_t r = first; r < first + count; ++r) {
    for (int i = 0; i < pairs_; ++i) {
      const double angle = rope_math::rope_angle(r * stride, inv[i]);
      cos.push_back(std::cos(angle));
      sin.push_back(std::sin(angle));
    }
  }
}

void RopeRotator::reserve(std::int64_t positions) {
  const auto rows = static_cast<std::size_t>((std::max<std::int64_t>(positions, 1) + kFine - 1) / kFine);
  if (rows <= coarse_rows_) return;
  fill_rows(coarse_cos_, coarse_sin_, static_cast<std::int64_t>(coarse_rows_),
            static_cast<std::int64_t>(rows - coarse_rows_), kFine, freqs_.inv_freq);
  coarse_rows_ = rows;
}

void RopeRotator::rotate_rows(float* rows, int heads, int n, int dim, std::int64_t first) {
  reserve(first + n);
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < n; ++i) rotate(rows + (static_cast<std::size_t>(h) * n + i) * dim, first + i);
  }
}

void RopeRotator::rotate(float* x, std::int64_t position) const {
  if (position < 0 || position >= capacity()) {
    throw std::out_of_range("RopeRotator: position " + std::to_string(position) + " outside [0, " +
                            std::to_string(capacity()) + ")");
  }
  if (position < freqs_.start_tokens) {
    for (int i = 0; i < pairs_; ++i) {
      const rope_math::PairIndex pair = rope_math::pair_index(layout_, i, freqs_.rotary_dim);
      rope_math::rotate_pair(x[pair.first], x[pair.second], start_.cos_row(position)[i], start_.sin_row(position)[i]);
    }
    return;
  }
  const std::size_t hi = static_cast<std::size_t>(position / kFine) * pairs_;
  const std::size_t lo = static_cast<std::size_t>(position % kFine) * pairs_;
  for (int i = 0; i < pairs_; ++i) {
    const double c = coarse_cos_[hi + i] * fine_cos_[lo + i] - coarse_sin_[hi + i] * fine_sin_[lo + i];
    const double s = coarse_sin_[hi + i] * fine_cos_[lo + i] + coarse_cos_[hi + i] * fine_sin_[lo + i];
    const rope_math::PairIndex pair = rope_math::pair_index(layout_, i, freqs_.rotary_dim);
    rope_math::rotate_pair(x[pair.first], x[pair.second], static_cast<float>(c * freqs_.attention_factor),
                           static_cast<float>(s * freqs_.attention_factor));
  }
}

}  // namespace ctxbench::kernels
