// HiP v1.1 (hierarchically pruned attention): per query head and block of b_q queries, a hierarchical top-k
// picks k keys in blocks of b_k (engines/hip_mask.h); the block then attends to the sinks, those blocks and
// the sliding window. Decoding reuses a step's mask for `refresh_interval` steps while the window keeps
// moving with the query. Every key stays resident: the method saves compute, not memory.
#include <cmath>

#include "core/timer.h"
#include "engines/block_sparse_session.h"
#include "engines/budget.h"
#include "engines/hip_mask.h"

namespace ctxbench::engines {
namespace {

using hip::KeyRange;

struct HipSettings {
  hip::HipMaskParams mask;  // mask_k is resolved from the budget per call
  Budget budget;
  int dense_layers = 3;
  int refresh_interval = 8;
  int threads = 0;
};

class HipSession final : public hip::BlockSparseSession {
 public:
  HipSession(const HeadLayout& layout, const HipSettings& s)
      : BlockSparseSession(layout, s.threads),
        s_(s),
        // The first layers stay dense in a model; at the attention level the one layer is a sparse layer.
        dense_(layout.num_layers > 1 && layout.layer < s.dense_layers) {}

  void attend(const float* q, int n, Phase phase, float* out) override {
    if (dense_) return attend_dense(q, n, out);
    const bool decode_step = phase == Phase::decode && n == 1;
    const bool refresh = !decode_step || !decode_mask_ || decode_steps_ % s_.refresh_interval == 0;
    if (decode_step) ++decode_steps_;
    if (refresh) {
      Stopwatch watch;
      build_masks(q, n);
      stats_.mask_seconds += watch.seconds();
      ++mask_builds_;
    }
    decode_mask_ = decode_step;
    attend_plan(q, n, plan(n), out);
  }

  std::vector<Measurement> extra_measurements() const override {
    return {{"mask_key_bytes_read", "B", {static_cast<double>(counters_.key_rows_read * key_row_bytes())}},
            {"mask_builds", "calls", {static_cast<double>(mask_builds_)}}};
  }

 private:
  std::uint64_t key_row_bytes() const {
    return static_cast<std::uint64_t>(layout_.head_dim) * kernels::dtype_bytes(layout_.kv_dtype);
  }

  // selected_[head * blocks + block]: first keys of the chosen key blocks.
  void build_masks(const float* q, int n) {
    hip::HipMaskParams p = s_.mask;
    p.mask_k = s_.budget.tokens(cache_.tokens(), layout_.layer);
    const int blocks = (n + p.block_size_q - 1) / p.block_size_q;
    const int first_position = cache_.tokens() - n;
    const hip::KeyRows keys(cache_.keys());
    const int d = layout_.head_dim;
    selected_.assign(static_cast<std::size_t>(layout_.heads_q) * blocks, {});
    std::vector<hip::MaskCounters> counters(selected_.size());
    hip::parallel_for(static_cast<int>(selected_.size()), s_.threads, [&](int task) {
      const int head = task / blocks, block = task % blocks;
      const int first = block * p.block_size_q;
      const hip::QueryBlock query{q + (static_cast<std::size_t>(head) * n + first) * d,
                                  std::min(p.block_size_q, n - first), first_position + first};
      selected_[task] = hip::select_key_blocks(p, query, keys, head / group(), &counters[task]);
    });
    for (const auto& c : counters) counters_.key_rows_read += c.key_rows_read;
  }

  kernels::SparsePlan plan(int n) const {
    const int block_size = s_.mask.block_size_q;
    const int blocks = (n + block_size - 1) / block_size;
    const int first_position = cache_.tokens() - n;
    kernels::SparsePlan out{.query_block = block_size, .ranges = {}};
    out.ranges.resize(static_cast<std::size_t>(layout_.heads_q) * blocks);
    for (int h = 0; h < layout_.heads_q; ++h) {
      for (int b = 0; b < blocks; ++b) {
        std::vector<KeyRange> chosen;
        for (int key : selected_[static_cast<std::size_t>(h) * blocks + b]) {
          chosen.push_back({key, key + s_.mask.block_size_k});
        }
        const int first = first_position + b * block_size;
        const int last = first_position + std::min(n, (b + 1) * block_size) - 1;
        out.ranges[static_cast<std::size_t>(h) * blocks + b] =
            hip::block_ranges(s_.mask.sinks, s_.mask.window, std::move(chosen), first, last);
      }
    }
    return out;
  }

  HipSettings s_;
  bool dense_;
  bool decode_mask_ = false;  // selected_ holds a decode step's mask that later steps may reuse
  std::uint64_t decode_steps_ = 0;
  std::uint64_t mask_builds_ = 0;
  std::vector<std::vector<int>> selected_;
  hip::MaskCounters counters_;
};

std::unique_ptr<Engine> make(const Json& p) {
  HipSettings s;
  s.budget = Budget::parse(p.at("budget"), p.at("budget_per_layer"), "hip");
  s.mask.block_size_q = p.at("block_size_q").get<int>();
  s.mask.block_stride_q = p.at("block_stride_q").get<int>();
  s.mask.block_size_k = p.at("block_size_k").get<int>();
  s.mask.sinks = p.at("sinks").get<int>();
  s.mask.window = p.at("window").get<int>();
  s.dense_layers = p.at("dense_layers").get<int>();
  s.refresh_interval = p.at("refresh_interval").get<int>();
  s.threads = p.at("threads").get<int>();
  try {
    s.mask.validate("hip");
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  return session_engine<HipSession>(std::move(s));
}

ParamSpec integer(const std::string& name, int value, const std::string& help, int min) {
  return {.name = name, .type = ParamType::integer, .default_value = value, .help = help, .min = min};
}

const RegisterEngine registration{{
    .name = "hip",
    .description = "HiP v1.1: hierarchical top-k key blocks per query block + sinks + sliding window",
    .policy = KvPolicy::masks,
    .params = {Budget::spec(512, "k: keys chosen by the hierarchical top-k per query block, besides sinks and window"),
               Budget::per_layer_spec(), integer("block_size_q", 64, "b_q: queries sharing one mask", 1),
               integer("block_stride_q", 2, "b_sq: every b_sq-th query of a block scores keys", 1),
               integer("block_size_k", 2, "b_k: keys per selectable block", 1),
               integer("sinks", 256, "leading keys always attended (a multiple of b_k)", 0),
               integer("window", 1024, "sliding window of recent keys always attended (a multiple of b_k)", 0),
               integer("dense_layers", 3,
                       "in a model (num_layers > 1), layers below this index use dense attention; a lone "
                       "attention-level layer is always sparse",
                       0),
               integer("refresh_interval", 8, "decode: rebuild the mask every this many steps", 1),
               integer("threads", 0, "worker threads (0: all cores)", 0)},
    .make = make,
    .exact_params =
        [](int tokens) {
          return Json{{"budget", std::max(tokens, 1)}, {"refresh_interval", 1}};
        },
}};

}  // namespace
}  // namespace ctxbench::engines
