#include "engines/block_sparse_session.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/timer.h"

namespace ctxbench::engines::hip {

std::vector<KeyRange> BlockSparseSession::attended(int head, int query) const {
  const int position = last_first_position_ + query;
  if (plan_.ranges.empty()) return {{0, position + 1}};
  return visible_ranges(plan_.at(head, query / plan_.query_block, last_queries_), position);
}

int BlockSparseSession::queries_in_block(int block, int n) const {
  return std::min(plan_.query_block, n - block * plan_.query_block);
}

void BlockSparseSession::attend_dense(const float* q, int n, float* out) {
  const kernels::QueryView query{q, layout_.heads_q, n, layout_.head_dim};
  const kernels::CausalLayout causal{cache_.tokens() - n, 1.0f / std::sqrt(static_cast<float>(layout_.head_dim))};
  Stopwatch watch;
  kernels::dense_attention(query, cache_.keys(), cache_.values(), causal, {out, nullptr}, threads_);
  stats_.attention_seconds += watch.seconds();
  plan_ = {};
  last_queries_ = n;
  last_first_position_ = causal.first_query_pos;
  const std::uint64_t first = causal.first_query_pos + 1;
  stats_.queries += static_cast<std::uint64_t>(layout_.heads_q) * n;
  stats_.keys_attended += layout_.heads_q * (first * n + static_cast<std::uint64_t>(n) * (n - 1) / 2);
  stats_.keys_attended_max = std::max<std::uint64_t>(stats_.keys_attended_max, first + n - 1);
  stats_.kv_bytes_read += cache_.bytes_per_token() * (first + n - 1);
  stats_.kv_bytes_resident = cache_.resident_bytes();
}

void BlockSparseSession::attend_plan(const float* q, int n, kernels::SparsePlan plan, float* out) {
  const kernels::QueryView query{q, layout_.heads_q, n, layout_.head_dim};
  const kernels::CausalLayout causal{cache_.tokens() - n, 1.0f / std::sqrt(static_cast<float>(layout_.head_dim))};
  plan_ = std::move(plan);
  last_queries_ = n;
  last_first_position_ = causal.first_query_pos;
  Stopwatch watch;
  kernels::sparse_attention(query, cache_.keys(), cache_.values(), causal, plan_, {out, nullptr}, threads_);
  stats_.attention_seconds += watch.seconds();
  record_plan_stats(n);
}

void BlockSparseSession::record_plan_stats(int n) {
  const int blocks = plan_.num_query_blocks(n);
  for (int h = 0; h < layout_.heads_q; ++h) {
    for (int b = 0; b < blocks; ++b) {
      const auto& ranges = plan_.at(h, b, n);
      for (int i = 0; i < queries_in_block(b, n); ++i) {
        const std::uint64_t keys = visible_keys(ranges, last_first_position_ + b * plan_.query_block + i);
        stats_.keys_attended += keys;
        stats_.keys_attended_max = std::max(stats_.keys_attended_max, keys);
      }
    }
  }
  const std::uint64_t row_bytes = cache_.bytes_per_token() / layout_.heads_kv;  // K and V of one KV head
  for (int b = 0; b < blocks; ++b) {
    for (const auto& ranges : kv_ranges(b)) {
      for (const KeyRange& r : ranges) stats_.kv_bytes_read += row_bytes * (r.end - r.begin);
    }
  }
  stats_.queries += static_cast<std::uint64_t>(layout_.heads_q) * n;
  stats_.kv_bytes_resident = cache_.resident_bytes();
}

namespace {

// Rows of `view` (one head) at the tokens of `ranges`, widened to fp32 and, when `rotator` is set, rotated
// to positions[slot]: [keys][dim].
std::vector<float> gather_rows(const kernels::KvView& view, int head, const std::vector<KeyRange>& ranges,
                               const kernels::RopeRotator* rotator, const std::vector<std::int64_t>& positions) {
  std::vector<float> out;
  std::size_t slot = 0;
  for (const KeyRange& r : ranges) {
    for (int t = r.begin; t < r.end; ++t, ++slot) {
      out.resize(out.size() + view.dim);
      float* row = out.data() + slot * view.dim;
      kernels::widen_to_float(view.row(head, t), view.dtype, row, view.dim);
      if (rotator) rotator->rotate(row, positions[slot]);
    }
  }
  return out;
}

}  // namespace

void BlockSparseSession::attend_plan_rotated(const float* q, int n, kernels::SparsePlan plan,
                                             const kernels::RopeRotator& rotator, bool streaming, float* out) {
  const int d = layout_.head_dim;
  plan_ = std::move(plan);
  last_queries_ = n;
  last_first_position_ = cache_.tokens() - n;
  Stopwatch watch;
  std::vector<float> rotated_q(q, q + static_cast<std::size_t>(layout_.heads_q) * n * d);
  for (int h = 0; h < layout_.heads_q; ++h) {
    for (int t = 0; t < n; ++t)
      rotator.rotate(rotated_q.data() + (static_cast<std::size_t>(h) * n + t) * d, last_first_position_ + t);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const kernels::KvView keys = cache_.keys(), values = cache_.values();
  for (int b = 0; b < plan_.num_query_blocks(n); ++b) {
    const int first = b * plan_.query_block, count = queries_in_block(b, n);
    const int last_position = last_first_position_ + first + count - 1;
    for (int kv = 0; kv < layout_.heads_kv; ++kv) {
      // Query heads of this KV head that share one range list attend together.
      std::vector<bool> done(group(), false);
      for (int i = 0; i < group(); ++i) {
        if (done[i]) continue;
        const auto& ranges = plan_.at(kv * group() + i, b, n);
        std::vector<int> heads;
        for (int j = i; j < group(); ++j) {
          const auto& other = plan_.at(kv * group() + j, b, n);
          const bool same = std::equal(ranges.begin(), ranges.end(), other.begin(), other.end(),
                                       [](KeyRange x, KeyRange y) { return x.begin == y.begin && x.end == y.end; });
          if (!done[j] && same) {
            heads.push_back(kv * group() + j);
            done[j] = true;
          }
        }
        if (ranges.empty() || ranges.back().end != last_position + 1 ||
            ranges.back().begin > last_position + 1 - count) {
          throw std::logic_error("attend_plan_rotated: a query block's ranges must end with its own queries");
        }
        std::vector<std::int64_t> positions;
        if (streaming) {
          positions = kernels::hip_streaming_key_positions(ranges, last_position);
        } else {
          for (const KeyRange& r : ranges) {
            for (int t = r.begin; t < r.end; ++t) positions.push_back(t);
          }
        }
        const int total = static_cast<int>(positions.size());
        const std::vector<float> k = gather_rows(keys, kv, ranges, &rotator, positions);
        const std::vector<float> v = gather_rows(values, kv, ranges, nullptr, positions);
        const int hs = static_cast<int>(heads.size());
        std::vector<float> block_q(static_cast<std::size_t>(hs) * count * d), block_out(block_q.size());
        for (int h = 0; h < hs; ++h) {
          std::copy_n(rotated_q.data() + (static_cast<std::size_t>(heads[h]) * n + first) * d,
                      static_cast<std::size_t>(count) * d, block_q.data() + static_cast<std::size_t>(h) * count * d);
        }
        const std::size_t stride = static_cast<std::size_t>(total) * d;
        kernels::dense_attention({block_q.data(), hs, count, d}, {k.data(), kernels::DType::f32, 1, total, d, stride},
                                 {v.data(), kernels::DType::f32, 1, total, d, stride}, {total - count, scale},
                                 {block_out.data(), nullptr}, threads_);
        for (int h = 0; h < hs; ++h) {
          std::copy_n(block_out.data() + static_cast<std::size_t>(h) * count * d, static_cast<std::size_t>(count) * d,
                      out + (static_cast<std::size_t>(heads[h]) * n + first) * d);
        }
      }
    }
  }
  stats_.attention_seconds += watch.seconds();
  record_plan_stats(n);
}

std::vector<std::vector<KeyRange>> BlockSparseSession::kv_ranges(int block) const {
  std::vector<std::vector<KeyRange>> out(layout_.heads_kv);
  for (int kv = 0; kv < layout_.heads_kv; ++kv) {
    std::vector<KeyRange> all;
    for (int h = kv * group(); h < (kv + 1) * group(); ++h) {
      const auto& ranges = plan_.at(h, block, last_queries_);
      all.insert(all.end(), ranges.begin(), ranges.end());
    }
    out[kv] = merge_ranges(std::move(all));
  }
  return out;
}

kernels::SparsePlan BlockSparseSession::block_plan(
    int n, int block_size, int sinks, int window,
    const std::function<std::vector<KeyRange>(int head, int block)>& chosen) const {
  const int blocks = (n + block_size - 1) / block_size;
  const int first_position = cache_.tokens() - n;
  kernels::SparsePlan out{.query_block = block_size, .ranges = {}};
  out.ranges.resize(static_cast<std::size_t>(layout_.heads_q) * blocks);
  for (int h = 0; h < layout_.heads_q; ++h) {
    for (int b = 0; b < blocks; ++b) {
      const int first = first_position + b * block_size;
      const int last = first_position + std::min(n, (b + 1) * block_size) - 1;
      out.ranges[static_cast<std::size_t>(h) * blocks + b] = block_ranges(sinks, window, chosen(h, b), first, last);
    }
  }
  return out;
}

}  // namespace ctxbench::engines::hip
