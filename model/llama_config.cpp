#include "model/llama_config.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/json_fields.h"

namespace ctxbench::model {

using Json = nlohmann::json;

namespace {

// A positive integer small enough for every size the runtime computes with.
int positive_int(const JsonFields& f, std::string_view key, std::optional<int> fallback = std::nullopt) {
  const auto value = f.positive_integer(key);
  if (!value) {
    if (fallback) return *fallback;
    f.fail(key, "a positive integer (missing)");
  }
  if (*value > (1 << 30)) f.fail(key, "a positive integer <= 2^30, got " + std::to_string(*value));
  return static_cast<int>(*value);
}

Json with_rope_override(Json config, const Json& rope_scaling) {
  if (rope_scaling.is_null() || (rope_scaling.is_object() && rope_scaling.empty())) return config;
  if (!rope_scaling.is_object()) fail_field("rope_scaling", "an object, got " + rope_scaling.dump());
  const auto params = config.find("rope_parameters");
  if (params != config.end() && params->is_object()) {
    Json merged = Json::object();
    if (params->contains("rope_theta")) merged["rope_theta"] = (*params)["rope_theta"];
    merged.update(rope_scaling);
    *params = merged;
  } else {
    config["rope_scaling"] = rope_scaling;
  }
  return config;
}

// The window each layer attends through, as transformers builds it: Mistral and Phi-3 window every layer
// when sliding_window is set; Qwen2 only with use_sliding_window, then the layers that layer_types marks
// "sliding_attention", or else those from max_window_layers on.
std::vector<std::int64_t> sliding_windows(const JsonFields& f, const std::string& model_type, int layers) {
  std::vector<std::int64_t> windows(layers, 0);
  const bool qwen2 = model_type == "qwen2";
  const bool active =
      model_type == "mistral" || model_type == "phi3" || (qwen2 && f.boolean("use_sliding_window").value_or(false));
  if (!active || !f.find("sliding_window")) {
    if (qwen2 && active) f.fail("sliding_window", "a positive integer when use_sliding_window is true (missing)");
    return windows;
  }
  const std::int64_t window = *f.positive_integer("sliding_window");  // present: checked above
  const Json* types = f.find("layer_types");
  if (types && (!types->is_array() || static_cast<int>(types->size()) != layers)) {
    f.fail("layer_types", fmt::format("an array of {} entries (one per layer)", layers));
  }
  const auto first = qwen2 ? f.integer_at_least("max_window_layers", 0).value_or(0) : 0;
  for (int i = 0; i < layers; ++i) {
    if (!types) {
      windows[i] = i >= first ? window : 0;
      continue;
    }
    const Json& type = (*types)[i];
    if (type != "full_attention" && type != "sliding_attention") {
      f.fail(fmt::format("layer_types[{}]", i), "\"full_attention\" or \"sliding_attention\", got " + type.dump());
    }
    windows[i] = type == "sliding_attention" ? window : 0;
  }
  return windows;
}

LlamaConfig parse_config(const Json& raw, const Json& rope_scaling) {
  if (!raw.is_object()) fail_field("config", "a JSON object");
  const Json config = with_rope_override(raw, rope_scaling);
  const JsonFields f(config, "");
  LlamaConfig c;
  c.model_type = f.string("model_type").value_or("llama");
  if (c.model_type != "llama" && c.model_type != "qwen2" && c.model_type != "mistral" && c.model_type != "phi3") {
    f.fail("model_type", "llama, mistral, qwen2 or phi3 (Llama-architecture models), got \"" + c.model_type + "\"");
  }
  if (f.string("hidden_act").value_or("silu") != "silu") f.fail("hidden_act", "\"silu\" (SwiGLU)");
  if (f.boolean("mlp_bias").value_or(false)) f.fail("mlp_bias", "false (MLP biases are not supported)");
  c.hidden_size = positive_int(f, "hidden_size");
  c.intermediate_size = positive_int(f, "intermediate_size");
  c.num_layers = positive_int(f, "num_hidden_layers");
  c.num_heads = positive_int(f, "num_attention_heads");
  c.num_kv_heads = positive_int(f, "num_key_value_heads", c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    f.fail("num_key_value_heads",
           fmt::format("a divisor of num_attention_heads ({}), got {}", c.num_heads, c.num_kv_heads));
  }
  if (!config.contains("head_dim") && c.hidden_size % c.num_heads != 0) {
    f.fail("head_dim", "present, or hidden_size divisible by num_attention_heads");
  }
  c.head_dim = positive_int(f, "head_dim", c.hidden_size / c.num_heads);
  c.vocab_size = positive_int(f, "vocab_size");
  const auto eps = config.find("rms_norm_eps");
  if (eps != config.end()) {
    if (!eps->is_number() || !(eps->get<double>() > 0)) f.fail("rms_norm_eps", "a number > 0, got " + eps->dump());
    c.rms_norm_eps = eps->get<double>();
  }
  c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(false);
  c.attention_bias = f.boolean("attention_bias").value_or(false);
  const auto bos = f.ids("bos_token_id");
  if (bos.size() > 1) f.fail("bos_token_id", "one token id");
  if (!bos.empty()) c.bos_token_id = bos[0];
  c.eos_token_ids = f.ids("eos_token_id");
  for (const auto& [field, list] : {std::pair{"bos_token_id", bos}, std::pair{"eos_token_id", c.eos_token_ids}}) {
    for (const int id : list) {
      if (id >= c.vocab_size) f.fail(field, fmt::format("an id below vocab_size ({}), got {}", c.vocab_size, id));
    }
  }
  c.sliding_windows = sliding_windows(f, c.model_type, c.num_layers);
  c.rope = kernels::RopeConfig::from_hf_json(config);
  if (c.rope.head_dim != c.head_dim) f.fail("head_dim", "the same head size for RoPE and attention");
  return c;
}

}  // namespace

LlamaConfig LlamaConfig::from_json(const Json& raw, const std::string& where, const Json& rope_scaling) {
  try {
    return parse_config(raw, rope_scaling);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", where, e.what()));
  }
}

LlamaConfig LlamaConfig::from_dir(const std::string& dir, const Json& rope_scaling) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot be read (a model directory needs config.json)");
  Json config;
  try {
    config = Json::parse(in);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(path + ": not valid JSON: " + e.what());
  }
  return from_json(config, path, rope_scaling);
}

}  // namespace ctxbench::model
