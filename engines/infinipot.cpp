// InfiniPot (Kim et al. 2024, EMNLP, arXiv 2410.01518): continual context distillation (CCD) in a KV cache of
// fixed size, the "pot" of |M| keys. Keys are appended until the next ones would overflow the pot; then every KV
// head distils what it holds down to |C| keys, and the new keys join them. A head keeps, in this order (the
// paper's two-step selection, Sec. 3.3.3):
//  1. the round(alpha |C|) tokens of highest novelty under compression (NuC): the model's surprisal of each token
//     given the compressed context before it, -log p(x_t | c_0..c_|C|-1, x_|C|..x_t-1), which a model runtime
//     running over the pot reports after each forward call (Session::token_surprisal);
//  2. the rest of |C| by the catalyst prompt's attention (CaP): the probability the catalyst's query rows give
//     each held key, summed over the rows and averaged over the query heads of the KV head (ties to the earlier
//     key).
// No official code was published; this follows the paper's equations. Stand-ins and omissions:
//  - The catalyst prompt (a fixed text such as "Summarize the previous context...", appended for scoring only)
//    cannot be tokenized by a session, which sees no text: its queries are the `catalyst` newest query rows the
//    session attended, each over the held keys at or before its position (SnapKV's observation window). In a
//    model runtime they are the newest context tokens; at the attention level they are the task's queries, which
//    carry the question (the paper's CaP-Q variant).
//  - Keys without a reported surprisal (attention-level problems have no model) cannot be ranked by novelty: a
//    head holding any such key gives all |C| slots to the catalyst (CaP only, the paper's alpha = 0).
//  - A pot that overflows before any query was attended waits for the first attend call's queries.
//  - Context-reset RoPE (kept keys re-rotated to contiguous positions) is not done: kept keys keep the rotation of
//    their real position.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <stdexcept>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

constexpr float kUnreported = std::numeric_limits<float>::quiet_NaN();

struct InfiniPotParams {
  int pot_size = 4096;
  int compressed_size = 2048;
  double nuc_ratio = 0.5;
  int catalyst = 16;
  int threads = 0;

  static ParamFields<InfiniPotParams> fields() {
    using P = InfiniPotParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::pot_size, "pot_size", "|M|: keys the pot holds before it is distilled", {.min = 2})
            .field(&P::compressed_size, "compressed_size",
                   "|C|: keys each KV head keeps when the pot is distilled (fewer than pot_size)", {.min = 1})
            .field(&P::nuc_ratio, "nuc_ratio",
                   "alpha: share of |C| kept by novelty (the model's surprisal), the rest by catalyst attention",
                   {.min = 0.0, .max = 1.0})
            .field(&P::catalyst, "catalyst",
                   "newest query rows that score the keys, standing in for the catalyst prompt", {.min = 1})
            .check([](const P& p) {
              if (p.compressed_size >= p.pot_size) {
                throw InputError(
                    fmt::format("infinipot.compressed_size: expected fewer keys than pot_size ({}), got {}", p.pot_size,
                                p.compressed_size));
              }
            }));
  }

  int novelty_slots() const { return static_cast<int>(std::lround(nuc_ratio * compressed_size)); }

  // The pot, or the distilled keys beside a call larger than the rest of the pot.
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int) const {
    return std::min<std::int64_t>(context,
                                  std::max<std::int64_t>(pot_size, static_cast<std::int64_t>(compressed_size) + chunk));
  }
};

class InfiniPotSession final : public LoggedSession {
 public:
  InfiniPotSession(const HeadLayout& layout, const InfiniPotParams& params)
      : LoggedSession(layout), params_(params), caches_(layout), surprisal_(layout.heads_kv) {}

  void append(const float* k, const float* v, int n) override {
    if (caches_.head(0).tokens() + n > params_.pot_size && !catalyst_.empty()) {
      Stopwatch select;
      for (int g = 0; g < layout_.heads_kv; ++g) distil(g);
      stats_.mask_seconds += select.seconds();
    }
    caches_.append(k, v, n);
    for (auto& held : surprisal_) held.resize(held.size() + n, kUnreported);
  }

  void token_surprisal(const float* surprisal, int n) override {
    if (n > caches_.head(0).tokens()) {
      throw std::invalid_argument(
          fmt::format("token_surprisal: {} tokens reported, but the pot holds only {}", n, caches_.head(0).tokens()));
    }
    for (auto& held : surprisal_) std::copy_n(surprisal, n, held.end() - n);
  }

  void attend(const float* q, int n, Phase, float* out) override {
    attend_all_kept(q, n, caches_, out, nullptr, params_.threads);
    finish_call(caches_.resident_bytes());
    remember_catalyst(q, n);
  }

 private:
  // One query row standing in for a catalyst prompt token: its position and its rows [heads_q][dim].
  struct CatalystRow {
    int position;
    std::vector<float> q;
  };

  void remember_catalyst(const float* q, int n) {
    const int first = caches_.appended() - n;
    for (int i = std::max(0, n - params_.catalyst); i < n; ++i) {
      CatalystRow row{first + i, {}};
      for (int h = 0; h < layout_.heads_q; ++h) {
        const float* src = query_row(q, h, n, i, layout_.head_dim);
        row.q.insert(row.q.end(), src, src + layout_.head_dim);
      }
      catalyst_.push_back(std::move(row));
    }
    while (static_cast<int>(catalyst_.size()) > params_.catalyst) catalyst_.pop_front();
  }

  // KV head g keeps |C| of the keys it holds: the most novel first (+inf ranks them above any attention), then the
  // catalyst's favourites.
  void distil(int g) {
    KvCache& cache = caches_.head(g);
    if (cache.tokens() <= params_.compressed_size) return;
    std::vector<float> scores = catalyst_attention(g);
    const std::vector<float>& novelty = surprisal_[g];
    if (std::none_of(novelty.begin(), novelty.end(), [](float s) { return std::isnan(s); })) {
      for (int index : top_k(novelty, params_.novelty_slots())) scores[index] = std::numeric_limits<float>::infinity();
    }
    const std::vector<int> indices = top_k(scores, params_.compressed_size);
    std::vector<float> kept_novelty;
    kept_novelty.reserve(indices.size());
    for (int index : indices) kept_novelty.push_back(novelty[index]);
    cache.keep(indices);
    surprisal_[g] = std::move(kept_novelty);
  }

  // Per key of KV head g: the probability the catalyst rows give it (each row's softmax over the held keys at or
  // before its position), summed over the rows and averaged over the group's query heads.
  std::vector<float> catalyst_attention(int g) const {
    const KvCache& cache = caches_.head(g);
    const int held = cache.tokens(), dim = layout_.head_dim;
    const WideKeys keys(cache.keys(), 0, held);
    const auto& positions = cache.positions();
    std::vector<float> scores(held, 0.0f), logits(held);
    for (const CatalystRow& row : catalyst_) {
      const int seen =
          static_cast<int>(std::upper_bound(positions.begin(), positions.end(), row.position) - positions.begin());
      if (seen == 0) continue;
      for (int h = g * group(); h < (g + 1) * group(); ++h) {
        const float* query = row.q.data() + static_cast<std::size_t>(h) * dim;
        for (int t = 0; t < seen; ++t) logits[t] = scale() * dot(query, keys.row(t), dim);
        const float top = *std::max_element(logits.begin(), logits.begin() + seen);
        float sum = 0.0f;
        for (int t = 0; t < seen; ++t) {
          logits[t] = std::exp(logits[t] - top);
          sum += logits[t];
        }
        for (int t = 0; t < seen; ++t) scores[t] += logits[t] / sum / static_cast<float>(group());
      }
    }
    return scores;
  }

  InfiniPotParams params_;
  PerHeadCaches caches_;
  std::vector<std::vector<float>> surprisal_;  // [kv head][cache index]: NaN until reported
  std::deque<CatalystRow> catalyst_;           // the newest query rows attended, oldest first
};

class InfiniPotEngine final : public Engine {
 public:
  explicit InfiniPotEngine(InfiniPotParams params) : params_(params) {}
  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return std::make_unique<InfiniPotSession>(layout, params_);
  }
  bool wants_token_surprisal() const override { return true; }
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const override {
    return params_.peak_resident_keys(context, chunk, layer);
  }

 private:
  InfiniPotParams params_;
};

const RegisterEngine registration{declared_engine<InfiniPotEngine, InfiniPotParams>({
    .name = "infinipot",
    .description =
        "InfiniPot: a pot of fixed size distilled, whenever it would overflow, to the most novel tokens (the model's "
        "surprisal) and those the newest queries (standing in for the catalyst prompt) attend most",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"pot_size", 64}, {"compressed_size", 32}, {"catalyst", 8}},
    .exact_params =
        [](int tokens) {
          return Json{{"pot_size", tokens + 1}, {"compressed_size", tokens}};
        },
})};

}  // namespace
}  // namespace ctxbench::engines
