// H2O (FMInference/H2O, h2o_hf/utils_real_drop: H2OKVCache_LayerWise): every attend call is exact over what the
// cache holds; each key accumulates the attention probability it received from every query since it arrived
// (summed over the query heads of its KV head); then, if the cache exceeds the budget, each KV head keeps the
// `heavy` highest-scoring keys among the non-recent ones plus the `recent` newest, and evicts the rest for
// good. The prefill is exact and evicts at its end, as in the original. The budget is heavy + recent; the
// split follows the ratio mode's 0.1 / 0.1 (heavy_share 0.5).
#include "engines/scored_eviction.h"

namespace ctxbench::engines {
namespace {

struct H2OParams {
  Budget budget{2048};
  double heavy_share = 0.5;
  int threads = 0;

  static ParamFields<H2OParams> fields() {
    return with_threads(ParamFields<H2OParams>()
                            .field(&H2OParams::budget, "budget", "cache size: heavy hitters + recent window")
                            .field(&H2OParams::heavy_share, "heavy_share",
                                   "fraction of the budget for heavy hitters (rest: recent window)",
                                   {.min = 0.0, .max = 1.0}));
  }
};

class H2OSession final : public ScoredEvictionSession {
 public:
  H2OSession(const HeadLayout& layout, const H2OParams& params)
      : ScoredEvictionSession(layout, params.threads), params_(params), scores_(layout.heads_kv) {}

 private:
  void appended(int n) override {
    for (auto& s : scores_) s.resize(s.size() + n, 0.0f);
  }

  void observe(int g, const Call& call) override { add_attention(g, call, 0, caches_.head(g).tokens(), scores_[g]); }

  // Every call over the budget compresses.
  std::optional<Keep> compression(int g, const Call&) const override {
    const int capacity = params_.budget.tokens(caches_.appended(), layout_.layer);
    if (caches_.head(g).tokens() <= capacity) return std::nullopt;
    const int heavy = static_cast<int>(capacity * params_.heavy_share);
    return Keep{heavy, capacity - heavy};
  }

  std::vector<float> scores(int g, const Call&, int candidates) const override {
    return {scores_[g].begin(), scores_[g].begin() + candidates};
  }

  void kept(int g, const std::vector<int>& indices) override {
    std::vector<float> kept_scores;
    kept_scores.reserve(indices.size());
    for (int t : indices) kept_scores.push_back(scores_[g][t]);
    scores_[g].swap(kept_scores);
  }

  H2OParams params_;
  std::vector<std::vector<float>> scores_;  // [kv head][cache index]: accumulated attention
};

const RegisterEngine registration{declared_engine<H2OSession, H2OParams>({
    .name = "h2o",
    .description = "H2O: heavy hitters by accumulated attention + recent window, others evicted",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"budget", 64}},
    .exact_params = budget_covering,
})};

}  // namespace
}  // namespace ctxbench::engines
