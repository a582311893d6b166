// The attention-level needle task's model of real attention, checked on the problem itself with float64
// arithmetic: locality of the haystack, the needle's share of dense attention, and that exact top-k over a
// sparse engine's budget can attain full recall (so that recall measures key selection, not the task).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "core/params.h"
#include "tasks/task.h"

namespace ctxbench::testing {
namespace {

const tasks::TaskInfo& needle_task() { return tasks::TaskRegistry::instance().get("attention_needle", "test"); }

// The task as suites/hip-128k-locality.json runs it (decode).
Json locality_params(const Json& overrides = Json::object()) {
  Json p = {
      {"mode", "decode"},   {"queries", 4}, {"observe", 0}, {"correlation_length", 16.0}, {"needle_above", "noise_max"},
      {"needle_logit", 4.0}};
  p.update(overrides);
  return resolve_params(needle_task().params, p, "test");
}

// Scaled float64 logits of query row (h, s) against every key it sees (positions 0..prompt + s).
std::vector<double> row_logits(const tasks::AttentionProblem& p, int h, int s) {
  const auto& L = p.layout;
  const int kv_head = h / (L.heads_q / L.heads_kv), visible = p.tokens - p.queries + s + 1;
  const float* q = &p.q[(static_cast<std::size_t>(h) * p.queries + s) * L.head_dim];
  std::vector<double> logits(visible);
  for (int t = 0; t < visible; ++t) {
    const float* k = &p.k[(static_cast<std::size_t>(kv_head) * p.tokens + t) * L.head_dim];
    double dot = 0;
    for (int i = 0; i < L.head_dim; ++i) dot += static_cast<double>(q[i]) * k[i];
    logits[t] = dot / std::sqrt(static_cast<double>(L.head_dim));
  }
  return logits;
}

double needle_mass(const std::vector<double>& logits, const std::vector<int>& needles) {
  const double top = *std::max_element(logits.begin(), logits.end());
  double all = 0, needle = 0;
  for (double x : logits) all += std::exp(x - top);
  for (int t : needles) needle += std::exp(logits[t] - top);
  return needle / all;
}

// Keys outside the forced sinks and window that outscore `key`: oracle top-k with those forced keys and
// `chosen` free slots attends to `key` iff this is below `chosen`.
int outscoring_candidates(const std::vector<double>& logits, int key, int sinks, int window) {
  const int end = static_cast<int>(logits.size()) - window;
  int count = 0;
  for (int t = sinks; t < end; ++t) count += t != key && logits[t] > logits[key];
  return count;
}

}  // namespace

TEST_CASE("attention_needle: correlation_length correlates neighbouring keys as exp(-dt over length)",
          "[task][needle]") {
  const Json params = resolve_params(needle_task().params,
                                     {{"heads_q", 1},
                                      {"heads_kv", 1},
                                      {"needles", 0},
                                      {"sinks", 0},
                                      {"band_logit", 0.0},
                                      {"tail_sigma", 0.0},
                                      {"correlation_length", 16.0}},
                                     "test");
  const auto p = needle_task().make_attention_problem({params, 65536, 50.0, 7});
  const int d = p.layout.head_dim, T = p.tokens;
  for (int lag : {0, 1, 16, 256}) {
    double product = 0;
    std::size_t n = 0;
    for (int t = 0; t + lag < T; ++t) {
      for (int i = 0; i < d; ++i) product += static_cast<double>(p.k[t * d + i]) * p.k[(t + lag) * d + i];
      n += d;
    }
    INFO("lag " << lag);
    CHECK(product / n == Approx(std::exp(-lag / 16.0)).margin(0.03));
  }
}

TEST_CASE("attention_needle: with needle_above noise_max the needle holds most of dense attention at every length",
          "[task][needle]") {
  for (int tokens : {4096, 32768, 262144}) {
    for (double depth : {10.0, 50.0, 90.0}) {
      const auto p = needle_task().make_attention_problem({locality_params(), tokens, depth, 1001});
      // A row whose haystack holds a key of extreme magnitude (the heavy tail) can lose most of its mass to
      // it, so the claim is about the typical row: the mean, and the share of rows where the needle has most.
      double sum = 0;
      int rows = 0, needle_majority = 0;
      for (int h = 0; h < p.layout.heads_q; ++h) {
        for (int s = 0; s < p.queries; ++s, ++rows) {
          const double share = needle_mass(row_logits(p, h, s), p.important_keys);
          sum += share;
          needle_majority += share > 0.5;
        }
      }
      INFO("tokens " << tokens << " depth " << depth);
      CHECK(sum / rows >= 0.75);
      CHECK(needle_majority >= 0.75 * rows);
    }
  }
}

TEST_CASE("attention_needle: with needle_above noise_max exact top-k over HiP's budget finds the needle",
          "[task][needle]") {
  // HiP's defaults attend to 256 sinks + 512 chosen + a 1024-key window (oracle_topk-1792 in the suites).
  constexpr int sinks = 256, chosen = 512, window = 1024;
  for (int tokens : {4096, 32768, 262144}) {
    for (const char* mode : {"decode", "prefill"}) {
      std::size_t hits = 0, total = 0;
      for (double depth : {10.0, 50.0, 90.0}) {
        // 8 prefill queries rather than the suites' 32 keep the float64 scoring short (one row is one query).
        const Json params = locality_params({{"mode", mode}, {"queries", std::string(mode) == "decode" ? 4 : 8}});
        const auto p = needle_task().make_attention_problem({params, tokens, depth, 2002});
        for (int h = 0; h < p.layout.heads_q; ++h) {
          for (int s = 0; s < p.queries; ++s) {
            const auto logits = row_logits(p, h, s);
            for (int key : p.important_keys) {
              ++total;
              hits += outscoring_candidates(logits, key, sinks, window) < chosen;
            }
          }
        }
      }
      INFO("tokens " << tokens << " " << mode);
      CHECK(static_cast<double>(hits) / total >= 0.99);
    }
  }
}

}  // namespace ctxbench::testing
