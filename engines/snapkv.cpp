// SnapKV (FasterDecoding/SnapKV, snapkv_utils.py): the prefill itself is exact; at its end, once the prompt
// reaches the capacity C, every KV head keeps the C - W prefix keys that the last W queries (the observation
// window) attended to most, after pooling, plus the W newest keys, and evicts the rest. Decode attends to
// what was kept plus the new tokens, without further compression. Scores are the window queries' softmax
// probabilities summed over the window; with GQA they are averaged over the query heads of a KV head (as
// NVIDIA/kvpress does; the original is multi-head only). A prefill call with fewer than W queries observes
// the queries it has.
#include "engines/snapkv.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines::snapkv {
namespace {

class SnapSession final : public LoggedSession {
 public:
  SnapSession(const HeadLayout& layout, const Params& params)
      : LoggedSession(layout), params_(params), caches_(layout) {}

  void append(const float* k, const float* v, int n) override { caches_.append(k, v, n); }

  void attend(const float* q, int n, Phase phase, float* out) override {
    std::vector<float> lse(static_cast<std::size_t>(layout_.heads_q) * n);
    attend_all_kept(q, n, caches_, out, lse.data(), params_.threads);
    if (phase == Phase::prefill) {
      Stopwatch select;
      for (int g = 0; g < layout_.heads_kv; ++g) compress(g, q, n, lse);
      stats_.mask_seconds += select.seconds();
    }
    finish_call(caches_.resident_bytes());
  }

 private:
  void compress(int g, const float* q, int n, const std::vector<float>& lse) {
    KvCache& cache = caches_.head(g);
    const int prompt = cache.tokens();
    const int capacity = params_.budget.tokens(prompt, layout_.layer);
    if (capacity >= prompt) return;
    const int window = std::min(params_.window, capacity);
    const int keep = prefix_keep(params_, capacity, window, prompt, layout_.layer, layout_.num_layers);
    if (keep < 0) return;
    const int prefix = prompt - window;
    const auto scores = pool(window_scores(g, q, n, lse, prefix), params_.kernel, params_.max_pool);
    std::vector<int> kept = top_k(scores, keep);
    for (int t = prefix; t < prompt; ++t) kept.push_back(t);
    cache.keep(kept);
  }

  // Probability mass the observation queries put on each prefix key, averaged over the group's heads.
  std::vector<float> window_scores(int g, const float* q, int n, const std::vector<float>& lse, int prefix) const {
    const int observed = std::min(params_.window, n);
    const WideKeys keys(caches_.head(g).keys(), 0, prefix);
    std::vector<float> scores(prefix, 0.0f);
    for (int h = g * group(); h < (g + 1) * group(); ++h) {
      for (int i = n - observed; i < n; ++i) {
        const float* row = query_row(q, h, n, i, layout_.head_dim);
        const float row_lse = lse[static_cast<std::size_t>(h) * n + i];
        for (int t = 0; t < prefix; ++t)
          scores[t] += std::exp(scale() * dot(row, keys.row(t), layout_.head_dim) - row_lse);
      }
    }
    for (float& s : scores) s /= static_cast<float>(group());
    return scores;
  }

  Params params_;
  PerHeadCaches caches_;
};

}  // namespace

std::vector<float> pool(std::span<const float> x, int kernel, bool max_pool) {
  const int n = static_cast<int>(x.size()), half = kernel / 2;
  std::vector<float> out(n);
  for (int i = 0; i < n; ++i) {
    const int lo = std::max(0, i - half), hi = std::min(n - 1, i + half);
    float acc = max_pool ? x[lo] : 0.0f;
    for (int j = lo; j <= hi; ++j) acc = max_pool ? std::max(acc, x[j]) : acc + x[j];
    out[i] = max_pool ? acc : acc / static_cast<float>(kernel);
  }
  return out;
}

int prefix_keep(const Params& params, int capacity, int window, int prompt, int layer, int num_layers) {
  if (prompt < capacity) return -1;
  const int average = capacity - window;
  if (!params.pyramid) return average;
  int min_num = average / params.beta;
  int max_num = 2 * average - min_num;
  if (max_num >= prompt - window) {
    max_num = prompt - window;
    min_num = 2 * average - max_num;
  }
  if (prompt < 2 * average || num_layers <= 1) return average;
  const int steps = (max_num - min_num) / (num_layers - 1);
  return std::clamp(max_num - layer * steps, 0, prompt - window);
}

std::unique_ptr<Engine> make_engine(Params params) { return session_engine<SnapSession>(std::move(params)); }

ParamSchema schema(bool pyramid) {
  ParamSchema s = {
      Budget::spec(2048, pyramid ? "average max_capacity_prompt C over the layers, window included"
                                 : "max_capacity_prompt C: keys kept after the prefill, window included"),
      integer_param("window", 32, "observation window W (queries scored, newest keys kept)"),
      integer_param("kernel", 7, "pooling kernel size (odd)"),
      {.name = "pooling",
       .type = ParamType::string,
       .default_value = "max",
       .help = "pooling of the window scores",
       .choices = {"max", "avg"}},
      threads_param(),
  };
  if (pyramid) {
    s.push_back(integer_param("beta", 20, "the top layer keeps (C - W) / beta prefix keys"));
  } else {
    s.push_back(Budget::per_layer_spec());
  }
  return s;
}

Params parse(const Json& p, bool pyramid) {
  const std::string name = pyramid ? "pyramidkv" : "snapkv";
  const int kernel = p.at("kernel").get<int>();
  if (kernel % 2 == 0) throw InputError(fmt::format("{}.kernel: expected an odd pooling kernel, got {}", name, kernel));
  Params params{.budget = Budget::parse(p.at("budget"), pyramid ? Json() : p.at("budget_per_layer"), name),
                .window = p.at("window").get<int>(),
                .kernel = kernel,
                .max_pool = p.at("pooling").get<std::string>() == "max",
                .pyramid = pyramid,
                .beta = pyramid ? p.at("beta").get<int>() : 20,
                .threads = p.at("threads").get<int>()};
  return params;
}

namespace {

const RegisterEngine registration{{
    .name = "snapkv",
    .description = "SnapKV: after the prefill, per-head top keys by pooled observation-window attention",
    .policy = KvPolicy::evicts,
    .params = schema(false),
    .make = [](const Json& p) { return make_engine(parse(p, false)); },
    .exact_params = budget_covering,
}};

}  // namespace
}  // namespace ctxbench::engines::snapkv
