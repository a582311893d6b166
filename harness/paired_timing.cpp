#include "harness/paired_timing.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/measurement.h"
#include "core/random.h"

namespace ctxbench {
namespace {

// The value at fraction q of sorted values, interpolating between ranks.
double quantile(const std::vector<double>& sorted, double q) {
  const double rank = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(rank));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (rank - static_cast<double>(below)) * (sorted[above] - sorted[below]);
}

}  // namespace

PairedSpeedup paired_speedup(const std::vector<double>& baseline_seconds, const std::vector<double>& engine_seconds,
                             int resamples, std::uint64_t seed) {
  if (baseline_seconds.size() != engine_seconds.size() || baseline_seconds.empty() || resamples < 1)
    throw std::invalid_argument(
        "paired_speedup: needs as many engine repetitions as baseline ones, at least one, and a resample");
  PairedSpeedup out;
  for (std::size_t i = 0; i < baseline_seconds.size(); ++i) {
    if (!(baseline_seconds[i] > 0) || !(engine_seconds[i] > 0))
      throw std::invalid_argument("paired_speedup: a repetition's time is not positive");
    out.ratios.push_back(baseline_seconds[i] / engine_seconds[i]);
  }
  out.median = median(out.ratios);
  Rng rng(seed);
  const auto n = static_cast<std::int64_t>(out.ratios.size());
  std::vector<double> medians, resample(out.ratios.size());
  for (int r = 0; r < resamples; ++r) {
    for (double& value : resample) value = out.ratios[static_cast<std::size_t>(rng.integer(0, n - 1))];
    medians.push_back(median(resample));
  }
  std::sort(medians.begin(), medians.end());
  out.low = quantile(medians, 0.025);
  out.high = quantile(medians, 0.975);
  return out;
}

}  // namespace ctxbench
