#include "core/measurement.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/metrics.h"

namespace ctxbench {

double median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double Measurement::value() const {
  const Metric* catalogued = MetricCatalogue::instance().find(metric);
  return combine(catalogued ? catalogued->across_repetitions : Combine::median, repetitions);
}

}  // namespace ctxbench
