#include "kernels/attention.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "kernels/attention_cpu.h"
#include "kernels/thread_pool.h"
#include "kernels/tile_math.h"
#include "kernels/work_plan.h"

namespace ctxbench::kernels {
namespace {

PlanLimits cpu_limits(int threads) {
  PlanLimits limits;
  limits.max_rows = 128;
  // Many items per thread so that uneven items (causal blocks, sparse ranges, a core shared with another
  // process) still balance; decode splits each head's keys to get there.
  limits.min_items = threads > 1 ? 16 * threads : 1;
  limits.min_split_keys = 2048;
  limits.key_alignment = cpu::kKeyTile;
  return limits;
}

// Folds the partial rows of each split item group into the output.
void merge_groups(const WorkPlan& plan, const std::vector<float>& partial_out, const std::vector<float>& partial_lse,
                  const cpu::RowSink& final_sink) {
  const int dim = final_sink.dim;
  for (const MergeGroup& group : plan.merges) {
    const WorkItem& first = plan.items[group.first_item];
    for (int r = 0; r < first.rows(); ++r) {
      const std::size_t index = final_sink.row_index(first, plan.heads.data(), r);
      float* out = final_sink.out + index * dim;
      float lse = partial_lse[first.partial_row + r];
      std::copy_n(partial_out.data() + static_cast<std::size_t>(first.partial_row + r) * dim, dim, out);
      for (int i = 1; i < group.item_count; ++i) {
        const WorkItem& part = plan.items[group.first_item + i];
        tile::merge_partial(out, &lse, partial_out.data() + static_cast<std::size_t>(part.partial_row + r) * dim,
                            partial_lse[part.partial_row + r], dim);
      }
      if (final_sink.lse) final_sink.lse[index] = lse;
    }
  }
}

void run_plan(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout, const WorkPlan& plan,
              AttentionOutput out, int threads) {
  std::vector<float> partial_out(static_cast<std::size_t>(plan.partial_rows) * q.dim);
  std::vector<float> partial_lse(plan.partial_rows);
  const cpu::RowSink final_sink{out.out, out.lse, q.dim, false, q.tokens};
  const cpu::RowSink partial_sink{partial_out.data(), partial_lse.data(), q.dim, true, q.tokens};

  // Largest items first, handed out dynamically.
  std::vector<int> order(plan.items.size());
  std::iota(order.begin(), order.end(), 0);
  auto cost = [&](int i) { return plan.items[i].keys * plan.items[i].rows(); };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return cost(a) > cost(b); });
  parallel_for(static_cast<int>(order.size()), threads, [&](int i) {
    const WorkItem& item = plan.items[order[i]];
    cpu::attend_item({q, k, v, layout, plan, item}, item.partial_row >= 0 ? partial_sink : final_sink);
  });
  merge_groups(plan, partial_out, partial_lse, final_sink);
}

}  // namespace

int SparsePlan::num_query_blocks(int query_tokens) const { return (query_tokens + query_block - 1) / query_block; }

const std::vector<KeyRange>& SparsePlan::at(int head, int block, int query_tokens) const {
  return ranges[static_cast<std::size_t>(head) * num_query_blocks(query_tokens) + block];
}

void check_shapes(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("attention shapes: " + what); };
  if (q.dim != k.dim || k.dim != v.dim) fail("head_dim of q, k, v differ");
  if (q.dim <= 0) fail("head_dim must be positive");
  if (k.heads != v.heads || k.tokens != v.tokens) fail("k and v have different heads or tokens");
  if (k.heads <= 0 || q.heads % k.heads != 0) fail("query heads must be a multiple of kv heads");
  if (q.tokens < 0) fail("negative query token count");
  if (layout.first_query_pos < 0 || layout.first_query_pos + q.tokens > k.tokens) {
    fail("queries at positions " + std::to_string(layout.first_query_pos) + ".." +
         std::to_string(layout.first_query_pos + q.tokens - 1) + " need that many keys, have " +
         std::to_string(k.tokens));
  }
  const std::size_t row = static_cast<std::size_t>(k.tokens) * k.dim;
  if (k.heads > 1 && (k.head_stride < row || v.head_stride < row)) fail("head_stride is smaller than tokens * dim");
}

void dense_attention(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout,
                     AttentionOutput out, int threads) {
  check_shapes(q, k, v, layout);
  threads = resolve_threads(threads);
  run_plan(q, k, v, layout, plan_dense(q, k, layout, cpu_limits(threads)), out, threads);
}

void sparse_attention(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout,
                      const SparsePlan& plan, AttentionOutput out, int threads) {
  check_shapes(q, k, v, layout);
  threads = resolve_threads(threads);
  run_plan(q, k, v, layout, plan_sparse(q, k, layout, plan, cpu_limits(threads)), out, threads);
}

void merge_partials(float* out_a, float* lse_a, const float* out_b, const float* lse_b, int rows, int dim) {
  for (int r = 0; r < rows; ++r) {
    const std::size_t offset = static_cast<std::size_t>(r) * dim;
    tile::merge_partial(out_a + offset, lse_a + r, out_b + offset, lse_b[r], dim);
  }
}

}  // namespace ctxbench::kernels
