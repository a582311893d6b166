#include "engines/baseline.h"

#include <cmath>

#include "core/timer.h"

namespace ctxbench::engines {

float LoggedSession::scale() const { return 1.0f / std::sqrt(static_cast<float>(layout_.head_dim)); }

void LoggedSession::attend_sparse(const float* q, int n, int first, const KvCache& cache,
                                  const kernels::SparsePlan& plan, float* out, float* lse, int threads) {
  Stopwatch watch;
  const kernels::QueryView query{q, layout_.heads_q, n, layout_.head_dim};
  kernels::sparse_attention(query, cache.keys(), cache.values(), {first, scale()}, plan, {out, lse}, threads);
  stats_.attention_seconds += watch.seconds();
}

void LoggedSession::attend_logged(const float* q, int n, const KvCache& cache, float* out, int threads) {
  // A cache that evicted nothing holds every position at its own index.
  const bool evicted = cache.tokens() < cache.appended();
  attend_sparse(q, n, cache.tokens() - n, cache, evicted ? log_.plan(cache.positions()) : log_.plan(), out, nullptr,
                threads);
  finish_call(cache.resident_bytes());
}

void LoggedSession::attend_all_kept(const float* q, int n, const PerHeadCaches& caches, float* out, float* lse,
                                    int threads) {
  log_.begin(layout_.heads_q, n, caches.appended() - n, n);
  Stopwatch watch;
  for (int g = 0; g < layout_.heads_kv; ++g) {
    const KvCache& cache = caches.head(g);
    const kernels::SparsePlan plan{n, std::vector<std::vector<KeyRange>>(group(), {{0, cache.tokens()}})};
    attend_head_group(q, n, layout_, g, cache, plan, out, lse, threads);
    const auto positions = to_positions({{0, cache.tokens()}}, cache.positions());
    for (int h = g * group(); h < (g + 1) * group(); ++h) log_.set(h, 0, positions);
  }
  stats_.attention_seconds += watch.seconds();
}

void LoggedSession::finish_call(std::uint64_t resident_bytes) {
  log_.account(stats_, layout_.heads_kv, key_bytes(layout_));
  stats_.kv_bytes_resident = resident_bytes;
}

Json budget_covering(int tokens) { return Json{{"budget", tokens}}; }

}  // namespace ctxbench::engines
