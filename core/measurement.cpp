#include "core/measurement.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ctxbench {

double median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double Measurement::value() const { return median(repetitions); }

}  // namespace ctxbench
