// FlexPrefill (Lai et al. 2025, arXiv 2502.20766; bytedance/FlexPrefill `flex_prefill/ops/flex_prefill_attention.py`
// get_active_blocks, flex_prefill_attention): block-sparse prefill whose pattern and budget each query head chooses
// for itself. Queries and keys are tiled in blocks of `block_size` (key blocks from position 0, query blocks from
// the call's first query; the two coincide for a whole prompt in one call, the original's only case).
//
// Per query head, the call's last block of queries attends exactly (engines/vertical_slash.h): its probabilities,
// averaged over those queries and summed per key block, are the true block distribution; the softmax of the same
// queries' mean against every key block's mean key is the estimated one. If the square root of their
// Jensen-Shannon divergence is below `tau`, the estimate is trusted and the head is query-aware: every query block's
// mean query scores the key blocks its queries can see (softmax per query block), and the (query block, key block)
// pairs with the largest scores are kept, over the whole call, while their running sum stays within gamma x the
// number of query blocks. Otherwise the head is vertical-slash: the key blocks (verticals) and block diagonals
// (slashes) with the most mass, as many of each as the original converts from the keys (diagonals) whose largest
// probabilities first cover gamma, clamped to [min_budget, max_budget] in blocks. A query-aware head also keeps
// min_budget worth of verticals and slashes, as in the original. The first key block and the diagonal block are
// always kept. A slash of o blocks gives a query block starting at position a the keys [a - o b, a - o b + b);
// the diagonals are pooled into slashes as that band holds them for the call's last query.
//
// Decode, a lone query and short contexts (at most max(2 block_size, min_budget rounded up to blocks)) attend
// densely, as in the original (prefill-only: a query length of 1 goes to flash attention). Every key stays
// resident.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>

#include "core/metrics.h"
#include "core/timer.h"
#include "engines/baseline.h"
#include "engines/vertical_slash.h"
#include "kernels/thread_pool.h"

namespace ctxbench::engines {
namespace {

struct FlexPrefillParams {
  int block_size = 128;
  double gamma = 0.9;
  double tau = 0.1;
  int min_budget = 1024;
  int max_budget = 0;
  int threads = 0;

  static ParamFields<FlexPrefillParams> fields() {
    using P = FlexPrefillParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::block_size, "block_size", "queries and keys per block", {.min = 1})
            .field(&P::gamma, "gamma", "share of the attention each head's blocks cover", {.min = 0.0, .max = 1.0})
            .field(&P::tau, "tau",
                   "root JS divergence of estimated and true block attention below which a head is query-aware",
                   {.min = 0.0})
            .field(&P::min_budget, "min_budget", "least tokens of verticals and of slashes (rounded up to blocks)",
                   {.min = 1})
            .field(&P::max_budget, "max_budget", "most tokens of verticals and of slashes (0: no limit)", {.min = 0}));
  }
};

// Mean of rows [from, to), row(i) giving row i's `dim` floats.
template <class RowOf>
std::vector<float> mean_of_rows(int from, int to, int dim, RowOf row) {
  std::vector<double> sum(dim, 0.0);
  for (int i = from; i < to; ++i) {
    for (int c = 0; c < dim; ++c) sum[c] += row(i)[c];
  }
  std::vector<float> mean(dim);
  for (int c = 0; c < dim; ++c) mean[c] = static_cast<float>(sum[c] / (to - from));
  return mean;
}

void softmax_in_place(std::vector<double>& logits) {
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (double& x : logits) sum += (x = std::exp(x - top));
  for (double& x : logits) x /= sum;
}

// Square root of the Jensen-Shannon divergence (natural log) of two distributions, with 0 log 0 = 0.
double root_js_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double divergence = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double m = (p[i] + q[i]) / 2;
    if (p[i] > 0) divergence += 0.5 * p[i] * std::log(p[i] / m);
    if (q[i] > 0) divergence += 0.5 * q[i] * std::log(q[i] / m);
  }
  return std::sqrt(std::max(0.0, divergence));
}

// The `count` indices with the most mass, index 0 always among them.
std::vector<int> best_with_first(const std::vector<double>& mass, int count) {
  std::vector<float> scores(mass.begin(), mass.end());
  scores[0] = std::numeric_limits<float>::infinity();
  return top_k(scores, count);
}

class FlexPrefillSession final : public LoggedSession {
 public:
  FlexPrefillSession(const HeadLayout& layout, const FlexPrefillParams& params)
      : LoggedSession(layout), params_(params), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase phase, float* out) override {
    Stopwatch select;
    const int context = cache_.tokens();
    if (dense(phase, n, context)) {
      log_.begin(layout_.heads_q, n, context - n, n);
      for (int h = 0; h < layout_.heads_q; ++h) log_.set(h, 0, {{0, context}});
    } else {
      log_.begin(layout_.heads_q, n, context - n, params_.block_size);
      for (int g = 0; g < layout_.heads_kv; ++g) {
        const WideKeys keys(cache_.keys(), g, context);
        const auto mean_keys = key_block_means(keys);
        // The group's query heads choose on their own, each logging only its rows.
        std::vector<char> query_aware(group());
        kernels::parallel_for(group(), params_.threads,
                              [&](int i) { query_aware[i] = choose_blocks(q, n, g * group() + i, keys, mean_keys); });
        heads_decided_ += query_aware.size();
        query_aware_heads_ += std::count(query_aware.begin(), query_aware.end(), 1);
      }
      // Estimating read every visible key once per KV head.
      stats_.kv_bytes_read += static_cast<std::uint64_t>(context) * layout_.heads_kv * key_bytes(layout_) / 2;
    }
    stats_.mask_seconds += select.seconds();
    attend_logged(q, n, cache_, out, params_.threads);
  }

  std::vector<Measurement> extra_measurements() const override {
    if (heads_decided_ == 0) return {};
    return {make_measurement("query_aware_head_share",
                             {static_cast<double>(query_aware_heads_) / static_cast<double>(heads_decided_)})};
  }

 private:
  int block() const { return params_.block_size; }
  // Blocks that `tokens` keys fill, the last one possibly in part.
  std::int64_t blocks(std::int64_t tokens) const { return (tokens + block() - 1) / block(); }

  bool dense(Phase phase, int n, int context) const {
    const std::int64_t short_context = std::max<std::int64_t>(2 * block(), blocks(params_.min_budget) * block());
    return phase == Phase::decode || n == 1 || context <= short_context;
  }

  // The mean key of every key block of one KV head, [block][dim].
  std::vector<std::vector<float>> key_block_means(const WideKeys& keys) const {
    const int context = cache_.tokens();
    std::vector<std::vector<float>> means;
    for (int from = 0; from < context; from += block()) {
      means.push_back(
          mean_of_rows(from, std::min(context, from + block()), layout_.head_dim, [&](int t) { return keys.row(t); }));
    }
    return means;
  }

  // Keys (or diagonals) the largest entries of `mass` need to cover gamma of it, counted as the original does: the
  // entries whose running sum stays within gamma, plus one.
  int covering(std::vector<float> mass) const {
    std::sort(mass.begin(), mass.end(), std::greater<>());
    double sum = 0.0;
    int count = 0;
    for (float x : mass) {
      if ((sum += x) > params_.gamma) break;
      ++count;
    }
    return count + 1;
  }

  // Chooses query head h's blocks for the call's n queries q and logs their key ranges; returns whether the head is
  // query-aware.
  bool choose_blocks(const float* q, int n, int h, const WideKeys& keys,
                     const std::vector<std::vector<float>>& mean_keys) {
    const int context = cache_.tokens(), first = context - n, dim = layout_.head_dim;
    const int key_blocks = static_cast<int>(mean_keys.size()), query_blocks = static_cast<int>(blocks(n));
    const int observed = std::min(block(), n);
    auto [vertical, slash] = column_diagonal_mass(q, n, h, observed, keys, context, dim, scale());
    for (float& x : vertical) x /= static_cast<float>(observed);
    for (float& x : slash) x /= static_cast<float>(observed);

    // Diagonal d lies in slash o when, for the call's last query, key (context - 1 - d) lies in the band of o
    // blocks before its query block.
    const int last_in_block = (n - 1) % block();
    const auto slash_of = [&](int diagonal) { return (diagonal + block() - 1 - last_in_block) / block(); };
    std::vector<double> vertical_mass(key_blocks, 0.0), slash_mass(slash_of(context - 1) + 1, 0.0);
    for (int t = 0; t < context; ++t) vertical_mass[t / block()] += vertical[t];
    for (int d = 0; d < context; ++d) slash_mass[slash_of(d)] += slash[d];

    const auto mean_query = mean_of_rows(n - observed, n, dim, [&](int i) { return query_row(q, h, n, i, dim); });
    std::vector<double> estimated(key_blocks);
    for (int j = 0; j < key_blocks; ++j) estimated[j] = scale() * dot(mean_query.data(), mean_keys[j].data(), dim);
    softmax_in_place(estimated);
    const bool query_aware = root_js_divergence(estimated, vertical_mass) < params_.tau;

    const int least = static_cast<int>(std::min<std::int64_t>(blocks(params_.min_budget), context));
    const int most = params_.max_budget > 0 ? static_cast<int>(blocks(params_.max_budget)) : context;
    // Keys to blocks: the original divides by 128, its default block size, whatever the block size.
    const auto count = [&](const std::vector<float>& mass, int available) {
      const int wanted = query_aware ? least : std::min(std::max(covering(mass) / block() + 1, least), most);
      return std::min(wanted, available);
    };
    const auto verticals = best_with_first(vertical_mass, count(vertical, key_blocks));
    const auto slashes = best_with_first(slash_mass, count(slash, static_cast<int>(slash_mass.size())));

    std::vector<std::vector<KeyRange>> ranges(query_blocks);
    for (int b = 0; b < query_blocks; ++b) {
      const int start = first + b * block();
      for (int j : verticals) ranges[b].push_back(key_block(j));
      for (int o : slashes) {
        const int begin = start - o * block();
        ranges[b].push_back({std::max(0, begin), std::clamp(begin + block(), 0, context)});
      }
    }
    if (query_aware) add_query_aware_blocks(q, n, h, mean_keys, ranges);
    for (int b = 0; b < query_blocks; ++b) log_.set(h, b, merge_ranges(std::move(ranges[b])));
    return query_aware;
  }

  // The (query block, key block) pairs with the largest block attention (query block mean against key block mean,
  // softmax over the key blocks the query block can see) while their running sum, over the whole call, stays within
  // gamma x the number of query blocks.
  void add_query_aware_blocks(const float* q, int n, int h, const std::vector<std::vector<float>>& mean_keys,
                              std::vector<std::vector<KeyRange>>& ranges) const {
    struct Pair {
      double score;
      int query_block, key_block;
    };
    const int dim = layout_.head_dim, first = cache_.tokens() - n;
    const int query_blocks = static_cast<int>(ranges.size());
    std::vector<Pair> pairs;
    for (int b = 0; b < query_blocks; ++b) {
      const int from = b * block(), to = std::min(n, from + block());
      const auto mean_query = mean_of_rows(from, to, dim, [&](int i) { return query_row(q, h, n, i, dim); });
      std::vector<double> scores((first + to - 1) / block() + 1);  // key blocks holding a key its last query sees
      for (std::size_t j = 0; j < scores.size(); ++j) {
        scores[j] = scale() * dot(mean_query.data(), mean_keys[j].data(), dim);
      }
      softmax_in_place(scores);
      for (std::size_t j = 0; j < scores.size(); ++j) pairs.push_back({scores[j], b, static_cast<int>(j)});
    }
    std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.score > b.score; });
    double covered = 0.0;
    for (const Pair& pair : pairs) {
      if ((covered += pair.score) > params_.gamma * query_blocks) break;
      ranges[pair.query_block].push_back(key_block(pair.key_block));
    }
  }

  KeyRange key_block(int j) const { return {j * block(), std::min(cache_.tokens(), (j + 1) * block())}; }

  FlexPrefillParams params_;
  KvCache cache_;
  std::uint64_t heads_decided_ = 0;      // (query head, sparse prefill call) pairs
  std::uint64_t query_aware_heads_ = 0;  // of which query-aware
};

const RegisterEngine registration{declared_engine<FlexPrefillSession, FlexPrefillParams>({
    .name = "flex_prefill",
    .description = "FlexPrefill: per head, query-aware or vertical-slash blocks covering gamma of the attention "
                   "(prefill; decode is dense)",
    .policy = KvPolicy::masks,
    .test_params = Json{{"block_size", 16}, {"gamma", 0.5}, {"tau", 0.1}, {"min_budget", 32}, {"max_budget", 64}},
    .exact_params =
        [](int tokens) {
          return Json{{"min_budget", tokens}};
        },
})};

}  // namespace
}  // namespace ctxbench::engines
