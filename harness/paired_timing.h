// Paired timing: engines compared on the same cell take turns repetition by repetition (A B A B ...), so that a
// change of machine state (another process, a frequency step) hits both; the speedup is then the median of the
// per-repetition ratios, with a bootstrap interval that says how far to trust it.
#pragma once

#include <cstdint>
#include <vector>

namespace ctxbench {

inline constexpr int kBootstrapResamples = 2000;
inline constexpr std::uint64_t kBootstrapSeed = 20261206;  // the same interval for the same numbers, every time

struct PairedSpeedup {
  std::vector<double> ratios;  // baseline time / engine time, one per repetition pair
  double median = 0;
  double low = 0;  // bootstrap 95% interval of the median (percentiles 2.5 and 97.5 of the resampled medians)
  double high = 0;
};

// Pairs repetition i of the baseline with repetition i of the engine. Throws std::invalid_argument when the two
// differ in length or are empty, a time is not positive, or resamples < 1.
PairedSpeedup paired_speedup(const std::vector<double>& baseline_seconds, const std::vector<double>& engine_seconds,
                             int resamples = kBootstrapResamples, std::uint64_t seed = kBootstrapSeed);

}  // namespace ctxbench
