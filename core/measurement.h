#pragma once

#include <string>
#include <vector>

namespace ctxbench {

// One metric of a cell: its value is the median of the repetitions (or the single value).
struct Measurement {
  std::string metric;
  std::string unit;
  std::vector<double> repetitions;

  double value() const;
};

double median(std::vector<double> values);

}  // namespace ctxbench
