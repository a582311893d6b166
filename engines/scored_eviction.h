// Methods that evict keys by score (H2O, SnapKV, PyramidKV), in the spirit of NVIDIA kvpress's "presses": the
// session keeps one cache per KV head and attends exactly over what each keeps; after every call a method may
// ask, per KV head, to keep its top-scoring keys plus a recent window, and the rest is evicted for good. A
// method supplies only when it compresses (and how many keys it keeps) and the scores of the candidates.
#pragma once

#include <optional>
#include <vector>

#include "engines/baseline.h"

namespace ctxbench::engines {

class ScoredEvictionSession : public LoggedSession {
 public:
  ScoredEvictionSession(const HeadLayout& layout, int threads);

  void append(const float* k, const float* v, int n) override;
  void attend(const float* q, int n, Phase phase, float* out) final;

 protected:
  // One attend call: queries [heads_q][n][dim] and the log-sum-exp of each query row's attention.
  struct Call {
    const float* q;
    int n;
    Phase phase;
    const std::vector<float>& lse;
  };
  // What a KV head keeps when it compresses: the `top` best-scoring candidates and the `recent` newest keys.
  struct Keep {
    int top;
    int recent;
  };

  // Sees KV head g's part of a call before any decision (H2O accumulates its scores here).
  virtual void observe(int g, const Call& call) { (void)g, (void)call; }
  // What KV head g keeps after the call, or nothing to keep every key.
  virtual std::optional<Keep> compression(int g, const Call& call) const = 0;
  // One score per candidate: the keys of KV head g before the `recent` newest, by cache index.
  virtual std::vector<float> scores(int g, const Call& call, int candidates) const = 0;
  // KV head g kept the keys at these cache indices (ascending) and evicted the others.
  virtual void kept(int g, const std::vector<int>& indices) { (void)g, (void)indices; }
  // n keys were appended to every KV head (H2O gives them a score of 0).
  virtual void appended(int n) { (void)n; }

  // Adds to scores[t], for each of KV head g's first `keys` keys, the attention probability that the call's
  // queries from `first_query` on gave it in every query head of the group (keys after a query excluded).
  void add_attention(int g, const Call& call, int first_query, int keys, std::vector<float>& scores) const;

  PerHeadCaches caches_;

 private:
  void evict(int g, const Call& call, Keep keep);

  int threads_;
};

}  // namespace ctxbench::engines
