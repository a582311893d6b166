// What a stored metric means to a report: read from the metric catalogue (core/metrics.h) by name, so metrics
// added by new engines and tasks show up without changes here; names it does not know (databases from older
// builds) are classified from their stored unit and name.
#pragma once

#include <string>
#include <vector>

#include "harness/store.h"

namespace ctxbench::reports {

enum class MetricKind {
  time,      // seconds; lower is better; judged against noise when repetitions are stored
  memory,    // bytes; lower is better
  accuracy,  // a score; higher is better; compared in percentage points
  error,     // a deviation from the exact result; lower is better
  count,     // tokens, keys, samples: descriptive
  other,
};

struct MetricInfo {
  std::string label;
  MetricKind kind = MetricKind::other;
  bool resident_memory = false;  // memory held (charted against context length), not bytes moved
  std::string phase;             // "prefill" or "decode" for the headline timings charted as speedups
};

// Catalogued metrics: their display name, and a kind from their unit and direction (higher-is-better fractions
// -> accuracy, lower-is-better non-time non-memory -> error). Unknown ones: a label from the name, a kind by unit
// and name (seconds -> time, bytes -> memory, "*_error" -> error, names with accuracy/score/recall/match/f1/rouge
// -> accuracy).
MetricInfo metric_info(const std::string& name, const std::string& unit);

// Values of one metric from several cells, combined as the catalogue says (the mean for unknown names).
double across_cells(const std::string& metric, std::vector<double> values);

const Measurement* find_metric(const CellRecord& cell, const std::string& name);

// The measurement a cell's accuracy is read from: the registered text task's metric, needle_recall, or the
// first metric classified as accuracy; nullptr when the cell has none.
const Measurement* accuracy_measurement(const CellRecord& cell);

// An accuracy value on a 0-100 scale: "ratio" metrics are multiplied by 100, "%" metrics kept.
double accuracy_points(const Measurement& m);

// A value with its unit made readable: 1.23 ms, 4.0 MiB, 87.5%, 6.1×.
std::string format_value(double value, const std::string& unit);

// A speedup with its 95% interval: "6.1× [5.8–6.4]".
std::string speedup_with_interval(double speedup, double low, double high);
// A cell's paired speedup over its suite's baseline engine (harness/paired_timing.h) with its interval; "" when
// the cell has none (the baseline itself, text cells, cells timed unpaired).
std::string paired_speedup_text(const CellRecord& cell);

}  // namespace ctxbench::reports
