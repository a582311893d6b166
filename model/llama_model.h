// The Llama-family forward pass on the CPU: embedding, RMSNorm, RoPE from the config (partial rotary
// included), grouped-query attention through an attention engine (one session per layer, which holds the KV
// cache) under the model's sliding window if it has one (model/windowed_session.h), SwiGLU MLP and a tied or untied
// output head; Qwen2-style q/k/v biases when the checkpoint has them; Phi-3's fused qkv_proj and gate_up_proj.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engines/engine.h"
#include "model/llama_config.h"
#include "model/matmul.h"
#include "model/safetensors.h"

namespace ctxbench::model {

// One sequence in flight: a session per layer and the RoPE frequencies, fixed for the sequence's final
// length so that every cached key was rotated the same way (dynamic NTK and LongRoPE choose by length).
struct Sequence {
  std::vector<std::unique_ptr<engines::Session>> sessions;
  kernels::RopeFrequencies rope;
  std::int64_t length = 0;         // tokens processed so far (the next token's position)
  std::int64_t capacity = 0;       // tokens the frequencies were chosen for
  bool unrotated_kv = false;       // the engine rotates queries and keys itself (Engine::wants_unrotated_kv)
  bool reports_surprisal = false;  // the engine scores tokens by their surprisal (Engine::wants_token_surprisal)
  std::vector<float> next_logits;  // with reports_surprisal: the last forward call's prediction of the next token
  double attention_seconds = 0;    // appending to and attending through the sessions
  // Scratch buffers reused across calls.
  std::vector<float> x, h, q, k, v, heads_q, heads_k, heads_v, attended, gate, up;
};

class LlamaModel {
 public:
  // Reads dir/config.json (rope_scaling overriding the config's unless empty) and maps the safetensors.
  // threads <= 0 uses every core.
  LlamaModel(const std::string& dir, const nlohmann::json& rope_scaling = nlohmann::json::object(), int threads = 0);

  const LlamaConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  const WeightStore& weights() const { return *store_; }

  // Opens a session per layer of `engine` (layout.layer tells the engine which layer it serves).
  Sequence start(const engines::Engine& engine, std::int64_t capacity, kernels::DType kv_dtype) const;

  // Runs `tokens` at the sequence's next positions; `hidden` receives their final-normed hidden states
  // [tokens][hidden_size]. Throws std::invalid_argument past the capacity or for ids outside the vocabulary.
  // For an engine that wants it, reports each token's surprisal to every layer's session afterwards.
  void forward(Sequence& seq, std::span<const int> tokens, engines::Phase phase, std::vector<float>& hidden) const;

  // Output-head logits [rows][vocab_size] of final-normed hidden rows.
  void logits(const float* hidden, int rows, std::vector<float>& out) const;

 private:
  struct Layer {
    std::vector<float> input_norm, post_norm;
    WeightMatrix q, k, v, o, gate, up, down;
    std::vector<float> q_bias, k_bias, v_bias, o_bias;  // empty when absent
  };

  WeightMatrix matrix(const std::string& name, int rows, int cols) const;
  void load_fused(int layer, Layer& l) const;
  std::vector<float> vector(const std::string& name, int size, bool required = true) const;
  void attention_block(Sequence& seq, const Layer& layer, int layer_index, int n, engines::Phase phase,
                       const kernels::RopeTable& table) const;
  void mlp_block(Sequence& seq, const Layer& layer, int n) const;
  void report_surprisal(Sequence& seq, std::span<const int> tokens, const std::vector<float>& hidden) const;

  std::string dir_;
  LlamaConfig config_;
  std::unique_ptr<WeightStore> store_;
  WeightMatrix embed_, head_;
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  int threads_;  // for the matrix products, on the kernels' shared pool
};

// x[n][d] -> out[n][d] = weight * x / sqrt(mean(x^2) + eps), in fp32 as HF's LlamaRMSNorm.
void rms_norm(const float* x, int n, int d, const float* weight, double eps, float* out);

}  // namespace ctxbench::model
