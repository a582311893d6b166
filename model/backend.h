// The model runtime as text tasks on attention engines use it: every text task carries the model parameters
// below, so that they are part of the cell's key, and the harness and `serve` open a generator from them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/param_fields.h"
#include "core/params.h"
#include "core/text.h"
#include "engines/engine.h"

namespace ctxbench::model {

inline constexpr const char* kBundledModel = "datasets/models/ctxbench-retrieval";

// The "model" and "rope_scaling" parameters every text task (and attention_captured) declares: a task's
// parameter struct derives from ModelChoice and declares them with with_model_fields.
struct ModelChoice {
  std::string model = kBundledModel;
  Json rope_scaling = Json::object();

  // User-provided: aggregate initialization of a struct deriving from ModelChoice makes GCC 12 warn that the
  // Json member may be destroyed uninitialized (-Wmaybe-uninitialized, a false positive under -O3).
  ModelChoice() {}

  // The model parameters as open_generator and ModelParams::parse read them.
  Json json() const { return {{"model", model}, {"rope_scaling", rope_scaling}}; }
};

template <class S>
ParamFields<S> with_model_fields(ParamFields<S> fields) {
  return std::move(fields)
      .template field<std::string>(
          &S::model, "model",
          "HF-style model directory (config.json + safetensors); relative paths are from the source tree")
      .template field<Json>(&S::rope_scaling, "rope_scaling", "overrides the config's rope_scaling ({} keeps it)");
}

// The Llama runtime answering with `attention`. model_params: {"model": directory, "rope_scaling": object ({}
// keeps the config's own)}, plus the optional runtime parameters of ModelParams (model/llama_generator.h).
std::unique_ptr<Generator> open_generator(const Json& model_params, std::shared_ptr<const engines::Engine> attention);

// A model's tokenizer and what the runtime adds to a prompt, read from the directory's config.json (and
// tokenizer.json) alone: writing prompts (`ctxbench samples`) needs no weights.
struct PromptTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<int> bos_token_id;  // the runtime prepends it to every prompt

  // Tokens the runtime reads for `prompt` (its Generation::prompt_tokens): BOS, when the config has one, and
  // the prompt's own tokens.
  int prompt_tokens(std::string_view prompt) const;
};

// model_params as open_generator takes them.
PromptTokenizer open_tokenizer(const Json& model_params);

}  // namespace ctxbench::model
