// Exact causal attention over the whole cache: the baseline every speedup and every error is measured against.
#include <algorithm>
#include <cmath>

#include "core/timer.h"
#include "engines/engine.h"
#include "engines/kv_cache.h"

namespace ctxbench::engines {
namespace {

class DenseSession final : public Session {
 public:
  DenseSession(const HeadLayout& layout, int threads, int extra_passes)
      : layout_(layout), threads_(threads), extra_passes_(extra_passes), cache_(layout) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase, float* out) override {
    const kernels::QueryView query{q, layout_.heads_q, n, layout_.head_dim};
    const kernels::CausalLayout causal{cache_.tokens() - n, 1.0f / std::sqrt(static_cast<float>(layout_.head_dim))};
    Stopwatch watch;
    for (int pass = 0; pass <= extra_passes_; ++pass)
      kernels::dense_attention(query, cache_.keys(), cache_.values(), causal, {out, nullptr}, threads_);
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
  int threads_;
  int extra_passes_;
  KvCache cache_;
  int last_first_pos_ = 0;
  SessionStats stats_;
};

class DenseEngine final : public Engine {
 public:
  DenseEngine(int threads, int extra_passes) : threads_(threads), extra_passes_(extra_passes) {}
  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return std::make_unique<DenseSession>(layout, threads_, extra_passes_);
  }

 private:
  int threads_;
  int extra_passes_;
};

const RegisterEngine registration{{
    .name = "dense",
    .description = "exact causal attention over every cached key",
    .policy = KvPolicy::full,
    .params = {{.name = "threads",
                .type = ParamType::integer,
                .default_value = 0,
                .help = "worker threads (0: all cores)",
                .min = 0},
               {.name = "extra_passes",
                .type = ParamType::integer,
                .default_value = 0,
                .help = "recompute the attention this many more times (a deliberate slowdown for testing gates)",
                .min = 0,
                .max = 100}},
    .make =
        [](const Json& p) {
          return std::make_unique<DenseEngine>(p.at("threads").get<int>(), p.value("extra_passes", 0));
        },
    .exact_params = [](int) { return Json::object(); },
    .decode_matches_prefill = true,
}};

}  // namespace
}  // namespace ctxbench::engines
