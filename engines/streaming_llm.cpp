// StreamingLLM (mit-han-lab/streaming-llm, StartRecentKVCache): the first `sinks` tokens ("attention sinks")
// plus the most recent tokens; everything else is evicted for good, so memory stays constant. The budget is
// the cache size start_size + recent_size and includes the newest token, as in the original's
// evict_for_space. Each query of a prefill chunk gets its own window, which is what feeding the chunk token by
// token through the original cache gives, so decoding after a prefill equals the prefill.
//
// The original re-assigns RoPE positions by cache index. Keys reach an attention-level engine already rotated,
// so that re-assignment belongs to the model runtime (BASELINES.md).
#include <algorithm>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct StreamingParams {
  Budget budget{516};
  int sinks = 4;
  int threads = 0;

  static ParamFields<StreamingParams> fields() {
    return ParamFields<StreamingParams>()
        .field(&StreamingParams::budget, "budget", "cache size: sinks + recent window (original 4 + 512)")
        .field(&StreamingParams::sinks, "sinks", "first tokens always kept (start_size)", {.min = 0})
        .field(&StreamingParams::threads, "threads", "worker threads (0: all cores)", {.min = 0});
  }
};

class StreamingSession final : public LoggedSession {
 public:
  StreamingSession(const HeadLayout& layout, const StreamingParams& params)
      : LoggedSession(layout), params_(params), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase, float* out) override {
    Stopwatch select;
    const int first = cache_.appended() - n;
    std::vector<std::vector<KeyRange>> wanted(n);
    std::vector<KeyRange> needed;
    for (int i = 0; i < n; ++i) {
      wanted[i] = window(first + i);
      needed.insert(needed.end(), wanted[i].begin(), wanted[i].end());
    }
    evict_all_but(merge_ranges(std::move(needed)));

    kernels::SparsePlan plan{1, {}};
    plan.ranges.resize(static_cast<std::size_t>(layout_.heads_q) * n);
    log_.begin(layout_.heads_q, n, first, 1);
    for (int i = 0; i < n; ++i) {
      auto indices = to_indices(wanted[i], cache_.positions());
      const auto positions = to_positions(indices, cache_.positions());
      for (int h = 0; h < layout_.heads_q; ++h) {
        plan.ranges[static_cast<std::size_t>(h) * n + i] = indices;
        log_.set(h, i, positions);
      }
    }
    stats_.mask_seconds += select.seconds();

    attend_sparse(q, n, cache_.tokens() - n, cache_, plan, out, nullptr, params_.threads);
    finish_call(cache_.resident_bytes());
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

  void evict_all_but(const std::vector<KeyRange>& needed) {
    std::vector<int> keep;
    for (const KeyRange& r : to_indices(needed, cache_.positions())) {
      for (int i = r.begin; i < r.end; ++i) keep.push_back(i);
    }
    if (static_cast<int>(keep.size()) < cache_.tokens()) cache_.keep(keep);
  }

  StreamingParams params_;
  KvCache cache_;
};

const RegisterEngine registration{declared_engine<StreamingSession, StreamingParams>({
    .name = "streaming_llm",
    .description = "StreamingLLM: attention sinks + recent window, older tokens evicted",
    .policy = KvPolicy::evicts,
    .exact_params = budget_covering,
    .decode_matches_prefill = true,
})};

}  // namespace
}  // namespace ctxbench::engines
