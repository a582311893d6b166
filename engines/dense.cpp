// Exact causal attention over the whole cache: the baseline every speedup and every error is measured against.
#include <algorithm>
#include <cmath>

#include "core/timer.h"
#include "engines/engine.h"
#include "engines/kv_cache.h"

namespace ctxbench::engines {
namespace {

struct DenseParams {
  int threads = 0;
  int extra_passes = 0;

  static ParamFields<DenseParams> fields() {
    return with_threads(ParamFields<DenseParams>())
        .field(&DenseParams::extra_passes, "extra_passes",
               "recompute the attention this many more times (a deliberate slowdown for testing gates)",
               {.min = 0, .max = 100});
  }
};

class DenseSession final : public Session {
 public:
  DenseSession(const HeadLayout& layout, const DenseParams& params)
      : layout_(layout), params_(params), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase, float* out) override {
    const kernels::QueryView query{q, layout_.heads_q, n, layout_.head_dim};
    const kernels::CausalLayout causal{cache_.tokens() - n, 1.0f / std::sqrt(static_cast<float>(layout_.head_dim))};
    Stopwatch watch;
    for (int pass = 0; pass <= params_.extra_passes; ++pass)
      kernels::dense_attention(query, cache_.keys(), cache_.values(), causal, {out, nullptr}, params_.threads);
    stats_.attention_seconds += watch.seconds();
    last_first_pos_ = causal.first_query_pos;
    const std::uint64_t first = causal.first_query_pos + 1;
    const std::uint64_t rows = static_cast<std::uint64_t>(layout_.heads_q) * n;
    stats_.queries += rows;
    // Query i sees first + i keys; summed over the n queries and every head.
    stats_.keys_attended += layout_.heads_q * (first * n + static_cast<std::uint64_t>(n) * (n - 1) / 2);
    stats_.keys_attended_max = std::max<std::uint64_t>(stats_.keys_attended_max, first + n - 1);
    stats_.kv_bytes_read += cache_.bytes_per_token() * (first + n - 1);
    stats_.kv_bytes_resident = cache_.resident_bytes();
  }

  std::vector<KeyRange> attended(int, int query) const override { return {{0, last_first_pos_ + query + 1}}; }

  SessionStats stats() const override { return stats_; }

 private:
  HeadLayout layout_;
  DenseParams params_;
  KvCache cache_;
  int last_first_pos_ = 0;
  SessionStats stats_;
};

const RegisterEngine registration{declared_engine<DenseSession, DenseParams>({
    .name = "dense",
    .description = "exact causal attention over every cached key",
    .policy = KvPolicy::full,
    .test_params = Json::object(),
    .exact_params = [](int) { return Json::object(); },
    .decode_matches_prefill = true,
})};

}  // namespace
}  // namespace ctxbench::engines
