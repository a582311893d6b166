// ThinK (Xu et al. 2024, arXiv 2407.21534; SalesforceAIResearch/ThinK `ThinK_eager/src/kv_pruning_utils.py`
// key_pruner_query_driven, `llama_model.py`): query-driven pruning of key channels. At the end of a prefill call,
// each KV head scores every channel c by mean(q_c^2) over the last `window` queries (and the query heads of its
// group) times mean(k_c^2) over all its keys, i.e. by |q_c| |k_c|, and prunes the int(head_dim * pruning_ratio)
// lowest-scoring channels from every key but the `recent` newest. Later calls attend with the pruned keys
// (values untouched); keys that arrive afterwards stay whole, as in the original, whose decode keys are never
// pruned. Further prefill calls prune their new non-recent keys with the channels chosen first.
//
// The cache keeps full-width rows with the pruned channels set to zero, which gives exactly the original's
// scores (masked query . pruned key); `kv_bytes_resident` and `kv_bytes_read` count the pruned layout (the
// kept channels only), while the attention kernel still reads full rows, so time is not a pruned kernel's.
#include <algorithm>
#include <cmath>
#include <optional>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct ThinKParams {
  double pruning_ratio = 0.4;
  int window = 32;
  int recent = 32;
  int threads = 0;

  static ParamFields<ThinKParams> fields() {
    using P = ThinKParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::pruning_ratio, "pruning_ratio", "share of key channels pruned per KV head",
                   {.min = 0.0, .max = 1.0})
            .field(&P::window, "window", "last queries of the prefill that score the channels", {.min = 1})
            .field(&P::recent, "recent", "newest keys at the prefill's end left unpruned (recent_size)", {.min = 0}));
  }
};

class ThinKSession final : public LoggedSession {
 public:
  ThinKSession(const HeadLayout& layout, const ThinKParams& params)
      : LoggedSession(layout),
        params_(params),
        cache_(layout),
        pruned_count_(static_cast<int>(layout.head_dim * params.pruning_ratio)) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase phase, float* out) override {
    const int first = cache_.tokens() - n;
    log_.begin(layout_.heads_q, n, first, n);
    for (int h = 0; h < layout_.heads_q; ++h) log_.set(h, 0, {{0, cache_.tokens()}});
    attend_sparse(q, n, first, cache_, log_.plan(), out, nullptr, params_.threads);
    log_.account(stats_, layout_.heads_kv, key_bytes(layout_));
    stats_.kv_bytes_read -= pruned_bytes();  // every key was read once per KV head, in the pruned layout
    Stopwatch select;
    if (phase == Phase::prefill && pruned_count_ > 0) prune(q, n);
    stats_.mask_seconds += select.seconds();
    stats_.kv_bytes_resident = cache_.resident_bytes() - pruned_bytes();
  }

 private:
  void prune(const float* q, int n) {
    if (channels_.empty()) {
      for (int g = 0; g < layout_.heads_kv; ++g) channels_.push_back(lowest_channels(q, n, g));
    }
    const int end = std::max(pruned_tokens_, cache_.tokens() - params_.recent);
    for (int g = 0; g < layout_.heads_kv; ++g) cache_.zero_key_channels(g, pruned_tokens_, end, channels_[g]);
    pruned_tokens_ = end;
  }

  // The pruned_count_ channels of KV head g with the lowest mean(q_c^2) * mean(k_c^2), ascending.
  std::vector<int> lowest_channels(const float* q, int n, int g) const {
    const int dim = layout_.head_dim, observed = std::min(n, params_.window);
    std::vector<double> query_energy(dim, 0.0), key_energy(dim, 0.0);
    for (int h = g * group(); h < (g + 1) * group(); ++h) {
      for (int i = n - observed; i < n; ++i) {
        const float* row = query_row(q, h, n, i, dim);
        for (int c = 0; c < dim; ++c) query_energy[c] += static_cast<double>(row[c]) * row[c];
      }
    }
    const WideKeys keys(cache_.keys(), g, cache_.tokens());
    for (int t = 0; t < cache_.tokens(); ++t) {
      for (int c = 0; c < dim; ++c) key_energy[c] += static_cast<double>(keys.row(t)[c]) * keys.row(t)[c];
    }
    // Negated so that top_k's "largest first, ties to the lower index" picks the lowest scores.
    std::vector<float> negated(dim);
    for (int c = 0; c < dim; ++c) negated[c] = static_cast<float>(-query_energy[c] * key_energy[c]);
    return top_k(negated, pruned_count_);
  }

  std::uint64_t pruned_bytes() const {
    return static_cast<std::uint64_t>(pruned_tokens_) * layout_.heads_kv * pruned_count_ *
           kernels::dtype_bytes(layout_.kv_dtype);
  }

  ThinKParams params_;
  KvCache cache_;
  int pruned_count_;
  int pruned_tokens_ = 0;                   // keys [0, pruned_tokens_) hold zeros in the pruned channels
  std::vector<std::vector<int>> channels_;  // [kv head]: the pruned channels, chosen at the first prefill
};

const RegisterEngine registration{declared_engine<ThinKSession, ThinKParams>({
    .name = "think",
    .description = "ThinK: query-driven pruning of key channels (values untouched), every token kept",
    .policy = KvPolicy::compresses,
    .test_params = Json{{"pruning_ratio", 0.4}, {"window", 8}, {"recent", 8}},
    .exact_params =
        [](int) {
          return Json{{"pruning_ratio", 0.0}};
        },
    // Measured at most 0.67 on the conformance test's problems (random Gaussian Q/K/V, 40% of the channels pruned).
    .output_tolerance = 0.9,
})};

}  // namespace
}  // namespace ctxbench::engines
