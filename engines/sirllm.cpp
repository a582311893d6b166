// SirLLM (Yao et al. 2024, arXiv 2405.12528; Zoeyyao27/SirLLM `sir_llm/kv_cache.py`
// `evict_for_space_token_entropy`, `sir_llm/eval_utils.py` `_cal_selfinfo` and the streaming loops): a cache of
// fixed size that keeps the start tokens, the tokens of highest "token entropy" and, in what room is left, the
// newest tokens. A token's entropy is the model's surprisal of it, -log p(x_t | x_<t) (the code gathers
// -log softmax at the token's id, not the entropy of the distribution), and every held token's score is
// multiplied by `decay` each time new tokens arrive (memory decay).
//
// Before n tokens are appended to a cache that would then exceed its size C, the cache keeps: the `sinks` start
// tokens, the C - sinks - recent - n best-scoring held tokens (start and newest tokens included, ties to the
// earlier one), and then the newest held tokens until C - n are kept; then the held scores decay. The n new
// tokens are attended in full, over what was kept. Only a model runtime knows the surprisal (it reports it after
// each forward call, Session::token_surprisal); keys that arrive without it cannot be ranked, so attention-level
// problems, which have no model, are refused as soon as the ranking needs them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

constexpr float kUnscored = std::numeric_limits<float>::quiet_NaN();

struct SirParams {
  Budget budget{1024};
  int sinks = 4;
  int recent = 0;
  double decay = 1.0;
  int threads = 0;

  static ParamFields<SirParams> fields() {
    using P = SirParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::budget, "budget",
                   "cache size: sinks + recent + token-entropy tokens (original start 4 + entropy 1020 + recent 0)")
            .field(&P::sinks, "sinks", "first tokens always kept (start_size)", {.min = 0})
            .field(&P::recent, "recent", "cache room not given to the best-scoring tokens (recent_size)", {.min = 0})
            .field(&P::decay, "decay",
                   "memory decay: held scores are multiplied by it whenever tokens arrive (decay_ratio)",
                   {.min = 0.0, .max = 1.0}));
  }

  // The cache holds C keys, or the start tokens beside a call larger than the rest of the cache.
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const {
    const int at_most = static_cast<int>(std::min<std::int64_t>(context, std::numeric_limits<int>::max()));
    const std::int64_t cache = budget.tokens(at_most, layer);
    return std::min<std::int64_t>(context, std::max<std::int64_t>(cache, static_cast<std::int64_t>(sinks) + chunk));
  }
};

class SirSession final : public LoggedSession {
 public:
  SirSession(const HeadLayout& layout, const SirParams& params)
      : LoggedSession(layout), params_(params), cache_(layout) {}

  void append(const float* k, const float* v, int n) override {
    if (cache_.tokens() > 0) {
      Stopwatch select;
      const int cache_size = params_.budget.tokens(cache_.appended() + n, layout_.layer);
      if (cache_.tokens() + n > cache_size) evict(cache_size, n);
      for (float& score : scores_) score *= static_cast<float>(params_.decay);
      stats_.mask_seconds += select.seconds();
    }
    cache_.append(k, v, n);
    scores_.resize(cache_.tokens(), kUnscored);
  }

  void token_surprisal(const float* surprisal, int n) override {
    if (n > cache_.tokens() || n > cache_.appended() - first_unreported_) {
      throw std::invalid_argument("token_surprisal: more tokens than were appended since the last report");
    }
    std::copy_n(surprisal, n, scores_.end() - n);
    first_unreported_ = cache_.appended();
  }

  void attend(const float* q, int n, Phase, float* out) override {
    log_.begin(layout_.heads_q, n, cache_.appended() - n, n);
    const auto kept = ranges_from_indices(cache_.positions());
    for (int h = 0; h < layout_.heads_q; ++h) log_.set(h, 0, kept);
    attend_logged(q, n, cache_, out, params_.threads);
  }

 private:
  // Makes room for n arriving tokens in a cache of `cache_size` (evict_for_space_token_entropy).
  void evict(int cache_size, int n) {
    const int held = cache_.tokens();
    const int room = cache_size - n;
    const int best = cache_size - params_.sinks - params_.recent - n;
    std::vector<char> keep(held, 0);
    std::fill_n(keep.begin(), std::min(params_.sinks, held), 1);
    if (best > 0) {
      if (std::any_of(scores_.begin(), scores_.end(), [](float s) { return std::isnan(s); })) {
        throw InputError(
            "sirllm: keys arrived without the model's surprisal of their tokens, which SirLLM ranks them by; "
            "only a model runtime reports it (run sirllm on a text task, not an attention-level one)");
      }
      for (int index : top_k(scores_, best)) keep[index] = 1;
    }
    int kept = static_cast<int>(std::count(keep.begin(), keep.end(), 1));
    for (int index = held - 1; index >= 0 && kept < room; --index) {
      if (!keep[index]) keep[index] = 1, ++kept;
    }
    std::vector<int> indices;
    for (int index = 0; index < held; ++index) {
      if (keep[index]) indices.push_back(index);
    }
    std::vector<float> scores;
    for (int index : indices) scores.push_back(scores_[index]);
    cache_.keep(indices);
    scores_ = std::move(scores);
  }

  SirParams params_;
  KvCache cache_;
  std::vector<float> scores_;  // per cache index: decayed surprisal, NaN until reported
  int first_unreported_ = 0;   // position of the first token whose surprisal was not reported
};

class SirEngine final : public Engine {
 public:
  explicit SirEngine(SirParams params) : params_(std::move(params)) {}
  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return std::make_unique<SirSession>(layout, params_);
  }
  bool wants_token_surprisal() const override { return true; }
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const override {
    return params_.peak_resident_keys(context, chunk, layer);
  }

 private:
  SirParams params_;
};

const RegisterEngine registration{declared_engine<SirEngine, SirParams>({
    .name = "sirllm",
    .description =
        "SirLLM: start tokens + the tokens the model found most surprising (decayed per call) + newest; needs the "
        "model runtime's token surprisal",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"budget", 64}, {"sinks", 4}, {"recent", 8}, {"decay", 0.9}},
    .exact_params = budget_covering,
})};

}  // namespace
}  // namespace ctxbench::engines
