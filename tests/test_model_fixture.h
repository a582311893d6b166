// Tiny random Llama models written by the tests themselves (config.json + safetensors), and a direct
// float64 transcription of the forward pass to check the runtime against.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/random.h"
#include "kernels/attention.h"
#include "kernels/rope.h"

namespace ctxbench::testing {

using nlohmann::json;

struct RawTensor {
  std::string dtype;  // "F32", "F16", "BF16", or anything else with raw bytes
  std::vector<std::int64_t> shape;
  std::string bytes;
};

// Writes a safetensors file: 8-byte header length, JSON header (padded to 8 bytes), data.
inline void write_safetensors(const std::string& path, const std::map<std::string, RawTensor>& tensors) {
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    header[name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t length = text.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << text << data;
}

// Encodes values in a dtype; `values` is replaced by what the file holds (the rounded values).
inline RawTensor encode_tensor(std::vector<double>& values, std::vector<std::int64_t> shape, kernels::DType dtype) {
  RawTensor t{std::string(dtype == kernels::DType::f32   ? "F32"
                          : dtype == kernels::DType::f16 ? "F16"
                                                         : "BF16"),
              std::move(shape),
              {}};
  for (double& v : values) {
    if (dtype == kernels::DType::f32) {
      const auto f = static_cast<float>(v);
      t.bytes.append(reinterpret_cast<const char*>(&f), 4);
      v = f;
    } else {
      const std::uint16_t bits = dtype == kernels::DType::f16 ? kernels::float_to_half(static_cast<float>(v))
                                                              : kernels::float_to_bf16(static_cast<float>(v));
      t.bytes.append(reinterpret_cast<const char*>(&bits), 2);
      v = dtype == kernels::DType::f16 ? kernels::half_to_float(bits) : kernels::bf16_to_float(bits);
    }
  }
  return t;
}

struct TinySpec {
  int hidden = 32;
  int inner = 48;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int head_dim = 8;
  int vocab = 258;  // bytes + BOS 256 + EOS 257
  bool tied = false;
  bool qwen2_biases = false;  // model_type qwen2: q/k/v biases, no attention_bias field
  bool llama_biases = false;  // attention_bias true: q/k/v/o biases
  kernels::DType dtype = kernels::DType::f32;
  json rope_scaling = nullptr;
  int max_positions = 64;
  json bos = 256;
  json eos = 257;
  // Output-head rows for these ids are zero, so that greedy decoding never picks them over bytes.
  std::vector<int> silent_ids = {256, 257};
};

// The weights as the file holds them, in float64, HF names -> values.
struct TinyModel {
  TinySpec spec;
  json config;
  std::map<std::string, std::vector<double>> w;
  const std::vector<double>& at(const std::string& name) const { return w.at(name); }
};

inline json tiny_config(const TinySpec& s) {
  json c = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", s.qwen2_biases ? "qwen2" : "llama"},
            {"hidden_size", s.hidden},
            {"intermediate_size", s.inner},
            {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads},
            {"num_key_value_heads", s.kv_heads},
            {"head_dim", s.head_dim},
            {"hidden_act", "silu"},
            {"vocab_size", s.vocab},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 10000.0},
            {"rope_scaling", s.rope_scaling},
            {"max_position_embeddings", s.max_positions},
            {"tie_word_embeddings", s.tied},
            {"bos_token_id", s.bos},
            {"eos_token_id", s.eos}};
  if (!s.qwen2_biases) c["attention_bias"] = s.llama_biases;
  return c;
}

// Random weights; returns the tensors to write and the values they hold.
inline std::map<std::string, RawTensor> tiny_tensors(TinyModel& m, std::uint64_t seed) {
  const TinySpec& s = m.spec;
  Rng rng(seed);
  std::map<std::string, RawTensor> out;
  const auto add = [&](const std::string& name, std::vector<std::int64_t> shape, double scale, double offset) {
    std::int64_t n = 1;
    for (const auto d : shape) n *= d;
    std::vector<double> values(n);
    for (double& v : values) v = offset + scale * rng.normal();
    out[name] = encode_tensor(values, shape, s.dtype);
    m.w[name] = values;
  };
  const int q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim, d = s.hidden;
  add("model.embed_tokens.weight", {s.vocab, d}, 1.0, 0.0);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {d}, 0.1, 1.0);
    add(p + "post_attention_layernorm.weight", {d}, 0.1, 1.0);
    add(p + "self_attn.q_proj.weight", {q, d}, 1.0 / std::sqrt(d), 0.0);
    add(p + "self_attn.k_proj.weight", {kv, d}, 1.0 / std::sqrt(d), 0.0);
    add(p + "self_attn.v_proj.weight", {kv, d}, 1.0 / std::sqrt(d), 0.0);
    add(p + "self_attn.o_proj.weight", {d, q}, 1.0 / std::sqrt(q), 0.0);
    if (s.qwen2_biases || s.llama_biases) {
      add(p + "self_attn.q_proj.bias", {q}, 0.5, 0.0);
      add(p + "self_attn.k_proj.bias", {kv}, 0.5, 0.0);
      add(p + "self_attn.v_proj.bias", {kv}, 0.5, 0.0);
    }
    if (s.llama_biases) add(p + "self_attn.o_proj.bias", {d}, 0.5, 0.0);
    add(p + "mlp.gate_proj.weight", {s.inner, d}, 1.0 / std::sqrt(d), 0.0);
    add(p + "mlp.up_proj.weight", {s.inner, d}, 1.0 / std::sqrt(d), 0.0);
    add(p + "mlp.down_proj.weight", {d, s.inner}, 1.0 / std::sqrt(s.inner), 0.0);
  }
  add("model.norm.weight", {d}, 0.1, 1.0);
  const std::string head = s.tied ? "model.embed_tokens.weight" : "lm_head.weight";
  if (!s.tied) add(head, {s.vocab, d}, 1.0 / std::sqrt(d), 0.0);
  // Silence the chosen ids in the head (and re-encode: zeros are exact in every dtype).
  for (const int id : s.silent_ids) {
    if (id >= s.vocab) continue;
    std::fill_n(m.w[head].begin() + static_cast<std::ptrdiff_t>(id) * d, d, 0.0);
  }
  out[head] = encode_tensor(m.w[head], {s.vocab, d}, s.dtype);
  return out;
}

// Writes dir/config.json and dir/model.safetensors.
inline TinyModel write_tiny_model(const std::string& dir, const TinySpec& spec, std::uint64_t seed) {
  TinyModel m{spec, tiny_config(spec), {}};
  const auto tensors = tiny_tensors(m, seed);
  std::ofstream(dir + "/config.json") << m.config.dump(2);
  write_safetensors(dir + "/model.safetensors", tensors);
  return m;
}

// ---- float64 forward pass ------------------------------------------------------------------------

// out[r] = sum_c w[r][c] x[c] (+ bias[r])
inline std::vector<double> ref_linear(const std::vector<double>& w, const std::vector<double>& x, int rows,
                                      const std::vector<double>* bias = nullptr) {
  const int cols = static_cast<int>(x.size());
  std::vector<double> out(rows, 0.0);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) out[r] += w[static_cast<std::size_t>(r) * cols + c] * x[c];
    if (bias) out[r] += (*bias)[r];
  }
  return out;
}

inline std::vector<double> ref_rms_norm(const std::vector<double>& x, const std::vector<double>& weight, double eps) {
  double squares = 0;
  for (const double v : x) squares += v * v;
  const double inv = 1.0 / std::sqrt(squares / static_cast<double>(x.size()) + eps);
  std::vector<double> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = weight[i] * x[i] * inv;
  return out;
}

// NeoX rotation of one head vector at `position`, pairs (i, i + rotary/2), magnitude included.
inline void ref_rope(double* x, std::int64_t position, const kernels::RopeFrequencies& f) {
  const int half = f.rotary_dim / 2;
  const bool start = position < f.start_tokens;
  const double magnitude = start ? 1.0 : f.attention_factor;
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * (start ? f.unscaled_inv_freq[i] : f.inv_freq[i]);
    const double a = x[i], b = x[i + half];
    x[i] = (a * std::cos(angle) - b * std::sin(angle)) * magnitude;
    x[i + half] = (a * std::sin(angle) + b * std::cos(angle)) * magnitude;
  }
}

// x (fp32, `dim` values) rotated by ref_rope into a new float64 vector.
inline std::vector<double> ref_rope_copy(const float* x, int dim, std::int64_t position,
                                         const kernels::RopeFrequencies& f) {
  std::vector<double> out(x, x + dim);
  ref_rope(out.data(), position, f);
  return out;
}

// Logits [tokens][vocab] of the whole sequence with causal attention, RoPE frequencies `f`.
inline std::vector<std::vector<double>> reference_logits(const TinyModel& m, const std::vector<int>& tokens,
                                                         const kernels::RopeFrequencies& f) {
  const TinySpec& s = m.spec;
  const int n = static_cast<int>(tokens.size()), d = s.hidden, hd = s.head_dim;
  const int group = s.heads / s.kv_heads;
  const double eps = 1e-5;
  std::vector<std::vector<double>> x(n);
  const auto& embed = m.at("model.embed_tokens.weight");
  for (int t = 0; t < n; ++t) x[t].assign(embed.begin() + tokens[t] * d, embed.begin() + (tokens[t] + 1) * d);
  const auto bias = [&](const std::string& name) { return m.w.count(name) ? &m.at(name) : nullptr; };
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const auto h = ref_rms_norm(x[t], m.at(p + "input_layernorm.weight"), eps);
      q[t] = ref_linear(m.at(p + "self_attn.q_proj.weight"), h, s.heads * hd, bias(p + "self_attn.q_proj.bias"));
      k[t] = ref_linear(m.at(p + "self_attn.k_proj.weight"), h, s.kv_heads * hd, bias(p + "self_attn.k_proj.bias"));
      v[t] = ref_linear(m.at(p + "self_attn.v_proj.weight"), h, s.kv_heads * hd, bias(p + "self_attn.v_proj.bias"));
      for (int head = 0; head < s.heads; ++head) ref_rope(q[t].data() + head * hd, t, f);
      for (int head = 0; head < s.kv_heads; ++head) ref_rope(k[t].data() + head * hd, t, f);
    }
    for (int t = 0; t < n; ++t) {
      std::vector<double> attended(s.heads * hd, 0.0);
      for (int head = 0; head < s.heads; ++head) {
        const int kvh = head / group;
        std::vector<double> scores(t + 1);
        double top = -1e300;
        for (int j = 0; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < hd; ++i) dot += q[t][head * hd + i] * k[j][kvh * hd + i];
          scores[j] = dot / std::sqrt(static_cast<double>(hd));
          top = std::max(top, scores[j]);
        }
        double sum = 0;
        for (double& sc : scores) sum += (sc = std::exp(sc - top));
        for (int j = 0; j <= t; ++j) {
          for (int i = 0; i < hd; ++i) attended[head * hd + i] += scores[j] / sum * v[j][kvh * hd + i];
        }
      }
      const auto o = ref_linear(m.at(p + "self_attn.o_proj.weight"), attended, d, bias(p + "self_attn.o_proj.bias"));
      for (int i = 0; i < d; ++i) x[t][i] += o[i];
    }
    for (int t = 0; t < n; ++t) {
      const auto h = ref_rms_norm(x[t], m.at(p + "post_attention_layernorm.weight"), eps);
      auto gate = ref_linear(m.at(p + "mlp.gate_proj.weight"), h, s.inner);
      const auto up = ref_linear(m.at(p + "mlp.up_proj.weight"), h, s.inner);
      for (int i = 0; i < s.inner; ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
      const auto down = ref_linear(m.at(p + "mlp.down_proj.weight"), gate, d);
      for (int i = 0; i < d; ++i) x[t][i] += down[i];
    }
  }
  const auto& head = m.at(s.tied ? "model.embed_tokens.weight" : "lm_head.weight");
  std::vector<std::vector<double>> logits(n);
  for (int t = 0; t < n; ++t) logits[t] = ref_linear(head, ref_rms_norm(x[t], m.at("model.norm.weight"), eps), s.vocab);
  return logits;
}

// max |a - b| / max |b| over every entry.
inline double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / scale;
}

}  // namespace ctxbench::testing
