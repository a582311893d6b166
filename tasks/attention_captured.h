// Attention captured from a model: the queries, keys and values one layer of a real model computed over a
// prompt (after RoPE, as its attention saw them), and what dense attention gave for each query. The
// attention_captured task turns them into an attention-level problem.
#pragma once

#include <vector>

#include "model/llama_model.h"

namespace ctxbench::tasks {

struct CapturedLayer {
  int heads_q = 0, heads_kv = 0, head_dim = 0, tokens = 0;
  std::vector<float> q, out;  // [heads_q][tokens][head_dim]: every position's query and its dense output
  std::vector<float> k, v;    // [heads_kv][tokens][head_dim]
};

// Runs `tokens` through the model with dense attention (prefill chunks of 512) and records layer `layer`.
CapturedLayer capture_layer(const model::LlamaModel& llama, const std::vector<int>& tokens, int layer);

}  // namespace ctxbench::tasks
