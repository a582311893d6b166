// Helpers shared by the key-selecting baselines: top-k, key ranges, fp32 views of stored keys, one cache per
// KV head for methods that keep different tokens in different heads, and the record of which original
// positions each query row of an attend call used (which also does the keys/bytes accounting).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engines/dot.h"
#include "engines/engine.h"
#include "engines/kv_cache.h"

namespace ctxbench::engines {

// Indices of the `k` largest scores (ties go to the lower index), returned ascending. k is clamped to
// [0, scores.size()].
std::vector<int> top_k(std::span<const float> scores, int k);

// Sorted, disjoint ranges covering sorted, unique indices.
std::vector<KeyRange> ranges_from_indices(const std::vector<int>& sorted);
// Sorts and coalesces overlapping or touching ranges, dropping empty ones.
std::vector<KeyRange> merge_ranges(std::vector<KeyRange> ranges);
// The part of sorted, disjoint ranges below `end`.
std::vector<KeyRange> clip_ranges(const std::vector<KeyRange>& ranges, int end);
std::uint64_t count_keys(const std::vector<KeyRange>& ranges);
// Cache-index ranges as ranges of original positions (`positions` ascending, indexed by cache index).
std::vector<KeyRange> to_positions(const std::vector<KeyRange>& indices, const std::vector<int>& positions);
// Original-position ranges as ranges of the cache indices holding those positions.
std::vector<KeyRange> to_indices(const std::vector<KeyRange>& positions_wanted, const std::vector<int>& positions);

// Evicts from `cache` every key whose original position lies outside the sorted, disjoint `positions`.
void keep_positions(KvCache& cache, const std::vector<KeyRange>& positions);

// Keys [begin, end) of one KV head as contiguous fp32 rows, indexed by cache index: points into the storage
// for fp32, widens fp16/bf16 once.
class WideKeys {
 public:
  WideKeys(const kernels::KvView& keys, int head, int end, int begin = 0);
  const float* row(int token) const { return base_ + static_cast<std::size_t>(token - begin_) * stride_; }

 private:
  std::vector<float> widened_;
  const float* base_ = nullptr;
  int begin_ = 0;
  std::size_t stride_ = 0;
};

// Query row (head, token) of a [heads][tokens][dim] buffer.
inline const float* query_row(const float* q, int head, int tokens, int token, int dim) {
  return q + (static_cast<std::size_t>(head) * tokens + token) * dim;
}

// One single-head KvCache per KV head, for methods that evict per head (H2O, SnapKV, PyramidKV).
class PerHeadCaches {
 public:
  explicit PerHeadCaches(const HeadLayout& layout);
  // k, v: [heads_kv][n][head_dim] fp32.
  void append(const float* k, const float* v, int n);
  KvCache& head(int h) { return caches_[h]; }
  const KvCache& head(int h) const { return caches_[h]; }
  int appended() const { return caches_.front().appended(); }
  std::uint64_t resident_bytes() const;

 private:
  std::vector<KvCache> caches_;
};

// Attention of the query heads of KV head `kv_head` (queries [heads_q][n][dim]) against a single-head cache,
// restricted to `plan` (ranges in that cache's indices, one list per (group head, query block)). Writes the
// group's rows of out [heads_q][n][dim] and, if non-null, of lse [heads_q][n].
void attend_head_group(const float* q, int n, const HeadLayout& layout, int kv_head, const KvCache& cache,
                       const kernels::SparsePlan& plan, float* out, float* lse, int threads);

// Which original key positions each query row of one attend call used. Rows are grouped in blocks of
// `query_block` queries that share one range list; causality is applied per query on top.
class AttendLog {
 public:
  void begin(int heads_q, int queries, int first_position, int query_block);
  void set(int head, int block, std::vector<KeyRange> positions);
  // The ranges of row (head, query), clipped to the keys the query can see.
  std::vector<KeyRange> attended(int head, int query) const;
  // Adds this call's rows and keys attended, and the bytes of K and V its attention read (each key once per
  // KV head and call), to `stats`. `bytes_per_key` is K plus V of one key in one KV head.
  void account(SessionStats& stats, int heads_kv, std::uint64_t bytes_per_key) const;

  // The logged ranges as a plan for the attention kernel, for methods whose cache indices are positions.
  kernels::SparsePlan plan() const { return {query_block_, ranges_}; }
  // The same over a cache that holds only `positions` (ascending, indexed by cache index), every logged one among
  // them.
  kernels::SparsePlan plan(const std::vector<int>& positions) const;
  // Every position some row of the call uses, merged.
  std::vector<KeyRange> positions() const;

  int queries() const { return queries_; }
  int first_position() const { return first_position_; }

 private:
  int heads_q_ = 0, queries_ = 0, first_position_ = 0, query_block_ = 1, blocks_ = 0;
  std::vector<std::vector<KeyRange>> ranges_;  // [head * blocks + block]
};

// K plus V bytes of one key in one KV head.
std::uint64_t key_bytes(const HeadLayout& layout);

}  // namespace ctxbench::engines
