// The statistics behind compare and gate, against brute-force permutation distributions, and the
// metric catalogue that reports read metric names with.
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

#include "core/random.h"
#include "reports/comparison.h"
#include "reports/metrics.h"
#include "reports/stats.h"

using namespace ctxbench;
using namespace ctxbench::reports;

namespace {

// Every way of choosing which of the pooled values form sample a; U's one-sided tail probabilities are
// the shares of splits whose U is at least (at most) the observed one. Obviously correct, exponential.
struct Permutation {
  double p_greater, p_less;
};

double u_statistic(const std::vector<double>& a, const std::vector<double>& b) {
  double u = 0;
  for (double x : a) {
    for (double y : b) u += y > x ? 1.0 : y == x ? 0.5 : 0.0;
  }
  return u;
}

Permutation permutation_test(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> pooled(a);
  pooled.insert(pooled.end(), b.begin(), b.end());
  const double observed = u_statistic(a, b);
  const int n = static_cast<int>(pooled.size()), n1 = static_cast<int>(a.size());
  double greater = 0, less = 0, total = 0;
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) != n1) continue;
    std::vector<double> x, y;
    for (int i = 0; i < n; ++i) ((mask >> i) & 1 ? x : y).push_back(pooled[i]);
    const double u = u_statistic(x, y);
    total += 1;
    greater += u >= observed - 1e-12;
    less += u <= observed + 1e-12;
  }
  return {greater / total, less / total};
}

std::vector<double> sample(Rng& rng, int n, double shift, double scale = 1.0) {
  std::vector<double> out(n);
  for (double& x : out) x = shift + scale * rng.normal();
  return out;
}

// Timings as a shared machine produces them: log-normal jitter plus occasional preemptions that multiply a
// repetition's time by 2-10.
std::vector<double> noisy_timings(Rng& rng, int n, double seconds) {
  std::vector<double> out(n);
  for (double& x : out) {
    x = seconds * std::exp(0.05 * rng.normal());
    if (rng.uniform() < 0.15) x *= 2 + 8 * rng.uniform();
  }
  return out;
}

Measurement timing(std::vector<double> values) { return {"decode_seconds_per_step", "s", std::move(values)}; }

}  // namespace

TEST_CASE("exact Mann-Whitney p-values equal the brute-force permutation distribution", "[reports][stats]") {
  Rng rng(11);
  for (const auto& [n1, n2] :
       std::vector<std::pair<int, int>>{{1, 1}, {1, 5}, {3, 3}, {4, 6}, {5, 5}, {7, 6}, {2, 9}}) {
    for (double shift : {0.0, 0.8, -1.5}) {
      const auto a = sample(rng, n1, 0), b = sample(rng, n2, shift);
      const auto mw = mann_whitney(a, b);
      const auto brute = permutation_test(a, b);
      INFO("n1=" << n1 << " n2=" << n2 << " shift=" << shift);
      CHECK(mw.exact);
      CHECK(mw.u == Approx(u_statistic(a, b)));
      CHECK(mw.p_greater == Approx(brute.p_greater).margin(1e-12));
      CHECK(mw.p_less == Approx(brute.p_less).margin(1e-12));
      CHECK(mw.p_two_sided == Approx(std::min(1.0, 2 * std::min(brute.p_greater, brute.p_less))).margin(1e-12));
    }
  }
}

TEST_CASE("with ties the normal approximation stays close to the permutation distribution", "[reports][stats]") {
  Rng rng(12);
  for (int trial = 0; trial < 12; ++trial) {
    // Values on a coarse grid so that ties are frequent.
    std::vector<double> a(8), b(8);
    const double shift = trial % 3 == 0 ? 0.0 : 0.3 * (trial % 4);
    for (double& x : a) x = std::round(2 * rng.normal());
    for (double& y : b) y = std::round(2 * (rng.normal() + shift));
    const auto mw = mann_whitney(a, b);
    const auto brute = permutation_test(a, b);
    INFO("trial " << trial);
    CHECK_FALSE(mw.exact);
    CHECK(mw.p_greater == Approx(brute.p_greater).margin(0.03));
    CHECK(mw.p_less == Approx(brute.p_less).margin(0.03));
  }
}

TEST_CASE("large samples use the normal approximation and find a real shift", "[reports][stats]") {
  Rng rng(13);
  const auto a = sample(rng, 40, 0), b = sample(rng, 40, 1.0);
  const auto mw = mann_whitney(a, b);
  CHECK_FALSE(mw.exact);
  CHECK(mw.p_greater < 1e-3);
  CHECK(mw.p_less > 0.99);
  const auto same = mann_whitney(a, a);
  CHECK(same.p_two_sided == Approx(1.0));
}

TEST_CASE("Mann-Whitney edge cases: identical values, one value each, empty input", "[reports][stats]") {
  const auto flat = mann_whitney({2, 2, 2}, {2, 2});
  CHECK(flat.p_greater == 1.0);
  CHECK(flat.p_two_sided == 1.0);
  const auto single = mann_whitney({1}, {2});
  CHECK(single.exact);
  CHECK(single.p_greater == Approx(0.5));
  CHECK(single.p_two_sided == Approx(1.0));
  CHECK_THROWS_AS(mann_whitney({}, {1}), std::invalid_argument);
}

TEST_CASE("the smallest reachable p is 2 / C(n1 + n2, n1), as complete separation gives", "[reports][stats]") {
  for (const auto& [n1, n2] : std::vector<std::pair<int, int>>{{3, 3}, {4, 4}, {5, 7}, {8, 8}}) {
    std::vector<double> a(n1), b(n2);
    std::iota(a.begin(), a.end(), 0.0);
    std::iota(b.begin(), b.end(), 100.0);
    CHECK(smallest_two_sided_p(n1, n2) == Approx(mann_whitney(a, b).p_two_sided));
  }
  CHECK(smallest_two_sided_p(3, 3) > 0.05);  // why compare and gate need at least 4 repetitions
  CHECK(smallest_two_sided_p(4, 4) < 0.05);
}

TEST_CASE("judge_timing: two-sided verdicts, and too few repetitions are not judged", "[reports][stats]") {
  Rng rng(14);
  const auto before = timing(noisy_timings(rng, 9, 1e-3));
  const auto slower = timing(noisy_timings(rng, 9, 3e-3));
  MetricDelta d{
      "decode_seconds_per_step", "s", metric_info("decode_seconds_per_step", "s"), &before, &slower, {}, {}, ""};
  judge_timing(d, 0.05);
  CHECK(d.verdict == Verdict::slower);
  MetricDelta reverse{d.metric, "s", d.info, &slower, &before, {}, {}, ""};
  judge_timing(reverse, 0.05);
  CHECK(reverse.verdict == Verdict::faster);
  const auto three = timing({1e-3, 1e-3, 1e-3}), three_slow = timing({9e-3, 9e-3, 9e-3});
  MetricDelta few{d.metric, "s", d.info, &three, &three_slow, {}, {}, ""};
  judge_timing(few, 0.05);
  CHECK(few.verdict == Verdict::not_judged);
  CHECK_THAT(few.why_not_judged, Catch::Contains("3 and 3 repetitions"));
}

TEST_CASE("the gate's slowdown test on shared-machine noise: flags real slowdowns, not noise", "[reports][stats]") {
  Rng rng(15);
  int false_alarms = 0, caught = 0, within_threshold_flagged = 0;
  const int trials = 200;
  for (int t = 0; t < trials; ++t) {
    const auto base = timing(noisy_timings(rng, 9, 1e-3));
    false_alarms += significantly_slower(base, timing(noisy_timings(rng, 9, 1e-3)), 0.05, 0.05).slower;
    caught += significantly_slower(base, timing(noisy_timings(rng, 9, 2e-3)), 0.05, 0.05).slower;
    within_threshold_flagged += significantly_slower(base, timing(noisy_timings(rng, 9, 1.02e-3)), 0.05, 0.05).slower;
  }
  // Same distribution: the one-sided test against +5% rarely fires (well under alpha).
  CHECK(false_alarms <= trials * 0.05);
  // A 2% slowdown is inside the 5% allowance.
  CHECK(within_threshold_flagged <= trials * 0.05);
  INFO("false alarms " << false_alarms << ", +2% flagged " << within_threshold_flagged << ", x2 caught " << caught);
  // A doubling under the same noise is caught in most trials (the outliers cost power: about 87% here).
  CHECK(caught >= trials * 0.8);
  // Single values cannot be judged.
  const auto one = significantly_slower(timing({1e-3}), timing({5e-3}), 0.05, 0.05);
  CHECK_FALSE(one.judged);
}

TEST_CASE("metric names are classified generically, known ones get labels", "[reports][metrics]") {
  CHECK(metric_info("decode_seconds_per_step", "s").phase == "decode");
  CHECK(metric_info("prefill_seconds", "s").phase == "prefill");
  CHECK(metric_info("needle_recall", "ratio").kind == MetricKind::accuracy);
  CHECK(metric_info("output_rel_error", "ratio").kind == MetricKind::error);
  CHECK(metric_info("kv_bytes_resident", "B").resident_memory);
  CHECK_FALSE(metric_info("kv_bytes_read", "B").resident_memory);
  // Metrics other parts may add.
  CHECK(metric_info("offload_device_bytes", "B").resident_memory);
  CHECK(metric_info("qa_f1_score", "%").kind == MetricKind::accuracy);
  CHECK(metric_info("qa_f1_score", "%").label == "Qa f1 score");
  CHECK(metric_info("string_match_all", "%").kind == MetricKind::accuracy);
  CHECK(metric_info("pcie_bytes", "B").kind == MetricKind::memory);
  CHECK(metric_info("offload_seconds", "s").kind == MetricKind::time);
  CHECK(metric_info("perplexity_error", "ratio").kind == MetricKind::error);
  CHECK(metric_info("something", "widgets").kind == MetricKind::other);
}

TEST_CASE("accuracy is read in percentage points, values are formatted with their unit", "[reports][metrics]") {
  CHECK(accuracy_points({"needle_recall", "ratio", {0.875}}) == Approx(87.5));
  CHECK(accuracy_points({"qa_f1_score", "%", {41.2}}) == Approx(41.2));
  CellRecord cell;
  cell.task_method = "attention_needle";
  cell.measurements = {{"kv_bytes_read", "B", {1}}, {"needle_recall", "ratio", {0.5}}};
  REQUIRE(accuracy_measurement(cell) != nullptr);
  CHECK(accuracy_measurement(cell)->metric == "needle_recall");
  cell.measurements = {{"custom_accuracy", "ratio", {0.5}}};
  CHECK(accuracy_measurement(cell)->metric == "custom_accuracy");
  cell.measurements = {{"kv_bytes_read", "B", {1}}};
  CHECK(accuracy_measurement(cell) == nullptr);
  CHECK(format_value(0.00123, "s") == "1.23 ms");
  CHECK(format_value(2.5e-6, "s") == "2.5 µs");
  CHECK(format_value(3 * 1048576.0, "B") == "3 MiB");
  CHECK(format_value(100, "B") == "100 B");
  CHECK(format_value(std::nan(""), "s") == "-");
}

TEST_CASE("quartiles interpolate between order statistics, as numpy's default percentile does", "[reports][stats]") {
  // numpy.percentile([4, 1, 3, 2], [25, 50, 75]) == [1.75, 2.5, 3.25]
  const auto q = reports::quartiles({4, 1, 3, 2});
  CHECK(q.q1 == Approx(1.75));
  CHECK(q.median == Approx(2.5));
  CHECK(q.q3 == Approx(3.25));
  // numpy.percentile([10, 0, 5, 7, 1], [25, 50, 75]) == [1, 5, 7]
  const auto odd = reports::quartiles({10, 0, 5, 7, 1});
  CHECK(odd.q1 == 1);
  CHECK(odd.median == 5);
  CHECK(odd.q3 == 7);
  const auto one = reports::quartiles({3});
  CHECK((one.q1 == 3 && one.median == 3 && one.q3 == 3));
  CHECK(std::isnan(reports::quartiles({}).median));
}
