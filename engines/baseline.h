// Plumbing shared by the baseline engines: a session base holding the record of attended keys and the stats.
#pragma once

#include <memory>
#include <vector>

#include "engines/budget.h"
#include "engines/engine.h"
#include "engines/kv_cache.h"
#include "engines/selection.h"

namespace ctxbench::engines {

// A session that reports the keys of its last call from `log_` and its totals from `stats_`.
class LoggedSession : public Session {
 public:
  explicit LoggedSession(const HeadLayout& layout) : layout_(layout) {}
  std::vector<KeyRange> attended(int head, int query) const override { return log_.attended(head, query); }
  SessionStats stats() const override { return stats_; }

 protected:
  int group() const { return layout_.heads_q / layout_.heads_kv; }
  float scale() const;

  // Timed sparse attention of n queries [heads_q][n][dim] whose first sits at cache index `first`, over
  // `cache` restricted to `plan` (cache indices); lse may be null.
  void attend_sparse(const float* q, int n, int first, const KvCache& cache, const kernels::SparsePlan& plan,
                     float* out, float* lse, int threads);
  // Timed sparse attention of the n queries over the positions logged for them in `cache` (which may have
  // evicted keys, not logged ones), then finish_call.
  void attend_logged(const float* q, int n, const KvCache& cache, float* out, int threads);
  // Exact attention of every query head over all its KV head keeps in `caches`, logged.
  void attend_all_kept(const float* q, int n, const PerHeadCaches& caches, float* out, float* lse, int threads);
  // Adds the call's logged rows to the stats and records what stays resident.
  void finish_call(std::uint64_t resident_bytes);

  HeadLayout layout_;
  AttendLog log_;
  SessionStats stats_;
};

// exact_params of a method that is dense once its budget covers the context.
Json budget_covering(int tokens);

}  // namespace ctxbench::engines
