// SnapKV (FasterDecoding/SnapKV, snapkv_utils.py): the prefill itself is exact; at its end, once the prompt
// reaches the capacity C, every KV head keeps the C - W prefix keys that the last W queries (the observation
// window) attended to most, after pooling, plus the W newest keys, and evicts the rest. Decode attends to
// what was kept plus the new tokens, without further compression. Scores are the window queries' softmax
// probabilities summed over the window; with GQA they are averaged over the query heads of a KV head (as
// NVIDIA/kvpress does; the original is multi-head only). A prefill call with fewer than W queries observes
// the queries it has.
#include "engines/snapkv.h"

#include <algorithm>

namespace ctxbench::engines {

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

int snapkv_schedule(int, int, int capacity, int window, int prompt) {
  return prompt < capacity ? -1 : capacity - window;
}

SnapSession::SnapSession(const HeadLayout& layout, const ObservationWindow& observation, const Budget& budget,
                         PrefixSchedule schedule)
    : ScoredEvictionSession(layout, observation.threads),
      observation_(observation),
      budget_(budget),
      schedule_(std::move(schedule)) {}

std::optional<ScoredEvictionSession::Keep> SnapSession::compression(int g, const Call& call) const {
  if (call.phase != Phase::prefill) return std::nullopt;
  const int prompt = caches_.head(g).tokens();
  const int capacity = budget_.tokens(prompt, layout_.layer);
  if (capacity >= prompt) return std::nullopt;
  const int window = std::min(observation_.window, capacity);
  const int keep = schedule_(layout_.layer, layout_.num_layers, capacity, window, prompt);
  if (keep < 0) return std::nullopt;
  return Keep{keep, window};
}

// Probability mass the observation queries put on each prefix key, averaged over the group's heads, pooled.
std::vector<float> SnapSession::scores(int g, const Call& call, int candidates) const {
  const int observed = std::min(observation_.window, call.n);
  std::vector<float> mass(candidates, 0.0f);
  add_attention(g, call, call.n - observed, candidates, mass);
  for (float& s : mass) s /= static_cast<float>(group());
  return pool(mass, observation_.kernel, observation_.max_pool);
}

namespace {

struct SnapParams : ObservationWindow {
  Budget budget{2048};  // max_capacity_prompt C: keys kept after the prefill, window included

  static ParamFields<SnapParams> fields() {
    return ObservationWindow::declare(
        ParamFields<SnapParams>().field(&SnapParams::budget, "budget",
                                        "max_capacity_prompt C: keys kept after the prefill, window included"),
        "snapkv");
  }
};

class SnapKvSession final : public SnapSession {
 public:
  SnapKvSession(const HeadLayout& layout, const SnapParams& params)
      : SnapSession(layout, params, params.budget, snapkv_schedule) {}
};

const RegisterEngine registration{declared_engine<SnapKvSession, SnapParams>({
    .name = "snapkv",
    .description = "SnapKV: after the prefill, per-head top keys by pooled observation-window attention",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"budget", 64}, {"window", 8}},
    .exact_params = budget_covering,
})};

}  // namespace
}  // namespace ctxbench::engines
