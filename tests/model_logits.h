// The bundled model's logits under an engine, for tests that check an engine inside the model against dense.
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "core/random.h"
#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/backend.h"
#include "model/llama_model.h"

namespace ctxbench::testing {

// BOS, then random printable bytes: `length` tokens of the bundled model.
inline std::vector<int> printable_tokens(int length, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<int> tokens = {256};
  while (static_cast<int>(tokens.size()) < length) tokens.push_back(static_cast<int>(rng.integer(32, 126)));
  return tokens;
}

// The logits at every position of `tokens` under `engine`: prefill in chunks of 100 tokens, then the last
// `decode_steps` tokens one decode step each.
inline std::vector<float> logits_under(const model::LlamaModel& m, const engines::Engine& engine,
                                       const std::vector<int>& tokens, int decode_steps) {
  const int length = static_cast<int>(tokens.size()), prefill = length - decode_steps;
  auto seq = m.start(engine, length, kernels::DType::f32);
  std::vector<float> all, hidden, out;
  for (int at = 0; at < length;) {
    const int size = at < prefill ? std::min(100, prefill - at) : 1;
    m.forward(seq, std::span(tokens).subspan(at, size), at < prefill ? engines::Phase::prefill : engines::Phase::decode,
              hidden);
    m.logits(hidden.data(), size, out);
    all.insert(all.end(), out.begin(), out.end());
    at += size;
  }
  return all;
}

}  // namespace ctxbench::testing
