#include "model/llama_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/params.h"
#include "core/timer.h"
#include "kernels/thread_pool.h"
#include "model/windowed_session.h"

namespace ctxbench::model {

namespace {

void add_bias(float* y, int n, const std::vector<float>& bias) {
  if (bias.empty()) return;
  const int d = static_cast<int>(bias.size());
  for (int t = 0; t < n; ++t) {
    float* row = y + static_cast<std::size_t>(t) * d;
    for (int i = 0; i < d; ++i) row[i] += bias[i];
  }
}

// rows [n][heads * dim] <-> heads [heads][n][dim], the engines' layout.
void rows_to_heads(const float* rows, int n, int heads, int dim, float* out) {
  for (int h = 0; h < heads; ++h) {
    for (int t = 0; t < n; ++t) {
      const float* src = rows + (static_cast<std::size_t>(t) * heads + h) * dim;
      std::copy(src, src + dim, out + (static_cast<std::size_t>(h) * n + t) * dim);
    }
  }
}

void heads_to_rows(const float* in, int n, int heads, int dim, float* rows) {
  for (int h = 0; h < heads; ++h) {
    for (int t = 0; t < n; ++t) {
      const float* src = in + (static_cast<std::size_t>(h) * n + t) * dim;
      std::copy(src, src + dim, rows + (static_cast<std::size_t>(t) * heads + h) * dim);
    }
  }
}

// gate = silu(gate) * up
void swiglu(float* gate, const float* up, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

std::string layer_name(int layer, const char* part) { return fmt::format("model.layers.{}.{}", layer, part); }

WeightMatrix rows_of(const WeightMatrix& w, int first, int count) {
  const std::size_t offset = static_cast<std::size_t>(first) * w.cols * kernels::dtype_bytes(w.dtype);
  return {w.data + offset, w.dtype, count, w.cols};
}

}  // namespace

void rms_norm(const float* x, int n, int d, const float* weight, double eps, float* out) {
  for (int t = 0; t < n; ++t) {
    const float* row = x + static_cast<std::size_t>(t) * d;
    double squares = 0;
    for (int i = 0; i < d; ++i) squares += static_cast<double>(row[i]) * row[i];
    const auto inv = static_cast<float>(1.0 / std::sqrt(squares / d + eps));
    float* dst = out + static_cast<std::size_t>(t) * d;
    for (int i = 0; i < d; ++i) dst[i] = weight[i] * (row[i] * inv);
  }
}

LlamaModel::LlamaModel(const std::string& dir, const nlohmann::json& rope_scaling, int threads)
    : dir_(dir), config_(LlamaConfig::from_dir(dir, rope_scaling)), threads_(kernels::resolve_threads(threads)) {
  store_ = std::make_unique<WeightStore>(dir);
  const LlamaConfig& c = config_;
  const int q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  embed_ = matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  head_ = c.tie_word_embeddings ? embed_ : matrix("lm_head.weight", c.vocab_size, c.hidden_size);
  final_norm_ = vector("model.norm.weight", c.hidden_size);
  const bool qkv_bias = c.attention_bias || c.model_type == "qwen2";
  const bool o_bias = c.attention_bias && c.model_type != "qwen2";
  for (int i = 0; i < c.num_layers; ++i) {
    Layer l;
    l.input_norm = vector(layer_name(i, "input_layernorm.weight"), c.hidden_size);
    l.post_norm = vector(layer_name(i, "post_attention_layernorm.weight"), c.hidden_size);
    if (c.fused_projections()) {
      load_fused(i, l);
    } else {
      l.q = matrix(layer_name(i, "self_attn.q_proj.weight"), q_dim, c.hidden_size);
      l.k = matrix(layer_name(i, "self_attn.k_proj.weight"), kv_dim, c.hidden_size);
      l.v = matrix(layer_name(i, "self_attn.v_proj.weight"), kv_dim, c.hidden_size);
      l.gate = matrix(layer_name(i, "mlp.gate_proj.weight"), c.intermediate_size, c.hidden_size);
      l.up = matrix(layer_name(i, "mlp.up_proj.weight"), c.intermediate_size, c.hidden_size);
      l.q_bias = vector(layer_name(i, "self_attn.q_proj.bias"), q_dim, qkv_bias);
      l.k_bias = vector(layer_name(i, "self_attn.k_proj.bias"), kv_dim, qkv_bias);
      l.v_bias = vector(layer_name(i, "self_attn.v_proj.bias"), kv_dim, qkv_bias);
      l.o_bias = vector(layer_name(i, "self_attn.o_proj.bias"), c.hidden_size, o_bias);
    }
    l.o = matrix(layer_name(i, "self_attn.o_proj.weight"), c.hidden_size, q_dim);
    l.down = matrix(layer_name(i, "mlp.down_proj.weight"), c.hidden_size, c.intermediate_size);
    layers_.push_back(std::move(l));
  }
}

// Phi-3: qkv_proj holds the q, k and v rows one after another, gate_up_proj the gate rows then the up rows
// (HF splits them the same way), so each part is a view of consecutive rows. Phi-3 has no biases.
void LlamaModel::load_fused(int layer, Layer& l) const {
  const LlamaConfig& c = config_;
  const int q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const WeightMatrix qkv = matrix(layer_name(layer, "self_attn.qkv_proj.weight"), q_dim + 2 * kv_dim, c.hidden_size);
  l.q = rows_of(qkv, 0, q_dim);
  l.k = rows_of(qkv, q_dim, kv_dim);
  l.v = rows_of(qkv, q_dim + kv_dim, kv_dim);
  const WeightMatrix gate_up =
      matrix(layer_name(layer, "mlp.gate_up_proj.weight"), 2 * c.intermediate_size, c.hidden_size);
  l.gate = rows_of(gate_up, 0, c.intermediate_size);
  l.up = rows_of(gate_up, c.intermediate_size, c.intermediate_size);
}

WeightMatrix LlamaModel::matrix(const std::string& name, int rows, int cols) const {
  const TensorView& t = store_->get(name, {rows, cols});
  return {t.data, t.dtype(), rows, cols};
}

std::vector<float> LlamaModel::vector(const std::string& name, int size, bool required) const {
  if (!required && !store_->find(name)) return {};
  const TensorView& t = store_->get(name, {size});
  std::vector<float> out(size);
  load_row({t.data, t.dtype(), 1, size}, 0, out.data());
  return out;
}

Sequence LlamaModel::start(const engines::Engine& engine, std::int64_t capacity, kernels::DType kv_dtype) const {
  if (capacity < 1) throw std::invalid_argument("a sequence needs room for at least one token");
  Sequence seq;
  seq.capacity = capacity;
  seq.rope = config_.rope.frequencies(capacity);
  seq.unrotated_kv = engine.wants_unrotated_kv();
  seq.reports_surprisal = engine.wants_token_surprisal();
  const auto windows = config_.sliding_windows;
  if (seq.unrotated_kv && std::any_of(windows.begin(), windows.end(), [&](auto w) { return w > 0 && capacity > w; })) {
    // The window is applied from rotated keys at their real positions, which such an engine never hands out.
    throw InputError(
        fmt::format("{}: sliding_window: the model attends through a sliding window, which the runtime "
                    "cannot apply over an engine that places keys at positions of its own; use a "
                    "context of at most the window or another engine",
                    dir_));
  }
  for (int i = 0; i < config_.num_layers; ++i) {
    const engines::HeadLayout layout{.heads_q = config_.num_heads,
                                     .heads_kv = config_.num_kv_heads,
                                     .head_dim = config_.head_dim,
                                     .kv_dtype = kv_dtype,
                                     .layer = i,
                                     .num_layers = config_.num_layers};
    auto session =
        seq.unrotated_kv ? engine.open_unrotated(layout, {seq.rope, kernels::RopeLayout::neox}) : engine.open(layout);
    const std::int64_t window = config_.sliding_windows[i];
    if (window > 0 && capacity > window)
      session = std::make_unique<WindowedSession>(std::move(session), layout, window);
    seq.sessions.push_back(std::move(session));
  }
  return seq;
}

void LlamaModel::forward(Sequence& seq, std::span<const int> tokens, engines::Phase phase,
                         std::vector<float>& hidden) const {
  const int n = static_cast<int>(tokens.size());
  if (n == 0) throw std::invalid_argument("forward needs at least one token");
  if (seq.length + n > seq.capacity) {
    throw std::invalid_argument(fmt::format("the sequence would hold {} tokens, more than the {} it was started for",
                                            seq.length + n, seq.capacity));
  }
  const int d = config_.hidden_size;
  seq.x.resize(static_cast<std::size_t>(n) * d);
  for (int t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size) {
      throw std::invalid_argument(
          fmt::format("token id {} is outside the vocabulary [0, {})", tokens[t], config_.vocab_size));
    }
    load_row(embed_, tokens[t], seq.x.data() + static_cast<std::size_t>(t) * d);
  }
  std::vector<std::int64_t> positions(n);
  std::iota(positions.begin(), positions.end(), seq.length);
  const kernels::RopeTable table = kernels::make_rope_table(seq.rope, positions);
  for (int i = 0; i < config_.num_layers; ++i) {
    attention_block(seq, layers_[i], i, n, phase, table);
    mlp_block(seq, layers_[i], n);
  }
  hidden.resize(static_cast<std::size_t>(n) * d);
  rms_norm(seq.x.data(), n, d, final_norm_.data(), config_.rms_norm_eps, hidden.data());
  if (seq.reports_surprisal) report_surprisal(seq, tokens, hidden);
  seq.length += n;
}

// Token t's surprisal comes from the logits of the row before it (for a call's first token, the previous call's
// last row). The sequence's first token has no prediction: it takes the largest surprisal of its call, as
// SirLLM's `_cal_selfinfo` gives the first token it scores. The logits are computed a few rows at a time, so a
// long prefill chunk never holds [chunk][vocab_size] floats.
void LlamaModel::report_surprisal(Sequence& seq, std::span<const int> tokens, const std::vector<float>& hidden) const {
  constexpr int kRows = 16;
  const int n = static_cast<int>(tokens.size()), d = config_.hidden_size, vocab = config_.vocab_size;
  const auto surprisal_under = [vocab](const float* logits, int token) {
    const float top = *std::max_element(logits, logits + vocab);
    double sum = 0;
    for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - top);
    return static_cast<float>(std::log(sum) + top - logits[token]);
  };
  std::vector<float> surprisal(n, 0.0f), logits_rows;
  const bool first_of_sequence = seq.next_logits.empty();
  if (!first_of_sequence) surprisal[0] = surprisal_under(seq.next_logits.data(), tokens[0]);
  for (int r0 = 0; r0 < n; r0 += kRows) {
    const int rows = std::min(kRows, n - r0);
    logits(hidden.data() + static_cast<std::size_t>(r0) * d, rows, logits_rows);
    for (int r = 0; r < rows; ++r) {
      const float* row = logits_rows.data() + static_cast<std::size_t>(r) * vocab;
      const int next = r0 + r + 1;
      if (next < n)
        surprisal[next] = surprisal_under(row, tokens[next]);
      else
        seq.next_logits.assign(row, row + vocab);
    }
  }
  if (first_of_sequence) surprisal[0] = *std::max_element(surprisal.begin(), surprisal.end());
  for (auto& session : seq.sessions) session->token_surprisal(surprisal.data(), n);
}

void LlamaModel::attention_block(Sequence& seq, const Layer& layer, int layer_index, int n, engines::Phase phase,
                                 const kernels::RopeTable& table) const {
  const LlamaConfig& c = config_;
  const int d = c.hidden_size, hd = c.head_dim;
  const std::size_t q_size = static_cast<std::size_t>(n) * c.num_heads * hd;
  const std::size_t kv_size = static_cast<std::size_t>(n) * c.num_kv_heads * hd;
  seq.h.resize(static_cast<std::size_t>(n) * d);
  seq.q.resize(q_size), seq.heads_q.resize(q_size), seq.attended.resize(q_size);
  seq.k.resize(kv_size), seq.v.resize(kv_size), seq.heads_k.resize(kv_size), seq.heads_v.resize(kv_size);

  rms_norm(seq.x.data(), n, d, layer.input_norm.data(), c.rms_norm_eps, seq.h.data());
  matmul(seq.h.data(), n, layer.q, seq.q.data(), false, threads_);
  matmul(seq.h.data(), n, layer.k, seq.k.data(), false, threads_);
  matmul(seq.h.data(), n, layer.v, seq.v.data(), false, threads_);
  add_bias(seq.q.data(), n, layer.q_bias);
  add_bias(seq.k.data(), n, layer.k_bias);
  add_bias(seq.v.data(), n, layer.v_bias);
  rows_to_heads(seq.q.data(), n, c.num_heads, hd, seq.heads_q.data());
  rows_to_heads(seq.k.data(), n, c.num_kv_heads, hd, seq.heads_k.data());
  rows_to_heads(seq.v.data(), n, c.num_kv_heads, hd, seq.heads_v.data());
  if (!seq.unrotated_kv) {
    kernels::apply_rope(seq.heads_q.data(), c.num_heads, n, hd, table, kernels::RopeLayout::neox);
    kernels::apply_rope(seq.heads_k.data(), c.num_kv_heads, n, hd, table, kernels::RopeLayout::neox);
  }

  Stopwatch watch;
  engines::Session& session = *seq.sessions[layer_index];
  session.append(seq.heads_k.data(), seq.heads_v.data(), n);
  session.attend(seq.heads_q.data(), n, phase, seq.attended.data());
  seq.attention_seconds += watch.seconds();

  heads_to_rows(seq.attended.data(), n, c.num_heads, hd, seq.q.data());
  matmul(seq.q.data(), n, layer.o, seq.x.data(), true, threads_);
  add_bias(seq.x.data(), n, layer.o_bias);
}

void LlamaModel::mlp_block(Sequence& seq, const Layer& layer, int n) const {
  const int d = config_.hidden_size;
  const std::size_t inner = static_cast<std::size_t>(n) * config_.intermediate_size;
  seq.gate.resize(inner), seq.up.resize(inner);
  rms_norm(seq.x.data(), n, d, layer.post_norm.data(), config_.rms_norm_eps, seq.h.data());
  matmul(seq.h.data(), n, layer.gate, seq.gate.data(), false, threads_);
  matmul(seq.h.data(), n, layer.up, seq.up.data(), false, threads_);
  swiglu(seq.gate.data(), seq.up.data(), inner);
  matmul(seq.gate.data(), n, layer.down, seq.x.data(), true, threads_);
}

void LlamaModel::logits(const float* hidden, int rows, std::vector<float>& out) const {
  out.resize(static_cast<std::size_t>(rows) * config_.vocab_size);
  matmul(hidden, rows, head_, out.data(), false, threads_);
}

}  // namespace ctxbench::model
