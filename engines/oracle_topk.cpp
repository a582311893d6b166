// Oracle top-k: every query row scores every visible key exactly and attends to the `budget` best, optionally
// on top of forced sinks and a recent window (which count toward the budget). It reads all keys to choose and
// keeps the whole cache, so it saves neither memory nor much compute: it is the accuracy upper bound of any
// method that selects `budget` tokens per query.
#include <algorithm>

#include "core/timer.h"
#include "engines/baseline.h"
#include "kernels/thread_pool.h"

namespace ctxbench::engines {
namespace {

struct OracleParams {
  Budget budget{1024};
  int sinks = 0;
  int window = 0;
  int threads = 0;

  static ParamFields<OracleParams> fields() {
    return with_threads(ParamFields<OracleParams>()
                            .field(&OracleParams::budget, "budget", "keys per query row, sinks and window included")
                            .field(&OracleParams::sinks, "sinks", "first tokens always attended", {.min = 0})
                            .field(&OracleParams::window, "window", "newest tokens always attended", {.min = 0}));
  }
};

class OracleSession final : public LoggedSession {
 public:
  OracleSession(const HeadLayout& layout, const OracleParams& params)
      : LoggedSession(layout), params_(params), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase, float* out) override {
    Stopwatch select;
    const int first = cache_.tokens() - n;
    log_.begin(layout_.heads_q, n, first, 1);
    for (int g = 0; g < layout_.heads_kv; ++g) {
      const WideKeys keys(cache_.keys(), g, cache_.tokens());
      // Rows are independent and scoring every key is the whole cost: workers take rows from a shared counter.
      kernels::parallel_for(group() * n, params_.threads, [&](int row) {
        const int h = g * group() + row / n, i = row % n;
        log_.set(h, i, choose(query_row(q, h, n, i, layout_.head_dim), keys, first + i));
      });
    }
    stats_.mask_seconds += select.seconds();

    // Choosing read every visible key once per KV head.
    stats_.kv_bytes_read += static_cast<std::uint64_t>(cache_.tokens()) * layout_.heads_kv * key_bytes(layout_) / 2;
    attend_logged(q, n, cache_, out, params_.threads);
  }

 private:
  std::vector<KeyRange> choose(const float* q, const WideKeys& keys, int position) const {
    const int context = position + 1;
    const int keep = params_.budget.tokens(context, layout_.layer);
    if (keep >= context) return {{0, context}};
    const int sinks = std::min(params_.sinks, keep);
    const int window = std::min(params_.window, keep - sinks);
    const int candidates_end = context - window;
    std::vector<float> scores(candidates_end - sinks);
    for (int t = sinks; t < candidates_end; ++t) scores[t - sinks] = dot(q, keys.row(t), layout_.head_dim);
    std::vector<int> chosen = top_k(scores, keep - sinks - window);
    for (int& t : chosen) t += sinks;
    auto ranges = ranges_from_indices(chosen);
    ranges.push_back({0, sinks});
    ranges.push_back({candidates_end, context});
    return merge_ranges(std::move(ranges));
  }

  OracleParams params_;
  KvCache cache_;
};

const RegisterEngine registration{declared_engine<OracleSession, OracleParams>({
    .name = "oracle_topk",
    .description = "exact top-k keys per query row (upper bound of token selection); keeps the whole cache",
    .policy = KvPolicy::masks,
    .test_params = Json{{"budget", 64}, {"sinks", 4}, {"window", 16}},
    .exact_params = budget_covering,
    .decode_matches_prefill = true,
})};

}  // namespace
}  // namespace ctxbench::engines
