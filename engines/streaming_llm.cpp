// StreamingLLM (mit-han-lab/streaming-llm, StartRecentKVCache): the first `sinks` tokens ("attention sinks")
// plus the most recent tokens; everything else is evicted for good, so memory stays constant. The budget is
// the cache size start_size + recent_size and includes the newest token, as in the original's
// evict_for_space. Each query of a prefill chunk gets its own window, which is what feeding the chunk token by
// token through the original cache gives, so decoding after a prefill equals the prefill.
//
// The original re-assigns RoPE positions by cache index. Keys reach an attention-level engine already rotated,
// so that re-assignment belongs to the model runtime (BASELINES.md).
#include <algorithm>
#include <limits>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct StreamingParams {
  Budget budget{516};
  int sinks = 4;
  int threads = 0;

  static ParamFields<StreamingParams> fields() {
    return with_threads(
        ParamFields<StreamingParams>()
            .field(&StreamingParams::budget, "budget", "cache size: sinks + recent window (original 4 + 512)")
            .field(&StreamingParams::sinks, "sinks", "first tokens always kept (start_size)", {.min = 0}));
  }

  // The cache keeps its budget after each attend call, and holds the new chunk beside it until then.
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const {
    const int at_most = static_cast<int>(std::min<std::int64_t>(context, std::numeric_limits<int>::max()));
    return std::min<std::int64_t>(context, budget.tokens(at_most, layer) + chunk);
  }
};

class StreamingSession final : public LoggedSession {
 public:
  StreamingSession(const HeadLayout& layout, const StreamingParams& params)
      : LoggedSession(layout), params_(params), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase, float* out) override {
    Stopwatch select;
    log_.begin(layout_.heads_q, n, cache_.appended() - n, 1);
    for (int i = 0; i < n; ++i) {
      const auto keys = window(cache_.appended() - n + i);
      for (int h = 0; h < layout_.heads_q; ++h) log_.set(h, i, keys);
    }
    keep_positions(cache_, log_.positions());
    stats_.mask_seconds += select.seconds();
    attend_logged(q, n, cache_, out, params_.threads);
  }

 private:
  // Sinks plus the newest keys up to the query at `position`; the query always sees itself.
  std::vector<KeyRange> window(int position) const {
    const int context = position + 1;
    const int keep = params_.budget.tokens(context, layout_.layer);
    if (keep >= context) return {{0, context}};
    const int sinks = std::min(params_.sinks, keep - 1);
    return merge_ranges({{0, sinks}, {context - (keep - sinks), context}});
  }

  StreamingParams params_;
  KvCache cache_;
};

const RegisterEngine registration{declared_engine<StreamingSession, StreamingParams>({
    .name = "streaming_llm",
    .description = "StreamingLLM: attention sinks + recent window, older tokens evicted",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"budget", 64}, {"sinks", 4}},
    .exact_params = budget_covering,
    .decode_matches_prefill = true,
})};

}  // namespace
}  // namespace ctxbench::engines
