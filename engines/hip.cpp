// HiP v1.1 (hierarchically pruned attention): per query head and block of b_q queries, a hierarchical top-k
// picks k keys in blocks of b_k (engines/hip_mask.h); the block then attends to the sinks, those blocks and
// the sliding window. Decoding reuses a step's mask for `refresh_interval` steps while the window keeps
// moving with the query. Every key stays resident: the method saves compute, not memory.
#include <cmath>

#include "core/metrics.h"
#include "core/timer.h"
#include "engines/block_sparse_session.h"
#include "engines/budget.h"
#include "engines/hip_mask.h"

namespace ctxbench::engines {
namespace {

using hip::KeyRange;

struct HipParams {
  Budget budget{512};  // k, resolved per call
  int block_size_q = 64;
  int block_stride_q = 2;
  int block_size_k = 2;
  int sinks = 256;
  int window = 1024;
  int dense_layers = 3;
  int refresh_interval = 8;
  int threads = 0;

  // The mask generator's parameters choosing `k` keys.
  hip::HipMaskParams mask(int k) const {
    return {.mask_k = k,
            .block_size_q = block_size_q,
            .block_stride_q = block_stride_q,
            .block_size_k = block_size_k,
            .sinks = sinks,
            .window = window};
  }

  static ParamFields<HipParams> fields() {
    using P = HipParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::budget, "budget",
                   "k: keys chosen by the hierarchical top-k per query block, besides sinks and window")
            .field(&P::block_size_q, "block_size_q", "b_q: queries sharing one mask", {.min = 1})
            .field(&P::block_stride_q, "block_stride_q", "b_sq: every b_sq-th query of a block scores keys", {.min = 1})
            .field(&P::block_size_k, "block_size_k", "b_k: keys per selectable block", {.min = 1})
            .field(&P::sinks, "sinks", "leading keys always attended (a multiple of b_k)", {.min = 0})
            .field(&P::window, "window", "sliding window of recent keys always attended (a multiple of b_k)",
                   {.min = 0})
            .field(&P::dense_layers, "dense_layers",
                   "in a model (num_layers > 1), layers below this index use dense attention; a lone "
                   "attention-level layer is always sparse",
                   {.min = 0})
            .field(&P::refresh_interval, "refresh_interval", "decode: rebuild the mask every this many steps",
                   {.min = 1})
            // k comes from the budget on each call; any k >= 1 checks the rest.
            .check([](const P& p) { p.mask(1).validate("hip"); }));
  }
};

class HipSession final : public hip::BlockSparseSession {
 public:
  HipSession(const HeadLayout& layout, const HipParams& s)
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
    return {make_measurement("mask_key_bytes_read", {static_cast<double>(counters_.key_rows_read * key_row_bytes())}),
            make_measurement("mask_builds", {static_cast<double>(mask_builds_)})};
  }

 private:
  std::uint64_t key_row_bytes() const {
    return static_cast<std::uint64_t>(layout_.head_dim) * kernels::dtype_bytes(layout_.kv_dtype);
  }

  // selected_[head * blocks + block]: first keys of the chosen key blocks.
  void build_masks(const float* q, int n) {
    const hip::HipMaskParams p = s_.mask(s_.budget.tokens(cache_.tokens(), layout_.layer));
    const int blocks = (n + p.block_size_q - 1) / p.block_size_q;
    const int first_position = cache_.tokens() - n;
    const hip::KeyRows keys(cache_.keys());
    const int d = layout_.head_dim;
    selected_.assign(static_cast<std::size_t>(layout_.heads_q) * blocks, {});
    // A task is one query block of `heads` query heads of a KV group, which search in step and share the key rows
    // they score. Decode searches the whole group together (each head has one query); with a block's many sampled
    // queries per head the group's queries no longer fit L1 together, and prefill measured 8% slower that way.
    const int heads = n == 1 ? group() : 1;
    const int tasks = layout_.heads_q / heads * blocks;
    std::vector<hip::MaskCounters> counters(tasks);
    hip::parallel_for(tasks, s_.threads, [&](int task) {
      const int first_head = task / blocks * heads, block = task % blocks;
      const int first = block * p.block_size_q;
      std::vector<hip::QueryBlock> queries;
      for (int head = first_head; head < first_head + heads; ++head) {
        queries.push_back({q + (static_cast<std::size_t>(head) * n + first) * d, std::min(p.block_size_q, n - first),
                           first_position + first});
      }
      const auto selected = hip::select_key_blocks_for_group(p, queries, keys, first_head / group(), &counters[task]);
      for (int i = 0; i < heads; ++i)
        selected_[static_cast<std::size_t>(first_head + i) * blocks + block] = selected[i];
    });
    for (const auto& c : counters) counters_.key_rows_read += c.key_rows_read;
  }

  kernels::SparsePlan plan(int n) const {
    const int blocks = (n + s_.block_size_q - 1) / s_.block_size_q;
    return block_plan(n, s_.block_size_q, s_.sinks, s_.window, [&](int h, int b) {
      std::vector<KeyRange> chosen;
      for (int key : selected_[static_cast<std::size_t>(h) * blocks + b])
        chosen.push_back({key, key + s_.block_size_k});
      return chosen;
    });
  }

  HipParams s_;
  bool dense_;
  bool decode_mask_ = false;  // selected_ holds a decode step's mask that later steps may reuse
  std::uint64_t decode_steps_ = 0;
  std::uint64_t mask_builds_ = 0;
  std::vector<std::vector<int>> selected_;
  hip::MaskCounters counters_;
};

const RegisterEngine registration{declared_engine<HipSession, HipParams>({
    .name = "hip",
    .description = "HiP v1.1: hierarchical top-k key blocks per query block + sinks + sliding window",
    .policy = KvPolicy::masks,
    .test_params = Json{{"budget", 32},
                        {"block_size_q", 16},
                        {"block_stride_q", 2},
                        {"block_size_k", 4},
                        {"sinks", 16},
                        {"window", 32},
                        {"refresh_interval", 3}},
    .exact_params =
        [](int tokens) {
          return Json{{"budget", std::max(tokens, 1)}, {"refresh_interval", 1}};
        },
})};

}  // namespace
}  // namespace ctxbench::engines
