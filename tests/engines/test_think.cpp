// ThinK against a plain float64 transcription of its rule: after the first prefill call each KV head prunes the
// int(dim * ratio) channels with the lowest (sum of q_c^2 over the call's last `window` queries of its query
// heads) x (sum of k_c^2 over its keys) from every key but the `recent` newest; later prefill calls prune their
// new non-recent keys with the same channels; decode keys stay whole. Every output must equal float64
// attention with those keys, and the resident bytes must count the pruned channels as gone.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

#include "engines/engine.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

struct Setting {
  double ratio;
  int window, recent;
};

struct Case {
  engines::HeadLayout layout;
  int tokens, queries;
  Setting setting;
};

const Case kCases[] = {
    {{2, 1, 16, kernels::DType::f32, 0, 1}, 1, 1, {0.5, 4, 2}},      // a single token
    {{4, 2, 32, kernels::DType::f32, 0, 1}, 30, 12, {0.4, 8, 64}},   // every key recent: nothing pruned
    {{8, 2, 64, kernels::DType::f32, 0, 1}, 203, 21, {0.4, 5, 16}},  // GQA 4
    {{4, 4, 32, kernels::DType::f16, 0, 1}, 150, 30, {0.7, 32, 3}},  // window longer than a call, fp16
    {{8, 1, 96, kernels::DType::bf16, 0, 1}, 177, 9, {0.25, 3, 0}},  // GQA 8, bf16, no recent keys
};

// The model: which channels each KV head pruned and up to which key.
struct Transcription {
  const Problem& p;
  Setting s;
  std::vector<std::vector<int>> pruned;  // [kv head], empty until the first prefill
  int pruned_until = 0;

  int group() const { return p.layout.heads_q / p.layout.heads_kv; }
  const float* query(int h, int i) const {
    return p.q.data() + (static_cast<std::size_t>(h) * p.queries + i) * p.layout.head_dim;
  }
  const float* key(int g, int t) const {
    return p.k.data() + (static_cast<std::size_t>(g) * p.tokens + t) * p.layout.head_dim;
  }

  // After a prefill call of queries [from, from + n) with `tokens` keys appended.
  void after_prefill(int from, int n, int tokens) {
    const int d = p.layout.head_dim, count = static_cast<int>(d * s.ratio);
    if (pruned.empty()) {
      for (int g = 0; g < p.layout.heads_kv; ++g) {
        std::vector<std::pair<double, int>> score;
        for (int c = 0; c < d; ++c) {
          double qs = 0, ks = 0;
          for (int h = g * group(); h < (g + 1) * group(); ++h) {
            for (int i = std::max(from, from + n - s.window); i < from + n; ++i) qs += std::pow(query(h, i)[c], 2);
          }
          for (int t = 0; t < tokens; ++t) ks += std::pow(key(g, t)[c], 2);
          score.push_back({qs * ks, c});
        }
        std::sort(score.begin(), score.end());
        std::vector<int> lowest;
        for (int i = 0; i < count; ++i) lowest.push_back(score[i].second);
        pruned.push_back(lowest);
      }
    }
    pruned_until = std::max(pruned_until, tokens - s.recent);
  }

  // Float64 attention of query i (at `position`) over every key, pruned channels zero before pruned_until.
  std::vector<double> row(int h, int i, int position) const {
    const int d = p.layout.head_dim, g = h / group();
    std::vector<double> logits;
    for (int t = 0; t <= position; ++t) {
      double sum = 0;
      for (int c = 0; c < d; ++c) {
        const bool gone =
            t < pruned_until && !pruned.empty() && std::find(pruned[g].begin(), pruned[g].end(), c) != pruned[g].end();
        if (!gone) sum += static_cast<double>(query(h, i)[c]) * key(g, t)[c];
      }
      logits.push_back(sum / std::sqrt(static_cast<double>(d)));
    }
    const double top = *std::max_element(logits.begin(), logits.end());
    std::vector<double> out(d, 0.0);
    double total = 0;
    for (int t = 0; t <= position; ++t) {
      const double w = std::exp(logits[t] - top);
      total += w;
      for (int c = 0; c < d; ++c) out[c] += w * p.v[(static_cast<std::size_t>(g) * p.tokens + t) * d + c];
    }
    for (double& x : out) x /= total;
    return out;
  }
};

std::unique_ptr<engines::Engine> make_think(const Setting& s) {
  const auto& info = engines::EngineRegistry::instance().get("think", "test");
  const Json params = {{"pruning_ratio", s.ratio}, {"window", s.window}, {"recent", s.recent}};
  return info.make(resolve_params(info.params, params, "think"));
}

}  // namespace

TEST_CASE("think prunes the channels of the transcription and attends with the pruned keys", "[baselines][think]") {
  for (const Case& c : kCases) {
    DYNAMIC_SECTION("T=" << c.tokens << " d=" << c.layout.head_dim << " ratio=" << c.setting.ratio) {
      Problem p = random_problem(c.layout, c.tokens, c.queries, 90 + c.tokens);
      p.tolerance = 1.0;  // the drivers' exact-attention check does not apply; the transcription below does
      const auto engine = make_think(c.setting);
      auto session = engine->open(p.layout);
      Transcription model{p, c.setting, {}, 0};
      const int first = c.tokens - c.queries;
      // Two prefill calls (a third of the queries each) with decode steps between and after.
      const int chunk = std::max(1, c.queries / 3);
      int done = 0;
      append_tokens(*session, p, 0, first);
      auto call = [&](int n, engines::Phase phase) {
        append_tokens(*session, p, first + done, n);
        const auto q = slice_tokens(p.q, p.layout.heads_q, p.queries, p.layout.head_dim, done, n);
        std::vector<float> out(q.size());
        session->attend(q.data(), n, phase, out.data());
        std::vector<double> expected;
        for (int h = 0; h < p.layout.heads_q; ++h) {
          for (int i = 0; i < n; ++i) {
            const auto row = model.row(h, done + i, first + done + i);
            expected.insert(expected.end(), row.begin(), row.end());
          }
        }
        INFO("call at query " << done << ", " << n << " queries");
        CHECK(relative_l2_error(out, expected) < 1e-5);
        if (phase == engines::Phase::prefill) model.after_prefill(done, n, first + done + n);
        done += n;
      };
      for (int step = 0; done < c.queries; ++step) {
        const bool prefill = step == 0 || step == 3;
        call(prefill ? std::min(chunk, c.queries - done) : 1,
             prefill ? engines::Phase::prefill : engines::Phase::decode);
      }
      const std::uint64_t element = kernels::dtype_bytes(c.layout.kv_dtype);
      const std::uint64_t pruned_channels = static_cast<std::uint64_t>(c.layout.head_dim * c.setting.ratio);
      CHECK(
          session->stats().kv_bytes_resident ==
          static_cast<std::uint64_t>(c.layout.heads_kv) * element *
              (2ull * c.tokens * c.layout.head_dim - static_cast<std::uint64_t>(model.pruned_until) * pruned_channels));
    }
  }
}

TEST_CASE("think: without a prefill nothing is pruned, after one pruning changes the output", "[baselines][think]") {
  Problem p = random_problem({4, 2, 32, kernels::DType::f32, 0, 1}, 120, 10, 5);
  const auto decode_only = run_decode(*make_think({0.5, 8, 4}), p);  // exact over every key (checked inside)
  p.tolerance = 1.0;
  const auto unpruned = run_prefill_then_decode(*make_think({0.0, 8, 4}), p);
  const auto pruned = run_prefill_then_decode(*make_think({0.5, 8, 4}), p);
  CHECK(relative_l2_error(unpruned, {decode_only.begin(), decode_only.end()}) < 1e-6);
  CHECK(relative_l2_error(pruned, {decode_only.begin(), decode_only.end()}) > 1e-3);
}
