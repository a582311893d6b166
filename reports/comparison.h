// Two runs side by side: cells matched by what they measured, each metric's change, and timing changes
// judged against the noise of the stored repetitions. Used by `ctxbench compare` and `ctxbench gate`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "harness/store.h"
#include "reports/metrics.h"
#include "reports/stats.h"

namespace ctxbench::reports {

enum class Verdict { slower, faster, unchanged, not_judged };

struct MetricDelta {
  std::string metric;
  std::string unit;
  MetricInfo info;
  const Measurement* before = nullptr;
  const Measurement* after = nullptr;
  // Time metrics with repetitions on both sides: Mann-Whitney U of after against before.
  std::optional<MannWhitney> test;
  Verdict verdict = Verdict::not_judged;
  std::string why_not_judged;  // for not_judged time metrics

  double ratio() const;  // after / before of the medians (NaN when before is 0)
};

struct CellPair {
  const CellRecord* before = nullptr;
  const CellRecord* after = nullptr;
  std::vector<MetricDelta> deltas;  // metrics present in both cells, by name
  bool params_differ = false;       // same labels, different engine or task parameters
};

// Cells are matched by engine label, task label, context length, depth and seed, so that a parameter
// change under the same label (what a regression test of a kernel does) still pairs up.
using CellIdentity = std::tuple<std::string, std::string, int, double, std::int64_t>;
CellIdentity identity(const CellRecord& cell);
std::string describe(const CellRecord& cell);  // "engine / task T=4096 depth=50 seed=0"
// The engine and task parameters that differ: "engine extra_passes 0 -> 9, task queries 4 -> 8".
std::string parameter_changes(const CellRecord& before, const CellRecord& after);

struct Comparison {
  RunInfo before_run, after_run;
  std::vector<CellRecord> before_cells, after_cells;
  std::vector<CellPair> pairs;                  // ok in both runs
  std::vector<const CellRecord*> newly_failed;  // ok before, failed after
  std::vector<const CellRecord*> fixed;         // failed before, ok after
  std::vector<const CellRecord*> only_before, only_after;
  double alpha = 0.05;
};

// The matched cells whose timings were taken under load, in either run ("" when none): "3 of 8 cells (first: ...)".
std::string cells_timed_under_load(const Comparison& comparison);

// Throws InputError when either run has no cells, or no successful cells (naming the first error).
Comparison compare_runs(Store& store, std::int64_t before, std::int64_t after, double alpha);

// Judges `after` against `before`: significantly different at level alpha (two-sided), or not.
void judge_timing(MetricDelta& delta, double alpha);

// Whether `after` is significantly slower than `before` scaled by (1 + max_slowdown): a one-sided
// Mann-Whitney test of H0 "after <= before * (1 + max_slowdown)". Needs repetitions on both sides.
struct SlowdownTest {
  bool judged = false;
  bool slower = false;
  double p = 1;
  std::string why_not_judged;
};
SlowdownTest significantly_slower(const Measurement& before, const Measurement& after, double max_slowdown,
                                  double alpha);

std::string verdict_name(Verdict verdict);

// What `compare` and the report's run-to-run view show per cell by default: timings (judged or not), memory held,
// the task's accuracy and the paired speedup.
bool is_headline(const MetricDelta& delta, const CellRecord& cell);
// One side's value as shown: accuracy in points, a paired speedup with its interval, else the value with its unit.
std::string shown_value(const MetricDelta& delta, const CellRecord& cell, const Measurement& m);
// "+1.50 pt" for accuracy, "+12.3%" for other metrics, "=" when equal.
std::string change_text(const MetricDelta& delta);
// For timings: "p=0.0022 slower" or "not judged: <why>"; "" for other metrics.
std::string judgement_text(const MetricDelta& delta);

}  // namespace ctxbench::reports
