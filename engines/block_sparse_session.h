// What the HiP-family sessions share: the full K/V cache (they mask, never evict), the last attend call's
// plan of key ranges per (query head, query block), and the statistics that follow from that plan.
#pragma once

#include <functional>
#include <vector>

#include "engines/engine.h"
#include "engines/hip_common.h"
#include "engines/kv_cache.h"

namespace ctxbench::engines::hip {

class BlockSparseSession : public Session {
 public:
  BlockSparseSession(const HeadLayout& layout, int threads) : layout_(layout), threads_(threads), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }
  std::vector<KeyRange> attended(int head, int query) const override;
  SessionStats stats() const override { return stats_; }

 protected:
  // Exact attention for n queries at the end of the cache (the method's dense layers).
  void attend_dense(const float* q, int n, float* out);
  // Attention over `plan` (ranges already built with block_ranges, so causal and disjoint) for n queries at
  // the end of the cache; records keys attended, bytes read and attention time.
  void attend_plan(const float* q, int n, kernels::SparsePlan plan, float* out);
  // The same plan for un-rotated queries and cache (HeadLayout::rope): queries are rotated to their real
  // positions; each query block's keys are gathered, rotated to their streaming positions (contiguous,
  // the last at the block's last query: kernels::hip_streaming_key_positions) or, without `streaming`, to
  // their real positions, and attended exactly. Needs the block's queries inside its ranges (window >= 1).
  void attend_plan_rotated(const float* q, int n, kernels::SparsePlan plan, const kernels::RopeRotator& rotator,
                           bool streaming, float* out);

  // The plan of n queries at the end of the cache in blocks of `block_size`: block b of query head h attends to
  // the sinks, the ranges chosen(h, b) and the window, cut after its last query.
  kernels::SparsePlan block_plan(int n, int block_size, int sinks, int window,
                                 const std::function<std::vector<KeyRange>(int head, int block)>& chosen) const;

  // Each KV head's union over its query heads of the plan's ranges for query block `block` (the keys the
  // attention reads once per KV head and block), in KV-head order.
  std::vector<std::vector<KeyRange>> kv_ranges(int block) const;

  int queries_in_block(int block, int n) const;
  // Keys attended and bytes read by the plan_ of an n-query call (plan_ and last_* already set).
  void record_plan_stats(int n);
  int group() const { return layout_.heads_q / layout_.heads_kv; }

  HeadLayout layout_;
  int threads_;
  KvCache cache_;
  SessionStats stats_;
  kernels::SparsePlan plan_;  // of the last attend call; empty ranges list = dense
  int last_queries_ = 0;
  int last_first_position_ = 0;
};

}  // namespace ctxbench::engines::hip
