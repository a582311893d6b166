// H2O (FMInference/H2O, h2o_hf/utils_real_drop: H2OKVCache_LayerWise): every attend call is exact over what the
// cache holds; each key accumulates the attention probability it received from every query since it arrived
// (summed over the query heads of its KV head); then, if the cache exceeds the budget, each KV head keeps the
// `heavy` highest-scoring keys among the non-recent ones plus the `recent` newest, and evicts the rest for
// good. The prefill is exact and evicts at its end, as in the original. The budget is heavy + recent; the
// split follows the ratio mode's 0.1 / 0.1 (heavy_share 0.5).
#include <algorithm>
#include <cmath>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct H2OParams {
  Budget budget;
  double heavy_share = 0.5;
  int threads = 0;
};

class H2OSession final : public LoggedSession {
 public:
  H2OSession(const HeadLayout& layout, const H2OParams& params)
      : LoggedSession(layout), params_(params), caches_(layout), scores_(layout.heads_kv) {}

  void append(const float* k, const float* v, int n) override {
    caches_.append(k, v, n);
    for (auto& s : scores_) s.resize(s.size() + n, 0.0f);
  }

  void attend(const float* q, int n, Phase, float* out) override {
    std::vector<float> lse(static_cast<std::size_t>(layout_.heads_q) * n);
    attend_all_kept(q, n, caches_, out, lse.data(), params_.threads);
    Stopwatch select;
    for (int g = 0; g < layout_.heads_kv; ++g) {
      accumulate(g, q, n, lse);
      evict(g);
    }
    stats_.mask_seconds += select.seconds();
    finish_call(caches_.resident_bytes());
  }

 private:
  // Adds each query's attention probabilities (exp(score - lse)) to the keys it saw.
  void accumulate(int g, const float* q, int n, const std::vector<float>& lse) {
    const KvCache& cache = caches_.head(g);
    const WideKeys keys(cache.keys(), 0, cache.tokens());
    std::vector<float>& scores = scores_[g];
    for (int h = g * group(); h < (g + 1) * group(); ++h) {
      for (int i = 0; i < n; ++i) {
        const float* row = query_row(q, h, n, i, layout_.head_dim);
        const float row_lse = lse[static_cast<std::size_t>(h) * n + i];
        const int visible = cache.tokens() - n + i + 1;
        for (int t = 0; t < visible; ++t)
          scores[t] += std::exp(scale() * dot(row, keys.row(t), layout_.head_dim) - row_lse);
      }
    }
  }

  void evict(int g) {
    KvCache& cache = caches_.head(g);
    const int tokens = cache.tokens();
    const int capacity = params_.budget.tokens(caches_.appended(), layout_.layer);
    if (tokens <= capacity) return;
    const int heavy = static_cast<int>(capacity * params_.heavy_share);
    const int recent = capacity - heavy;
    std::vector<float>& scores = scores_[g];
    std::vector<int> kept = top_k(std::span<const float>(scores.data(), tokens - recent), heavy);
    for (int t = tokens - recent; t < tokens; ++t) kept.push_back(t);
    cache.keep(kept);
    std::vector<float> kept_scores;
    kept_scores.reserve(kept.size());
    for (int t : kept) kept_scores.push_back(scores[t]);
    scores.swap(kept_scores);
  }

  H2OParams params_;
  PerHeadCaches caches_;
  std::vector<std::vector<float>> scores_;  // [kv head][cache index]: accumulated attention
};

const RegisterEngine registration{{
    .name = "h2o",
    .description = "H2O: heavy hitters by accumulated attention + recent window, others evicted",
    .policy = KvPolicy::evicts,
    .params = {Budget::spec(2048, "cache size: heavy hitters + recent window"),
               Budget::per_layer_spec(),
               {.name = "heavy_share",
                .type = ParamType::number,
                .default_value = 0.5,
                .help = "fraction of the budget for heavy hitters (rest: recent window)",
                .min = 0.0,
                .max = 1.0},
               threads_param()},
    .make =
        [](const Json& p) {
          return session_engine<H2OSession>(
              H2OParams{budget_param(p, "h2o"), p.at("heavy_share").get<double>(), p.at("threads").get<int>()});
        },
    .exact_params = budget_covering,
}};

}  // namespace
}  // namespace ctxbench::engines
