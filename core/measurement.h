#pragma once

#include <string>
#include <vector>

namespace ctxbench {

// One metric of a cell: its value combines the repetitions as the catalogue says (core/metrics.h), the median
// for a metric it does not know.
struct Measurement {
  std::string metric;
  std::string unit;
  std::vector<double> repetitions;

  double value() const;
};

double median(std::vector<double> values);

}  // namespace ctxbench
