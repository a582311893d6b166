#include "reports/stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ctxbench::reports {
namespace {

bool has_ties(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return std::adjacent_find(values.begin(), values.end()) != values.end();
}

// counts[u]: how many of the C(n1 + n2, n1) orderings of n1 a's and n2 b's have U = u. Built by placing the
// largest value: a b there is above all i a's (adds i to U), an a there adds nothing.
std::vector<double> exact_u_counts(int n1, int n2) {
  const int max_u = n1 * n2;
  // table[i][j] is the distribution for i a's and j b's; only the previous column j - 1 is needed.
  std::vector<std::vector<double>> previous(n1 + 1, std::vector<double>(max_u + 1, 0.0)), current = previous;
  for (int i = 0; i <= n1; ++i) previous[i][0] = 1.0;  // j = 0: a single ordering with U = 0
  for (int j = 1; j <= n2; ++j) {
    for (int i = 0; i <= n1; ++i) {
      std::fill(current[i].begin(), current[i].end(), 0.0);
      for (int u = 0; u <= max_u; ++u) {
        if (u >= i) current[i][u] += previous[i][u - i];  // largest is a b
        if (i > 0) current[i][u] += current[i - 1][u];    // largest is an a
      }
    }
    std::swap(previous, current);
  }
  return previous[n1];
}

double normal_upper_tail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

}  // namespace

MannWhitney mann_whitney(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) throw std::invalid_argument("mann_whitney: both samples need at least one value");
  MannWhitney r;
  for (double x : a) {
    for (double y : b) r.u += y > x ? 1.0 : y == x ? 0.5 : 0.0;
  }
  const int n1 = static_cast<int>(a.size()), n2 = static_cast<int>(b.size());
  std::vector<double> pooled(a);
  pooled.insert(pooled.end(), b.begin(), b.end());
  if (n1 <= kExactLimit && n2 <= kExactLimit && !has_ties(pooled)) {
    const auto counts = exact_u_counts(n1, n2);
    double total = 0, at_least = 0, at_most = 0;
    for (std::size_t u = 0; u < counts.size(); ++u) {
      total += counts[u];
      if (static_cast<double>(u) >= r.u) at_least += counts[u];
      if (static_cast<double>(u) <= r.u) at_most += counts[u];
    }
    r.p_greater = at_least / total;
    r.p_less = at_most / total;
    r.exact = true;
  } else {
    std::sort(pooled.begin(), pooled.end());
    const double n = n1 + n2;
    double tie_term = 0;
    for (auto it = pooled.begin(); it != pooled.end();) {
      const auto end = std::upper_bound(it, pooled.end(), *it);
      const double t = static_cast<double>(end - it);
      tie_term += t * t * t - t;
      it = end;
    }
    const double variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)));
    if (variance <= 0) return r;  // every value equal: no evidence either way
    const double sd = std::sqrt(variance), mean = n1 * n2 / 2.0;
    r.p_greater = std::min(1.0, normal_upper_tail((r.u - mean - 0.5) / sd));
    r.p_less = std::min(1.0, normal_upper_tail((mean - r.u - 0.5) / sd));
  }
  r.p_two_sided = std::min(1.0, 2.0 * std::min(r.p_greater, r.p_less));
  return r;
}

double smallest_two_sided_p(int n1, int n2) {
  if (n1 < 1 || n2 < 1) return 1.0;
  // 2 / C(n1 + n2, n1), computed in logs so large samples do not overflow.
  const double log_choose = std::lgamma(n1 + n2 + 1.0) - std::lgamma(n1 + 1.0) - std::lgamma(n2 + 1.0);
  return std::min(1.0, 2.0 * std::exp(-log_choose));
}

std::vector<double> scaled(std::vector<double> values, double factor) {
  for (double& v : values) v *= factor;
  return values;
}

Quartiles quartiles(std::vector<double> values) {
  if (values.empty()) return {std::nan(""), std::nan(""), std::nan("")};
  std::sort(values.begin(), values.end());
  const auto at = [&](double fraction) {
    const double position = fraction * static_cast<double>(values.size() - 1);
    const auto below = static_cast<std::size_t>(std::floor(position));
    const std::size_t above = std::min(below + 1, values.size() - 1);
    return values[below] + (position - below) * (values[above] - values[below]);
  };
  return {at(0.25), at(0.5), at(0.75)};
}

}  // namespace ctxbench::reports
