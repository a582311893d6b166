// A model's sliding window (Mistral, Phi-3, Qwen2 with use_sliding_window) on top of any engine. The window
// belongs to the model, not to the method, so the runtime applies it as a mask over whatever the engine
// chose: the engine attends as usual, and every query row that has keys outside its window is attended
// again over (the engine's keys) ∩ (its last `window` positions), from an fp32 copy of those keys and
// values. Rows whose whole causal past fits the window keep the engine's output unchanged.
// stats() and extra_measurements() are the engine's (its selection before the window); attended() reports
// the keys after it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "engines/engine.h"

namespace ctxbench::model {

class WindowedSession final : public engines::Session {
 public:
  // `window` >= 1: keys a query sees, itself included. The inner session must take rotated keys.
  WindowedSession(std::unique_ptr<engines::Session> inner, const engines::HeadLayout& layout, std::int64_t window);

  void append(const float* k, const float* v, int n) override;
  void attend(const float* q, int n, engines::Phase phase, float* out) override;
  std::vector<kernels::KeyRange> attended(int head, int query) const override;
  engines::SessionStats stats() const override { return inner_->stats(); }
  std::vector<Measurement> extra_measurements() const override { return inner_->extra_measurements(); }
  void token_surprisal(const float* surprisal, int n) override { inner_->token_surprisal(surprisal, n); }

 private:
  std::vector<kernels::KeyRange> in_window(const std::vector<kernels::KeyRange>& ranges, std::int64_t query) const;
  void attend_row(const float* q, int head, const std::vector<kernels::KeyRange>& keys, float* out) const;
  const float* key(std::int64_t position, int kv_head) const;
  const float* value(std::int64_t position, int kv_head) const;

  std::unique_ptr<engines::Session> inner_;
  engines::HeadLayout layout_;
  std::int64_t window_;
  std::int64_t length_ = 0;                       // tokens appended
  int last_queries_ = 0;                          // n of the last attend call
  std::int64_t first_kept_ = 0;                   // position of keys_.front()
  std::deque<std::vector<float>> keys_, values_;  // per position: [heads_kv][head_dim]
};

}  // namespace ctxbench::model
