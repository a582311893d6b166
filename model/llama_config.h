// The parts of an HF config.json that a Llama-family forward pass needs (Llama, Mistral, Qwen2, Phi-3),
// checked up front so that a bad field fails with its name before any weight is read. A field of these
// families that changes the forward pass is either supported or refused by name, never ignored.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kernels/rope.h"

namespace ctxbench::model {

struct LlamaConfig {
  std::string model_type = "llama";
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v/o biases required; without it, bias tensors are used when present
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;
  kernels::RopeConfig rope;  // Phi-3's partial_rotary_factor and LongRoPE included
  // Per layer: how many keys a query sees, itself included (HF's sliding_window); 0 means every earlier key.
  std::vector<std::int64_t> sliding_windows;

  // Phi-3 stores q/k/v as one qkv_proj and gate/up as one gate_up_proj.
  bool fused_projections() const { return model_type == "phi3"; }

  // `config` is the parsed config.json; `rope_scaling`, when a non-empty object, replaces its rope_scaling
  // (or is merged into transformers 5's rope_parameters, keeping rope_theta). Throws InputError
  // "<where>: <field>: expected ..." for missing or invalid fields.
  static LlamaConfig from_json(const nlohmann::json& config, const std::string& where,
                               const nlohmann::json& rope_scaling = nlohmann::json::object());
  // Reads dir/config.json.
  static LlamaConfig from_dir(const std::string& dir, const nlohmann::json& rope_scaling = nlohmann::json::object());
};

}  // namespace ctxbench::model
