#include "model/llama_config.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace ctxbench::model {

using Json = nlohmann::json;

namespace {

class Fields {
 public:
  Fields(const Json& config, const std::string& where) : config_(config), where_(where) {}

  [[noreturn]] void fail(const std::string& field, const std::string& expected) const {
    throw std::runtime_error(fmt::format("{}: {}: expected {}", where_, field, expected));
  }

  int positive_int(const std::string& field, std::optional<int> fallback = std::nullopt) const {
    const auto it = config_.find(field);
    if (it == config_.end() || it->is_null()) {
      if (fallback) return *fallback;
      fail(field, "a positive integer (missing)");
    }
    if (!it->is_number_integer() || it->get<long long>() < 1 || it->get<long long>() > (1ll << 30)) {
      fail(field, "a positive integer, got " + it->dump());
    }
    return it->get<int>();
  }

  std::string text(const std::string& field, const std::string& fallback) const {
    const auto it = config_.find(field);
    if (it == config_.end() || it->is_null()) return fallback;
    if (!it->is_string()) fail(field, "a string, got " + it->dump());
    return it->get<std::string>();
  }

  bool boolean(const std::string& field, bool fallback) const {
    const auto it = config_.find(field);
    if (it == config_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail(field, "true or false, got " + it->dump());
    return it->get<bool>();
  }

  // An id, a list of ids, or nothing.
  std::vector<int> ids(const std::string& field) const {
    const auto it = config_.find(field);
    if (it == config_.end() || it->is_null()) return {};
    const Json list = it->is_array() ? *it : Json::array({*it});
    std::vector<int> out;
    for (const Json& id : list) {
      if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > INT32_MAX)
        fail(field, "a token id or a list of ids, got " + it->dump());
      out.push_back(id.get<int>());
    }
    return out;
  }

 private:
  const Json& config_;
  std::string where_;
};

Json with_rope_override(Json config, const Json& rope_scaling) {
  if (rope_scaling.is_null() || (rope_scaling.is_object() && rope_scaling.empty())) return config;
  if (!rope_scaling.is_object())
    throw std::invalid_argument("rope_scaling: expected an object, got " + rope_scaling.dump());
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

}  // namespace

LlamaConfig LlamaConfig::from_json(const Json& raw, const std::string& where, const Json& rope_scaling) {
  if (!raw.is_object()) throw std::runtime_error(where + ": expected a JSON object");
  const Json config = with_rope_override(raw, rope_scaling);
  const Fields f(config, where);
  LlamaConfig c;
  c.model_type = f.text("model_type", "llama");
  if (c.model_type != "llama" && c.model_type != "qwen2" && c.model_type != "mistral") {
    f.fail("model_type", "llama, mistral or qwen2 (Llama-architecture models), got \"" + c.model_type + "\"");
  }
  if (f.text("hidden_act", "silu") != "silu") f.fail("hidden_act", "\"silu\" (SwiGLU)");
  if (f.boolean("mlp_bias", false)) f.fail("mlp_bias", "false (MLP biases are not supported)");
  if (f.boolean("use_sliding_window", false) ||
      (c.model_type == "mistral" && config.contains("sliding_window") && !config["sliding_window"].is_null())) {
    f.fail(c.model_type == "mistral" ? "sliding_window" : "use_sliding_window",
           "no sliding window (the runtime attends through the chosen engine only)");
  }
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_layers = f.positive_int("num_hidden_layers");
  c.num_heads = f.positive_int("num_attention_heads");
  c.num_kv_heads = f.positive_int("num_key_value_heads", c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    f.fail("num_key_value_heads",
           fmt::format("a divisor of num_attention_heads ({}), got {}", c.num_heads, c.num_kv_heads));
  }
  if (!config.contains("head_dim") && c.hidden_size % c.num_heads != 0) {
    f.fail("head_dim", "present, or hidden_size divisible by num_attention_heads");
  }
  c.head_dim = f.positive_int("head_dim", c.hidden_size / c.num_heads);
  c.vocab_size = f.positive_int("vocab_size");
  const auto eps = config.find("rms_norm_eps");
  if (eps != config.end()) {
    if (!eps->is_number() || !(eps->get<double>() > 0)) f.fail("rms_norm_eps", "a number > 0, got " + eps->dump());
    c.rms_norm_eps = eps->get<double>();
  }
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.attention_bias = f.boolean("attention_bias", false);
  const auto bos = f.ids("bos_token_id");
  if (bos.size() > 1) f.fail("bos_token_id", "one token id");
  if (!bos.empty()) c.bos_token_id = bos[0];
  c.eos_token_ids = f.ids("eos_token_id");
  for (const auto& [field, list] : {std::pair{"bos_token_id", bos}, std::pair{"eos_token_id", c.eos_token_ids}}) {
    for (const int id : list) {
      if (id >= c.vocab_size) f.fail(field, fmt::format("an id below vocab_size ({}), got {}", c.vocab_size, id));
    }
  }
  try {
    c.rope = kernels::RopeConfig::from_hf_json(config);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(fmt::format("{}: {}", where, e.what()));
  }
  if (c.rope.head_dim != c.head_dim) f.fail("head_dim", "the same head size for RoPE and attention");
  return c;
}

LlamaConfig LlamaConfig::from_dir(const std::string& dir, const Json& rope_scaling) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot be read (a model directory needs config.json)");
  Json config;
  try {
    config = Json::parse(in);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  return from_json(config, path, rope_scaling);
}

}  // namespace ctxbench::model
