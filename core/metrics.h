// The metric catalogue: every metric a cell can store, declared once with its unit, which way is better, how
// its values combine, and the name reports show. Producers make their measurements from a catalogued name
// (make_measurement), so a unit is written in one place; readers (reports, compare, gate) look metrics up by
// name and fall back on the stored unit for names the catalogue does not know (databases from older builds).
#pragma once

#include <string>
#include <vector>

#include "core/measurement.h"
#include "core/registry.h"

namespace ctxbench {

enum class Better { higher, lower, neither };

enum class Combine { median, mean };

struct Metric {
  std::string name;  // as stored
  std::string unit;  // "s", "B", "%", "ratio", "tokens", ...
  Better better = Better::neither;
  std::string display;  // what reports show: "Needle recall"
  Combine across_repetitions = Combine::median;
  Combine across_cells = Combine::mean;

  // A text task's per-sample scores are fractions; their mean is multiplied by this (100 for "%" metrics, the
  // official scripts' convention).
  double scale() const { return unit == "%" ? 100.0 : 1.0; }
};

using MetricCatalogue = Registry<Metric>;
// Tests register their own metrics with one line; the built-in ones are in the table of core/metrics.cpp.
using RegisterMetric = Registrar<Metric>;

// Throws std::logic_error for a name that is not catalogued: producing one is a programming error.
const Metric& catalogued_metric(const std::string& name);

// A measurement of a catalogued metric, in its catalogued unit.
Measurement make_measurement(const std::string& metric, std::vector<double> repetitions = {});

// NaN for no values.
double combine(Combine how, std::vector<double> values);

}  // namespace ctxbench
