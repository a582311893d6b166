#include "engines/selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace ctxbench::engines {

std::vector<int> top_k(std::span<const float> scores, int k) {
  const int n = static_cast<int>(scores.size());
  k = std::clamp(k, 0, n);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto better = [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  if (k < n) std::nth_element(order.begin(), order.begin() + k, order.end(), better);
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<KeyRange> ranges_from_indices(const std::vector<int>& sorted) {
  std::vector<KeyRange> out;
  for (int index : sorted) {
    if (!out.empty() && out.back().end == index) {
      ++out.back().end;
    } else {
      out.push_back({index, index + 1});
    }
  }
  return out;
}

std::vector<KeyRange> merge_ranges(std::vector<KeyRange> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const KeyRange& a, const KeyRange& b) { return a.begin < b.begin; });
  std::vector<KeyRange> out;
  for (const KeyRange& r : ranges) {
    if (r.begin >= r.end) continue;
    if (!out.empty() && r.begin <= out.back().end) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::vector<KeyRange> clip_ranges(const std::vector<KeyRange>& ranges, int end) {
  std::vector<KeyRange> out;
  for (const KeyRange& r : ranges) {
    if (r.begin >= end) break;
    out.push_back({r.begin, std::min(r.end, end)});
  }
  return out;
}

std::uint64_t count_keys(const std::vector<KeyRange>& ranges) {
  std::uint64_t n = 0;
  for (const KeyRange& r : ranges) n += static_cast<std::uint64_t>(r.end - r.begin);
  return n;
}

std::vector<KeyRange> to_positions(const std::vector<KeyRange>& indices, const std::vector<int>& positions) {
  std::vector<KeyRange> out;
  for (const KeyRange& r : indices) {
    for (int i = r.begin; i < r.end; ++i) {
      const int p = positions[i];
      if (!out.empty() && out.back().end == p) {
        ++out.back().end;
      } else {
        out.push_back({p, p + 1});
      }
    }
  }
  return out;
}

std::vector<KeyRange> to_indices(const std::vector<KeyRange>& positions_wanted, const std::vector<int>& positions) {
  // Positions are ascending, so the cache indices holding one range of positions are one range too.
  std::vector<KeyRange> out;
  for (const KeyRange& r : positions_wanted) {
    const auto first = std::lower_bound(positions.begin(), positions.end(), r.begin);
    const auto last = std::lower_bound(first, positions.end(), r.end);
    out.push_back({static_cast<int>(first - positions.begin()), static_cast<int>(last - positions.begin())});
  }
  return merge_ranges(std::move(out));
}

void keep_positions(KvCache& cache, const std::vector<KeyRange>& positions) {
  std::vector<int> keep;
  for (const KeyRange& r : to_indices(positions, cache.positions())) {
    for (int i = r.begin; i < r.end; ++i) keep.push_back(i);
  }
  if (static_cast<int>(keep.size()) < cache.tokens()) cache.keep(keep);
}

WideKeys::WideKeys(const kernels::KvView& keys, int head, int end, int begin) : begin_(begin), stride_(keys.dim) {
  if (keys.dtype == kernels::DType::f32) {
    base_ = reinterpret_cast<const float*>(keys.row(head, 0));
    begin_ = 0;
    return;
  }
  widened_.resize(static_cast<std::size_t>(std::max(0, end - begin)) * keys.dim);
  for (int t = begin; t < end; ++t) {
    for (int i = 0; i < keys.dim; ++i)
      widened_[static_cast<std::size_t>(t - begin) * keys.dim + i] = keys.load(head, t, i);
  }
  base_ = widened_.data();
}

PerHeadCaches::PerHeadCaches(const HeadLayout& layout) {
  HeadLayout one = layout;
  one.heads_kv = 1;
  caches_.assign(layout.heads_kv, KvCache(one));
}

void PerHeadCaches::append(const float* k, const float* v, int n) {
  const std::size_t head_size = static_cast<std::size_t>(n) * (caches_.empty() ? 0 : caches_.front().keys().dim);
  for (std::size_t h = 0; h < caches_.size(); ++h) caches_[h].append(k + h * head_size, v + h * head_size, n);
}

std::uint64_t PerHeadCaches::resident_bytes() const {
  std::uint64_t total = 0;
  for (const auto& cache : caches_) total += cache.resident_bytes();
  return total;
}

void attend_head_group(const float* q, int n, const HeadLayout& layout, int kv_head, const KvCache& cache,
                       const kernels::SparsePlan& plan, float* out, float* lse, int threads) {
  const int group = layout.heads_q / layout.heads_kv;
  const std::size_t offset = static_cast<std::size_t>(kv_head) * group * n * layout.head_dim;
  const kernels::QueryView query{q + offset, group, n, layout.head_dim};
  const kernels::CausalLayout causal{cache.tokens() - n, 1.0f / std::sqrt(static_cast<float>(layout.head_dim))};
  kernels::sparse_attention(query, cache.keys(), cache.values(), causal, plan,
                            {out + offset, lse ? lse + static_cast<std::size_t>(kv_head) * group * n : nullptr},
                            threads);
}

void AttendLog::begin(int heads_q, int queries, int first_position, int query_block) {
  heads_q_ = heads_q;
  queries_ = queries;
  first_position_ = first_position;
  query_block_ = std::max(1, query_block);
  blocks_ = (queries + query_block_ - 1) / query_block_;
  ranges_.assign(static_cast<std::size_t>(heads_q) * blocks_, {});
}

void AttendLog::set(int head, int block, std::vector<KeyRange> positions) {
  ranges_[static_cast<std::size_t>(head) * blocks_ + block] = std::move(positions);
}

std::vector<KeyRange> AttendLog::attended(int head, int query) const {
  if (head < 0 || head >= heads_q_ || query < 0 || query >= queries_) {
    throw std::out_of_range("attended: no query row (" + std::to_string(head) + ", " + std::to_string(query) +
                            ") in the last attend call");
  }
  return clip_ranges(ranges_[static_cast<std::size_t>(head) * blocks_ + query / query_block_],
                     first_position_ + query + 1);
}

void AttendLog::account(SessionStats& stats, int heads_kv, std::uint64_t bytes_per_key) const {
  const int group = heads_q_ / heads_kv;
  for (int g = 0; g < heads_kv; ++g) {
    std::vector<KeyRange> read;  // every key any row of this KV head used, each counted once
    for (int h = g * group; h < (g + 1) * group; ++h) {
      for (int b = 0; b < blocks_; ++b) {
        const auto& block = ranges_[static_cast<std::size_t>(h) * blocks_ + b];
        const int last_query = std::min(queries_, (b + 1) * query_block_) - 1;
        for (int t = b * query_block_; t <= last_query; ++t) {
          const std::uint64_t keys = count_keys(clip_ranges(block, first_position_ + t + 1));
          stats.keys_attended += keys;
          stats.keys_attended_max = std::max(stats.keys_attended_max, keys);
        }
        const auto visible = clip_ranges(block, first_position_ + last_query + 1);
        read.insert(read.end(), visible.begin(), visible.end());
      }
    }
    stats.kv_bytes_read += count_keys(merge_ranges(std::move(read))) * bytes_per_key;
  }
  stats.queries += static_cast<std::uint64_t>(heads_q_) * queries_;
}

kernels::SparsePlan AttendLog::plan(const std::vector<int>& positions) const {
  kernels::SparsePlan out{query_block_, {}};
  out.ranges.reserve(ranges_.size());
  for (const auto& wanted : ranges_) out.ranges.push_back(to_indices(wanted, positions));
  return out;
}

std::vector<KeyRange> AttendLog::positions() const {
  std::vector<KeyRange> all;
  for (const auto& row : ranges_) all.insert(all.end(), row.begin(), row.end());
  return merge_ranges(std::move(all));
}

std::uint64_t key_bytes(const HeadLayout& layout) {
  return 2ull * layout.head_dim * kernels::dtype_bytes(layout.kv_dtype);
}

}  // namespace ctxbench::engines
