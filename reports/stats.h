// Rank statistics for judging timing differences against their noise.
#pragma once

#include <vector>

namespace ctxbench::reports {

struct MannWhitney {
  double u = 0;            // pairs (a, b) with b > a, ties counted 1/2
  double p_greater = 1;    // one-sided: b tends to be larger than a
  double p_less = 1;       // one-sided: b tends to be smaller than a
  double p_two_sided = 1;  // min(1, 2 * the smaller one-sided p)
  bool exact = false;      // exact permutation distribution (no ties, small samples) or normal approximation
};

// Mann-Whitney U of sample b against sample a. Exact when there are no ties and both samples have at most
// kExactLimit values; otherwise the normal approximation with the tie-corrected variance and a continuity
// correction. Both samples must be non-empty.
MannWhitney mann_whitney(const std::vector<double>& a, const std::vector<double>& b);

inline constexpr int kExactLimit = 30;

// The smallest two-sided p-value the exact test can reach with samples of these sizes (2 / C(n1+n2, n1)):
// below it no difference can be called significant, however large.
double smallest_two_sided_p(int n1, int n2);

// The first quartile, the median and the third quartile, interpolated linearly between order statistics (R's
// type 7, numpy's default); NaN for no values.
struct Quartiles {
  double q1 = 0, median = 0, q3 = 0;
};
Quartiles quartiles(std::vector<double> values);

std::vector<double> scaled(std::vector<double> values, double factor);

}  // namespace ctxbench::reports
