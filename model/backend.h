// The model runtime as text tasks on attention engines use it: every text task carries the model parameters
// below, so that they are part of the cell's key, and the harness and `serve` open a generator from them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/param_fields.h"
#include "core/params.h"
#include "core/text.h"
#include "engines/engine.h"
#include "model/prompt_template.h"

namespace ctxbench::model {

inline constexpr const char* kBundledModel = "datasets/models/ctxbench-retrieval";

// The "model", "rope_scaling" and "prompt_template" parameters every text task (and attention_captured)
// declares: a task's parameter struct derives from ModelChoice and declares them with with_model_fields.
struct ModelChoice {
  std::string model = kBundledModel;
  Json rope_scaling = Json::object();
  std::string prompt_template;  // "" none; else text with one {prompt} (model/prompt_template.h)

  // User-provided: aggregate initialization of a struct deriving from ModelChoice makes GCC 12 warn that the
  // Json member may be destroyed uninitialized (-Wmaybe-uninitialized, a false positive under -O3).
  ModelChoice() {}

  // The model parameters as open_generator and ModelParams::parse read them.
  Json json() const {
    Json out = {{"model", model}, {"rope_scaling", rope_scaling}};
    if (!prompt_template.empty()) out["prompt_template"] = prompt_template;
    return out;
  }
};

template <class S>
ParamFields<S> with_model_fields(ParamFields<S> fields) {
  return std::move(fields)
      .template field<std::string>(
          &S::model, "model",
          "HF-style model directory (config.json + safetensors); relative paths are from the source tree")
      .template field<Json>(&S::rope_scaling, "rope_scaling", "overrides the config's rope_scaling ({} keeps it)")
      .template field<std::string>(&S::prompt_template, "prompt_template",
                                   "wraps every prompt: text with one {prompt} and the model's special tokens "
                                   "written as their contents (\"\": none)",
                                   {.absent_by_default = true});
}

// The model parameters (model, rope_scaling, prompt_template when given) among a text task's resolved
// parameters, as open_generator and open_tokenizer take them.
Json model_params_of(const Json& task_params);

// The Llama runtime answering with `attention`. model_params: {"model": directory, "rope_scaling": object ({}
// keeps the config's own), "prompt_template": text (optional)}, plus the optional runtime parameters of
// ModelParams (model/llama_generator.h).
std::unique_ptr<Generator> open_generator(const Json& model_params, std::shared_ptr<const engines::Engine> attention);

// A model's tokenizer and what the runtime adds to a prompt, read from the directory's config.json (and
// tokenizer.json) alone: writing prompts (`ctxbench samples`) needs no weights.
struct PromptTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  PromptFrame frame;

  // The tokens the runtime reads for `prompt`: BOS, when the config has one, the prompt template's tokens
  // around the prompt's own.
  std::vector<int> prompt_ids(std::string_view prompt) const { return frame.ids(*tokenizer, prompt); }
};

// model_params as open_generator takes them.
PromptTokenizer open_tokenizer(const Json& model_params);

}  // namespace ctxbench::model
