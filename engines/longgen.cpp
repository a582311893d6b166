// LongGen's layer pattern (Ge et al. 2024, "A Little Goes a Long Way: Efficient Long Context Training and
// Inference with Partial Contexts", arXiv 2410.01485): full attention on the middle third of the layers, and on
// the others (the bottom and top thirds) attention sinks plus a sliding window, whose keys outside the window are
// evicted. The paper fine-tunes the model with this pattern during length extension; here it is applied
// training-free to whatever model runs, so it measures the pattern, not LongGen's trained model.
//
// Each layer is a registered engine's session: `dense` on the full layers, `streaming_llm` (sinks + newest keys,
// per query) on the others. A lone attention-level layer (num_layers 1) is a sparse layer, as for HiP.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct LongGenParams {
  UniformBudget budget{4096};
  int sinks = 64;
  std::vector<int> full_layers = {};
  int threads = 0;

  static ParamFields<LongGenParams> fields() {
    using P = LongGenParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::budget, "budget", "keys per query on the sparse layers: sinks + sliding window")
            .field(&P::sinks, "sinks", "first tokens every query of a sparse layer attends", {.min = 0})
            .field(&P::full_layers, "full_layers",
                   "layers with full attention in a model (empty: the middle third, round(num_layers / 3) layers)",
                   {.min = 0}));
  }

  bool full_layer(const HeadLayout& layout) const {
    if (layout.num_layers <= 1) return false;
    if (!full_layers.empty()) {
      return std::find(full_layers.begin(), full_layers.end(), layout.layer) != full_layers.end();
    }
    const int full = static_cast<int>(std::lround(layout.num_layers / 3.0));
    const int first = (layout.num_layers - full) / 2;
    return layout.layer >= first && layout.layer < first + full;
  }

  // The plan does not say how many layers the model has, so with the default middle third every layer may be a
  // full one (an upper bound); explicit full_layers are counted exactly.
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const {
    const bool sparse =
        !full_layers.empty() && std::find(full_layers.begin(), full_layers.end(), layer) == full_layers.end();
    if (!sparse) return context;
    const int at_most = static_cast<int>(std::min<std::int64_t>(context, std::numeric_limits<int>::max()));
    return std::min<std::int64_t>(context, budget.tokens(at_most) + chunk);
  }
};

std::unique_ptr<Engine> registered(const std::string& name, const Json& params) {
  const EngineInfo& info = EngineRegistry::instance().get(name, "longgen");
  return info.make(resolve_params(info.params, params, "longgen: " + name));
}

class LongGenEngine final : public Engine {
 public:
  explicit LongGenEngine(LongGenParams params)
      : params_(std::move(params)),
        full_(registered("dense", Json{{"threads", params_.threads}})),
        sparse_(registered(
            "streaming_llm",
            Json{{"budget", params_.budget.value()}, {"sinks", params_.sinks}, {"threads", params_.threads}})) {}

  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return (params_.full_layer(layout) ? full_ : sparse_)->open(layout);
  }
  std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const override {
    return params_.peak_resident_keys(context, chunk, layer);
  }

 private:
  LongGenParams params_;
  std::unique_ptr<Engine> full_, sparse_;
};

const RegisterEngine registration{declared_engine<LongGenEngine, LongGenParams>({
    .name = "longgen",
    .description = "LongGen's pattern, training-free: full attention on the middle third of the layers, attention "
                   "sinks + sliding window (older keys evicted) on the others; a lone layer is a sparse one",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"budget", 64}, {"sinks", 4}},
    .exact_params = budget_covering,
    .decode_matches_prefill = true,
})};

}  // namespace
}  // namespace ctxbench::engines
