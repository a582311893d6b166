// LM-Infinite (Han et al. 2023, arXiv 2308.16137; Glaciohound/LM-Infinite `models/llama.py`,
// `models/lambda_attention.py`): a Lambda-shaped mask and a distance ceiling. Query p attends to the n_local
// newest keys (p - n_local, p] at their real distances, and to the first n_global keys that lie before that
// window at one fixed distance, `distance_limit`: the original rotates those "stationary" keys to position 0
// and the query to position min(distance_limit, kv_seq_len - 1).
//
// Keys the mask never reads again are evicted (the Lambda mask is fixed, so this changes no output); the
// original keeps its whole Hugging Face cache. The ceiling needs un-rotated keys, which only a model runtime
// hands over (Engine::open_unrotated): there the local branch uses keys rotated at their real positions and the
// global branch keeps its n_global keys un-rotated and a query copy rotated to the ceiling, and the two branches
// are merged by log-sum-exp. At the attention level keys arrive rotated, so only the mask applies.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct LmInfiniteParams {
  int n_global = 100;
  int n_local = 2048;
  int distance_limit = 2048;
  int threads = 0;

  static ParamFields<LmInfiniteParams> fields() {
    using P = LmInfiniteParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::n_global, "n_global", "first tokens every query attends (global branch)", {.min = 0})
            .field(&P::n_local, "n_local", "newest tokens every query attends, itself included (local branch)",
                   {.min = 1})
            .field(&P::distance_limit, "distance_limit",
                   "distance the global branch's keys are placed at (needs a model runtime: un-rotated keys)",
                   {.min = 0}));
  }

  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int) const {
    return std::min<std::int64_t>(context, static_cast<std::int64_t>(n_global) + n_local + chunk);
  }

  // The local branch of the query at `position`: the n_local newest keys, itself included.
  KeyRange local(int position) const { return {std::max(0, position - n_local + 1), position + 1}; }
  // The global branch: the first n_global keys before the local branch.
  KeyRange global(int position) const { return {0, std::clamp(position - n_local + 1, 0, n_global)}; }
};

class LmInfiniteSession final : public LoggedSession {
 public:
  // `rope` is set when the session is fed un-rotated queries and keys (Engine::open_unrotated).
  LmInfiniteSession(const HeadLayout& layout, const LmInfiniteParams& params, const RopeSpec* rope)
      : LoggedSession(layout), params_(params), cache_(layout), global_keys_(layout) {
    if (rope) rotator_.emplace(rope->frequencies, rope->layout);
  }

  void append(const float* k, const float* v, int n) override {
    if (!rotator_) return cache_.append(k, v, n);
    keep_global_keys(k, v, n);
    std::vector<float> rotated(k, k + static_cast<std::size_t>(layout_.heads_kv) * n * layout_.head_dim);
    rotator_->rotate_rows(rotated.data(), layout_.heads_kv, n, layout_.head_dim, cache_.appended());
    cache_.append(rotated.data(), v, n);
  }

  void attend(const float* q, int n, Phase, float* out) override {
    Stopwatch select;
    const int first = cache_.appended() - n;
    log_.begin(layout_.heads_q, n, first, 1);
    for (int i = 0; i < n; ++i) {
      const auto keys = merge_ranges({params_.global(first + i), params_.local(first + i)});
      for (int h = 0; h < layout_.heads_q; ++h) log_.set(h, i, keys);
    }
    keep_positions(cache_, log_.positions());
    stats_.mask_seconds += select.seconds();
    if (!rotator_) return attend_logged(q, n, cache_, out, params_.threads);
    attend_with_ceiling(q, n, out);
    finish_call(cache_.resident_bytes() + global_keys_.resident_bytes());
  }

 private:
  // The global branch's keys stay un-rotated (position 0 in the original).
  void keep_global_keys(const float* k, const float* v, int n) {
    const int take = std::min(n, params_.n_global - global_keys_.appended());
    if (take <= 0) return;
    global_keys_.append(first_tokens(k, n, take).data(), first_tokens(v, n, take).data(), take);
  }

  std::vector<float> first_tokens(const float* rows, int n, int take) const {
    std::vector<float> out;
    for (int h = 0; h < layout_.heads_kv; ++h) {
      const float* head = rows + static_cast<std::size_t>(h) * n * layout_.head_dim;
      out.insert(out.end(), head, head + static_cast<std::size_t>(take) * layout_.head_dim);
    }
    return out;
  }

  // The local branch over the rotated cache, the global branch over the un-rotated keys with the query at the
  // ceiling, merged by their log-sum-exp.
  void attend_with_ceiling(const float* q, int n, float* out) {
    const int first = cache_.appended() - n;
    const std::size_t rows = static_cast<std::size_t>(layout_.heads_q) * n;
    std::vector<float> local_q(q, q + rows * layout_.head_dim);
    rotator_->rotate_rows(local_q.data(), layout_.heads_q, n, layout_.head_dim, first);
    kernels::SparsePlan plan{1, {}};
    for (int h = 0; h < layout_.heads_q; ++h) {
      for (int i = 0; i < n; ++i) plan.ranges.push_back(to_indices({params_.local(first + i)}, cache_.positions()));
    }
    std::vector<float> lse(rows);
    attend_sparse(local_q.data(), n, cache_.tokens() - n, cache_, plan, out, lse.data(), params_.threads);

    Stopwatch watch;
    std::vector<float> global_out(rows * layout_.head_dim), global_lse(rows);
    attend_global(q, n, first, global_out.data(), global_lse.data());
    kernels::merge_partials(out, lse.data(), global_out.data(), global_lse.data(), static_cast<int>(rows),
                            layout_.head_dim);
    stats_.attention_seconds += watch.seconds();
  }

  // Each query row over its global keys, query rotated to min(distance_limit, position); lse -inf and zeros for
  // a row without global keys.
  void attend_global(const float* q, int n, int first, float* out, float* lse) {
    const int dim = layout_.head_dim;
    const int held = global_keys_.tokens();
    rotator_->reserve(params_.distance_limit + 1);
    std::vector<float> query(dim);
    for (int g = 0; g < layout_.heads_kv; ++g) {
      const WideKeys keys(global_keys_.keys(), g, held), values(global_keys_.values(), g, held);
      for (int h = g * group(); h < (g + 1) * group(); ++h) {
        for (int i = 0; i < n; ++i) {
          const std::size_t row = static_cast<std::size_t>(h) * n + i;
          std::copy_n(q + row * dim, dim, query.begin());
          rotator_->rotate(query.data(), std::min(params_.distance_limit, first + i));
          const int count = std::min(params_.global(first + i).end, held);
          lse[row] = softmax_row(query.data(), keys, values, count, out + row * dim);
        }
      }
    }
  }

  // out = softmax(scale q.k) v over keys [0, count); returns the log-sum-exp (-inf, out zero, if count is 0).
  float softmax_row(const float* query, const WideKeys& keys, const WideKeys& values, int count, float* out) const {
    const int dim = layout_.head_dim;
    std::fill_n(out, dim, 0.0f);
    if (count == 0) return -std::numeric_limits<float>::infinity();
    std::vector<float> logits(count);
    for (int t = 0; t < count; ++t) logits[t] = scale() * dot(query, keys.row(t), dim);
    const float top = *std::max_element(logits.begin(), logits.end());
    float sum = 0.0f;
    for (int t = 0; t < count; ++t) {
      const float w = std::exp(logits[t] - top);
      sum += w;
      for (int c = 0; c < dim; ++c) out[c] += w * values.row(t)[c];
    }
    for (int c = 0; c < dim; ++c) out[c] /= sum;
    return top + std::log(sum);
  }

  LmInfiniteParams params_;
  KvCache cache_;        // rotated keys (as given at the attention level, rotated here in a model)
  KvCache global_keys_;  // the first n_global keys un-rotated (only with un-rotated input)
  std::optional<kernels::RopeRotator> rotator_;
};

class LmInfiniteEngine final : public Engine {
 public:
  explicit LmInfiniteEngine(LmInfiniteParams params) : params_(params) {}
  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return std::make_unique<LmInfiniteSession>(layout, params_, nullptr);
  }
  bool wants_unrotated_kv() const override { return true; }
  std::unique_ptr<Session> open_unrotated(const HeadLayout& layout, const RopeSpec& rope) const override {
    return std::make_unique<LmInfiniteSession>(layout, params_, &rope);
  }
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const override {
    return params_.peak_resident_keys(context, chunk, layer);
  }

 private:
  LmInfiniteParams params_;
};

const RegisterEngine registration{declared_engine<LmInfiniteEngine, LmInfiniteParams>({
    .name = "lm_infinite",
    .description = "LM-Infinite: Lambda-shaped mask (global + local branch), global keys at a capped distance",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"n_global", 4}, {"n_local", 60}, {"distance_limit", 60}},
    .exact_params =
        [](int tokens) {
          return Json{{"n_local", tokens}};
        },
    .decode_matches_prefill = true,
})};

}  // namespace
}  // namespace ctxbench::engines
