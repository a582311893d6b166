// PyramidKV (Zefan-Cai/PyramidKV, pyramidkv_utils.py): SnapKV's observation-window scores with a layer budget
// that decreases linearly with depth (lower layers keep more), averaging SnapKV's C - W. The per-layer
// budgets come from the pyramid, so there is no budget_per_layer. At the attention level (one layer) it keeps
// the average and equals SnapKV.
#include "engines/baseline.h"
#include "engines/snapkv.h"

namespace ctxbench::engines::snapkv {
namespace {

const RegisterEngine registration{{
    .name = "pyramidkv",
    .description = "PyramidKV: SnapKV scores with linearly decreasing per-layer budgets",
    .policy = KvPolicy::evicts,
    .params = schema(true),
    .make = [](const Json& p) { return make_engine(parse(p, true)); },
    .exact_params = budget_covering,
}};

}  // namespace
}  // namespace ctxbench::engines::snapkv
