#include "engines/scored_eviction.h"

#include <algorithm>
#include <cmath>

#include "core/timer.h"

namespace ctxbench::engines {

ScoredEvictionSession::ScoredEvictionSession(const HeadLayout& layout, int threads)
    : LoggedSession(layout), caches_(layout), threads_(threads) {}

void ScoredEvictionSession::append(const float* k, const float* v, int n) {
  caches_.append(k, v, n);
  appended(n);
}

void ScoredEvictionSession::attend(const float* q, int n, Phase phase, float* out) {
  std::vector<float> lse(static_cast<std::size_t>(layout_.heads_q) * n);
  attend_all_kept(q, n, caches_, out, lse.data(), threads_);
  Stopwatch select;
  const Call call{q, n, phase, lse};
  for (int g = 0; g < layout_.heads_kv; ++g) {
    observe(g, call);
    if (const auto keep = compression(g, call)) evict(g, call, *keep);
  }
  stats_.mask_seconds += select.seconds();
  finish_call(caches_.resident_bytes());
}

void ScoredEvictionSession::add_attention(int g, const Call& call, int first_query, int keys,
                                          std::vector<float>& scores) const {
  const KvCache& cache = caches_.head(g);
  const WideKeys wide(cache.keys(), 0, keys);
  for (int h = g * group(); h < (g + 1) * group(); ++h) {
    for (int i = first_query; i < call.n; ++i) {
      const float* row = query_row(call.q, h, call.n, i, layout_.head_dim);
      const float row_lse = call.lse[static_cast<std::size_t>(h) * call.n + i];
      const int seen = std::min(keys, cache.tokens() - call.n + i + 1);
      for (int t = 0; t < seen; ++t) scores[t] += std::exp(scale() * dot(row, wide.row(t), layout_.head_dim) - row_lse);
    }
  }
}

void ScoredEvictionSession::evict(int g, const Call& call, Keep keep) {
  KvCache& cache = caches_.head(g);
  const int candidates = cache.tokens() - keep.recent;
  std::vector<int> indices = top_k(scores(g, call, candidates), keep.top);
  for (int t = candidates; t < cache.tokens(); ++t) indices.push_back(t);
  cache.keep(indices);
  kept(g, indices);
}

}  // namespace ctxbench::engines
