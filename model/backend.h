// The model runtime as text tasks on attention engines use it: every text task carries the model parameters
// below, so that they are part of the cell's key, and the harness and `serve` open a generator from them.
#pragma once

#include <memory>

#include "core/params.h"
#include "core/text.h"
#include "engines/engine.h"

namespace ctxbench::model {

inline constexpr const char* kBundledModel = "datasets/models/ctxbench-retrieval";

// The "model" and "rope_scaling" parameters every text task declares.
inline ParamSchema model_param_specs() {
  return {
      {.name = "model",
       .type = ParamType::string,
       .default_value = kBundledModel,
       .help = "HF-style model directory (config.json + safetensors); relative paths are from the source tree"},
      {.name = "rope_scaling",
       .type = ParamType::object,
       .default_value = Json::object(),
       .help = "overrides the config's rope_scaling ({} keeps it)"},
  };
}

// The Llama runtime answering with `attention`. model_params: {"model": directory, "rope_scaling": object ({}
// keeps the config's own)}, plus the optional runtime parameters of ModelParams (model/llama_generator.h).
std::unique_ptr<Generator> open_generator(const Json& model_params, std::shared_ptr<const engines::Engine> attention);

}  // namespace ctxbench::model
