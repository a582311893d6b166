// Quest (mit-han-lab/Quest): query-aware page selection at decode. Keys are grouped in pages of `page_size`
// tokens with their element-wise min and max; a decode query bounds a page's best score by
// sum_i max(q_i * max_i, q_i * min_i) and attends to the pages with the largest bounds, always including
// the page it sits in (the kernel's "page budget including the last page"); min(max(3, budget / page_size),
// pages) pages per query head. Prefill and the first `dense_layers` layers are dense. The whole cache stays
// resident: Quest saves reads, not memory.
#include <algorithm>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct QuestParams {
  Budget budget{1024};
  int page_size = 16;
  int dense_layers = 2;
  int threads = 0;

  static ParamFields<QuestParams> fields() {
    return with_threads(
        ParamFields<QuestParams>()
            .field(&QuestParams::budget, "budget",
                   "token budget per query row at decode (pages = budget / page_size, at least 3)")
            .field(&QuestParams::page_size, "page_size", "tokens per page (chunk_size)", {.min = 1})
            .field(&QuestParams::dense_layers, "dense_layers",
                   "in a model (num_layers > 1), layers below this index are dense; a lone attention-level layer is "
                   "always sparse",
                   {.min = 0}));
  }
};

// Element-wise min and max of the stored keys of every page, per KV head, kept up to date on append.
class PageBounds {
 public:
  PageBounds(int heads, int dim, int page_size) : dim_(dim), page_size_(page_size), min_(heads), max_(heads) {}

  void add(const kernels::KvView& keys, int first, int count) {
    for (int h = 0; h < static_cast<int>(min_.size()); ++h) {
      for (int t = first; t < first + count; ++t) {
        const std::size_t base = static_cast<std::size_t>(t / page_size_) * dim_;
        if (t % page_size_ == 0) {
          min_[h].resize(base + dim_);
          max_[h].resize(base + dim_);
        }
        for (int i = 0; i < dim_; ++i) {
          const float x = keys.load(h, t, i);
          min_[h][base + i] = t % page_size_ == 0 ? x : std::min(min_[h][base + i], x);
          max_[h][base + i] = t % page_size_ == 0 ? x : std::max(max_[h][base + i], x);
        }
      }
    }
  }

  float bound(int head, int page, const float* q) const {
    const float* lo = &min_[head][static_cast<std::size_t>(page) * dim_];
    const float* hi = &max_[head][static_cast<std::size_t>(page) * dim_];
    float s = 0.0f;
    for (int i = 0; i < dim_; ++i) s += std::max(q[i] * hi[i], q[i] * lo[i]);
    return s;
  }

 private:
  int dim_, page_size_;
  std::vector<std::vector<float>> min_, max_;  // [head][page * dim + i]
};

class QuestSession final : public LoggedSession {
 public:
  QuestSession(const HeadLayout& layout, const QuestParams& params)
      : LoggedSession(layout),
        params_(params),
        cache_(layout),
        bounds_(layout.heads_kv, layout.head_dim, params.page_size) {}

  void append(const float* k, const float* v, int n) override {
    cache_.append(k, v, n);
    bounds_.add(cache_.keys(), cache_.tokens() - n, n);
  }

  void attend(const float* q, int n, Phase phase, float* out) override {
    Stopwatch select;
    const int first = cache_.tokens() - n;
    // As HiP's and InfiniteHiP's dense layers: a lone attention-level layer is always sparse.
    const bool dense_layer = layout_.num_layers > 1 && layout_.layer < params_.dense_layers;
    const bool dense = phase == Phase::prefill || dense_layer;
    log_.begin(layout_.heads_q, n, first, 1);
    std::vector<float> scores;
    std::uint64_t pages_scored = 0;
    for (int h = 0; h < layout_.heads_q; ++h) {
      for (int i = 0; i < n; ++i) {
        const int context = first + i + 1;
        log_.set(h, i,
                 dense ? std::vector<KeyRange>{{0, context}}
                       : choose(query_row(q, h, n, i, layout_.head_dim), h / group(), context, scores));
        if (!dense) pages_scored += (context + params_.page_size - 1) / params_.page_size;
      }
    }
    stats_.mask_seconds += select.seconds();

    // Each query head read the min and max vectors of every page it bounded (same size as one key each).
    stats_.kv_bytes_read += pages_scored * key_bytes(layout_);
    attend_logged(q, n, cache_, out, params_.threads);
  }

 private:
  std::vector<KeyRange> choose(const float* q, int kv_head, int context, std::vector<float>& scores) const {
    const int budget = params_.budget.tokens(context, layout_.layer);
    const int pages = (context + params_.page_size - 1) / params_.page_size;
    const int keep = std::min(std::max(3, budget / params_.page_size), pages);
    if (budget >= context || keep >= pages) return {{0, context}};
    scores.resize(pages - 1);  // the query's own (last) page is always attended
    for (int page = 0; page < pages - 1; ++page) scores[page] = bounds_.bound(kv_head, page, q);
    std::vector<KeyRange> ranges;
    for (int page : top_k(scores, keep - 1)) {
      ranges.push_back({page * params_.page_size, (page + 1) * params_.page_size});
    }
    ranges.push_back({(pages - 1) * params_.page_size, context});
    return merge_ranges(std::move(ranges));
  }

  QuestParams params_;
  KvCache cache_;
  PageBounds bounds_;
};

const RegisterEngine registration{declared_engine<QuestSession, QuestParams>({
    .name = "quest",
    .description = "Quest: top pages by min/max key bounds at decode; dense prefill; full cache kept",
    .policy = KvPolicy::masks,
    .test_params = Json{{"budget", 64}, {"page_size", 8}},
    .exact_params = budget_covering,
})};

}  // namespace
}  // namespace ctxbench::engines
