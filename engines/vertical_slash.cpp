// MInference's vertical-slash prefill pattern (microsoft/MInference, vertical_and_slash_kernel): the last
// `last_q` queries of the prefill chunk attend exactly; per query head, their softmax probabilities summed
// over those queries score every key column ("vertical") and every diagonal offset ("slash"). The first
// `forced_vertical` columns and the `forced_slash` nearest diagonals are always kept; then the top
// vertical_size columns and slash_size diagonals. As in the original, vertical_size is at least 30 and
// slash_size at least 50 (both at most the context). Like the original's kernel, which tiles queries in
// blocks of 64, a diagonal at offset o gives every query of a query block the keys [first - o, last - o] of
// that block (first and last being the block's query positions), while vertical columns are single keys;
// causality applies per query. Decode is dense (MInference only accelerates the prefill), and the whole cache
// stays resident.
//
// Budget: vertical_size + slash_size, split by vertical_share (the default pattern 1000 + 6096 has 0.141).
#include "engines/vertical_slash.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {

ColumnDiagonalMass column_diagonal_mass(const float* q, int n, int head, int observed, const WideKeys& keys,
                                        int context, int dim, float scale) {
  ColumnDiagonalMass mass{std::vector<float>(context, 0.0f), std::vector<float>(context, 0.0f)};
  std::vector<float> logits;
  for (int i = n - observed; i < n; ++i) {
    const int position = context - n + i;
    const float* row = query_row(q, head, n, i, dim);
    logits.resize(position + 1);
    float max_logit = -std::numeric_limits<float>::infinity();
    for (int t = 0; t <= position; ++t) {
      logits[t] = scale * dot(row, keys.row(t), dim);
      max_logit = std::max(max_logit, logits[t]);
    }
    double sum = 0.0;
    for (float& x : logits) sum += (x = std::exp(x - max_logit));
    for (int t = 0; t <= position; ++t) {
      const float p = static_cast<float>(logits[t] / sum);
      mass.vertical[t] += p;
      mass.slash[position - t] += p;
    }
  }
  return mass;
}

namespace {

struct VerticalSlashParams {
  Budget budget{7096};
  double vertical_share = 1000.0 / 7096.0;
  int last_q = 64;
  int forced_vertical = 30;
  int forced_slash = 100;
  int query_block = 64;
  int threads = 0;

  static ParamFields<VerticalSlashParams> fields() {
    using P = VerticalSlashParams;
    return with_threads(ParamFields<P>()
                            .field(&P::budget, "budget", "vertical_size + slash_size at prefill")
                            .field(&P::vertical_share, "vertical_share",
                                   "fraction of the budget for vertical columns (rest: slash diagonals)",
                                   {.min = 0.0, .max = 1.0})
                            .field(&P::last_q, "last_q", "chunk queries that estimate the pattern", {.min = 1})
                            .field(&P::forced_vertical, "forced_vertical", "first key columns always kept", {.min = 0})
                            .field(&P::forced_slash, "forced_slash", "nearest diagonals always kept", {.min = 0})
                            .field(&P::query_block, "query_block",
                                   "queries sharing one diagonal range (the kernel's block)", {.min = 1}));
  }
};

class VerticalSlashSession final : public LoggedSession {
 public:
  VerticalSlashSession(const HeadLayout& layout, const VerticalSlashParams& params)
      : LoggedSession(layout), params_(params), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase phase, float* out) override {
    Stopwatch select;
    const int first = cache_.tokens() - n;
    const int block = phase == Phase::prefill ? params_.query_block : n;
    const int blocks = (n + block - 1) / block;
    log_.begin(layout_.heads_q, n, first, block);
    for (int g = 0; g < layout_.heads_kv; ++g) {
      const WideKeys keys(cache_.keys(), g, cache_.tokens());
      for (int h = g * group(); h < (g + 1) * group(); ++h) {
        Pattern pattern = phase == Phase::prefill ? estimate(q, n, h, keys) : Pattern{};
        for (int b = 0; b < blocks; ++b) {
          const int lo = first + b * block, hi = std::min(first + n, lo + block) - 1;
          log_.set(h, b, phase == Phase::prefill ? pattern.keys(lo, hi) : std::vector<KeyRange>{{0, hi + 1}});
        }
      }
    }
    stats_.mask_seconds += select.seconds();

    if (phase == Phase::prefill) {
      // Estimating read every visible key once per KV head.
      stats_.kv_bytes_read += static_cast<std::uint64_t>(cache_.tokens()) * layout_.heads_kv * key_bytes(layout_) / 2;
    }
    attend_logged(q, n, cache_, out, params_.threads);
  }

 private:
  struct Pattern {
    std::vector<int> columns;  // key positions
    std::vector<int> offsets;  // query position - key position

    std::vector<KeyRange> keys(int first_query, int last_query) const {
      std::vector<KeyRange> ranges;
      for (int c : columns) ranges.push_back({c, c + 1});
      for (int o : offsets) ranges.push_back({std::max(0, first_query - o), std::max(0, last_query - o + 1)});
      return merge_ranges(std::move(ranges));
    }
  };

  // Scores columns and diagonals with the last queries of the chunk for query head h.
  Pattern estimate(const float* q, int n, int h, const WideKeys& keys) const {
    const int context = cache_.tokens();
    const int budget = params_.budget.tokens(context, layout_.layer);
    const int vertical_budget = static_cast<int>(std::lround(budget * params_.vertical_share));
    const int vertical_size = std::min(context, std::max(vertical_budget, 30));
    const int slash_size = std::min(context, std::max(budget - vertical_budget, 50));
    const int observed = std::min(params_.last_q, n);
    auto [vertical, slash] = column_diagonal_mass(q, n, h, observed, keys, context, layout_.head_dim, scale());
    const float forced = std::numeric_limits<float>::infinity();
    std::fill_n(vertical.begin(), std::min(params_.forced_vertical, context), forced);
    std::fill_n(slash.begin(), std::min(params_.forced_slash, context), forced);
    return {top_k(vertical, vertical_size), top_k(slash, slash_size)};
  }

  VerticalSlashParams params_;
  KvCache cache_;
};

const RegisterEngine registration{declared_engine<VerticalSlashSession, VerticalSlashParams>({
    .name = "vertical_slash",
    .description = "MInference vertical-slash prefill: top key columns + top diagonals from the last queries",
    .policy = KvPolicy::masks,
    .test_params =
        Json{{"budget", 96}, {"last_q", 16}, {"forced_vertical", 4}, {"forced_slash", 8}, {"query_block", 16}},
    .exact_params =
        [](int tokens) {
          return Json{{"budget", tokens}, {"vertical_share", 1.0}};
        },
})};

}  // namespace
}  // namespace ctxbench::engines
