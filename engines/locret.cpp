// Locret (Huang et al. 2024, arXiv 2410.01805; huangyuxiang03/Locret at 28995c5, `locret/inference/infer.py`
// `generate`, `locret/models/llama/modeling_llama.py`): trained retaining heads score every key as it arrives, and
// the prompt is prefilled in chunks, each attending the kept cache and itself, after which every KV head keeps its
// `budget` best-scored keys, the `stabilizers` newest among them whatever their score. Decoding attends the kept
// cache and evicts nothing.
//
// Scores: a token's key and value get one score per KV head from its layer's head (engines/locret_heads.h) over
// concat(q, k, v) before RoPE, computed once, when the token's query is attended (the queries of an attend call
// are its newest tokens). A model runtime hands over un-rotated queries and keys (Engine::open_unrotated); the
// session rotates them for attention. At the attention level keys arrive rotated and a prompt arrives without its
// queries: the heads read the keys as given and a zero query for tokens whose query was never attended.
//
// Chunks: the session evicts at the end of a prefill call once `chunk_size` tokens arrived since its last
// eviction (the runtime's prefill chunk is the call). Different from the original: it cannot tell the prompt's
// last chunk, so stabilizers are kept after every eviction (the original drops them on the last chunk, then
// prefills the final 100 tokens without eviction).
#include <algorithm>
#include <limits>
#include <memory>
#include <optional>

#include "core/source_tree.h"
#include "core/timer.h"
#include "engines/baseline.h"
#include "engines/locret_heads.h"

namespace ctxbench::engines {
namespace {

constexpr float kUnscored = std::numeric_limits<float>::quiet_NaN();
constexpr const char* kUntrained = "untrained";

struct LocretParams {
  Budget budget{6000};
  int chunk_size = 3072;
  int stabilizers = 2500;
  std::string heads = "datasets/models/ctxbench-retrieval/locret.safetensors";
  int threads = 0;

  static ParamFields<LocretParams> fields() {
    using P = LocretParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::budget, "budget", "keys each KV head keeps after a chunk (budget_size)")
            .field(&P::chunk_size, "chunk_size", "prompt tokens between evictions (chunk_size)", {.min = 1})
            .field(&P::stabilizers, "stabilizers", "newest keys kept whatever their score", {.min = 0})
            .field(&P::heads, "heads",
                   "retaining heads: a safetensors file (relative: in the source tree) trained for the model, or "
                   "\"untrained\" (seeded random heads for any layout: mechanics only)"));
  }
};

class LocretSession final : public LoggedSession {
 public:
  // `rope` is set when queries and keys arrive un-rotated (a model runtime).
  LocretSession(const HeadLayout& layout, const LocretParams& params, RetainingHead head, const RopeSpec* rope)
      : LoggedSession(layout), params_(params), head_(std::move(head)), caches_(layout), scores_(layout.heads_kv) {
    if (rope) rotator_.emplace(rope->frequencies, rope->layout);
  }

  void append(const float* k, const float* v, int n) override {
    const int dim = layout_.head_dim, kv_width = layout_.heads_kv * dim;
    std::vector<float> kv(2 * kv_width);
    for (int i = 0; i < n; ++i) {
      for (int g = 0; g < layout_.heads_kv; ++g) {
        const std::size_t at = (static_cast<std::size_t>(g) * n + i) * dim;
        std::copy_n(k + at, dim, kv.begin() + g * dim);
        std::copy_n(v + at, dim, kv.begin() + kv_width + g * dim);
      }
      unscored_.resize(unscored_.size() + head_.hidden);
      head_.key_value_part(kv.data(), unscored_.data() + unscored_.size() - head_.hidden);
    }
    if (rotator_) {
      std::vector<float> rotated(k, k + static_cast<std::size_t>(kv_width) * n);
      rotator_->rotate_rows(rotated.data(), layout_.heads_kv, n, layout_.head_dim, caches_.appended());
      caches_.append(rotated.data(), v, n);
    } else {
      caches_.append(k, v, n);
    }
    for (auto& held : scores_) held.resize(held.size() + n, kUnscored);
    since_eviction_ += n;
  }

  void attend(const float* q, int n, Phase phase, float* out) override {
    if (rotator_) {
      std::vector<float> rotated(q, q + static_cast<std::size_t>(layout_.heads_q) * n * layout_.head_dim);
      rotator_->rotate_rows(rotated.data(), layout_.heads_q, n, layout_.head_dim, caches_.appended() - n);
      attend_all_kept(rotated.data(), n, caches_, out, nullptr, params_.threads);
    } else {
      attend_all_kept(q, n, caches_, out, nullptr, params_.threads);
    }
    Stopwatch select;
    score_unscored(q, n);
    if (phase == Phase::prefill && since_eviction_ >= params_.chunk_size) {
      for (int g = 0; g < layout_.heads_kv; ++g) evict(g);
      since_eviction_ = 0;
    }
    stats_.mask_seconds += select.seconds();
    finish_call(caches_.resident_bytes());
  }

 private:
  // Scores every token appended since the last attend call; the call's n queries belong to the newest n.
  void score_unscored(const float* q, int n) {
    const int dim = layout_.head_dim, pending = static_cast<int>(unscored_.size()) / head_.hidden;
    std::vector<float> query(head_.query_width), token_scores(head_.outputs);
    for (int i = std::max(0, n - pending); i < n; ++i) {
      for (int h = 0; h < layout_.heads_q; ++h) std::copy_n(query_row(q, h, n, i, dim), dim, query.begin() + h * dim);
      head_.add_query_part(query.data(), unscored_.data() + static_cast<std::size_t>(pending - n + i) * head_.hidden);
    }
    for (int t = 0; t < pending; ++t) {
      head_.finish(unscored_.data() + static_cast<std::size_t>(t) * head_.hidden, token_scores.data());
      for (int g = 0; g < layout_.heads_kv; ++g) scores_[g][scores_[g].size() - pending + t] = token_scores[g];
    }
    unscored_.clear();
  }

  // KV head g keeps its `budget` best-scored keys, the stabilizers among them.
  void evict(int g) {
    KvCache& cache = caches_.head(g);
    const int held = cache.tokens();
    const int budget = params_.budget.tokens(cache.appended(), layout_.layer);
    if (held <= budget) return;
    const int newest = std::min(params_.stabilizers, budget);
    const int candidates = held - newest;
    std::vector<int> indices = top_k(std::span(scores_[g]).first(candidates), budget - newest);
    for (int t = candidates; t < held; ++t) indices.push_back(t);
    std::vector<float> kept_scores;
    kept_scores.reserve(indices.size());
    for (int index : indices) kept_scores.push_back(scores_[g][index]);
    cache.keep(indices);
    scores_[g] = std::move(kept_scores);
  }

  LocretParams params_;
  RetainingHead head_;
  PerHeadCaches caches_;
  std::vector<std::vector<float>> scores_;  // [kv head][cache index]
  std::vector<float> unscored_;  // [token][hidden]: fc1's key and value part, tokens appended since the last attend
  std::optional<kernels::RopeRotator> rotator_;
  int since_eviction_ = 0;
};

class LocretEngine final : public Engine {
 public:
  explicit LocretEngine(LocretParams params) : params_(std::move(params)) {
    if (params_.heads != kUntrained) {
      file_ = std::make_shared<const RetainingHeadsFile>(from_source_tree(params_.heads).string());
    }
  }
  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return std::make_unique<LocretSession>(layout, params_, head(layout), nullptr);
  }
  bool wants_unrotated_kv() const override { return true; }
  std::unique_ptr<Session> open_unrotated(const HeadLayout& layout, const RopeSpec& rope) const override {
    return std::make_unique<LocretSession>(layout, params_, head(layout), &rope);
  }

 private:
  RetainingHead head(const HeadLayout& layout) const { return file_ ? file_->layer(layout) : untrained_head(layout); }

  LocretParams params_;
  std::shared_ptr<const RetainingHeadsFile> file_;
};

const RegisterEngine registration{declared_engine<LocretEngine, LocretParams>({
    .name = "locret",
    .description =
        "Locret: trained retaining heads score each key from its token's q, k, v; after each prompt chunk every KV "
        "head keeps its best-scored keys and the newest (stabilizers); needs heads trained for the model",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"budget", 64}, {"chunk_size", 32}, {"stabilizers", 16}, {"heads", kUntrained}},
    .exact_params =
        [](int tokens) {
          return Json{{"budget", tokens}, {"heads", kUntrained}};
        },
})};

}  // namespace
}  // namespace ctxbench::engines
