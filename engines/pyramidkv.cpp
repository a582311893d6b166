// PyramidKV (Zefan-Cai/PyramidKV, pyramidkv_utils.py): SnapKV with a layer budget that decreases linearly with
// depth (lower layers keep more), averaging SnapKV's C - W. The per-layer budgets come from the pyramid, so there
// is no budget_per_layer. At the attention level (one layer) it keeps the average and equals SnapKV.
#include <algorithm>

#include "engines/snapkv.h"

namespace ctxbench::engines {

PrefixSchedule pyramidkv_schedule(int beta) {
  return [beta](int layer, int num_layers, int capacity, int window, int prompt) {
    if (prompt < capacity) return -1;
    const int average = capacity - window;
    int min_num = average / beta;
    int max_num = 2 * average - min_num;
    if (max_num >= prompt - window) {
      max_num = prompt - window;
      min_num = 2 * average - max_num;
    }
    if (prompt < 2 * average || num_layers <= 1) return average;
    const int steps = (max_num - min_num) / (num_layers - 1);
    return std::clamp(max_num - layer * steps, 0, prompt - window);
  };
}

namespace {

struct PyramidParams : ObservationWindow {
  UniformBudget budget{2048};  // the average max_capacity_prompt C
  int beta = 20;               // the smallest layer keeps (C - W) / beta

  static ParamFields<PyramidParams> fields() {
    return ObservationWindow::declare(
               ParamFields<PyramidParams>().field(&PyramidParams::budget, "budget",
                                                  "average max_capacity_prompt C over the layers, window included"),
               "pyramidkv")
        .field(&PyramidParams::beta, "beta", "the top layer keeps (C - W) / beta prefix keys", {.min = 1});
  }
};

class PyramidSession final : public SnapSession {
 public:
  PyramidSession(const HeadLayout& layout, const PyramidParams& params)
      : SnapSession(layout, params, params.budget, pyramidkv_schedule(params.beta)) {}
};

const RegisterEngine registration{declared_engine<PyramidSession, PyramidParams>({
    .name = "pyramidkv",
    .description = "PyramidKV: SnapKV scores with linearly decreasing per-layer budgets",
    .policy = KvPolicy::evicts,
    .test_params = Json{{"budget", 64}, {"window", 8}, {"beta", 4}},
    .exact_params = budget_covering,
})};

}  // namespace
}  // namespace ctxbench::engines
