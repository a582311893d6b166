// The Pareto front of a trade-off: the configurations no other configuration beats on both accuracy and cost.
#pragma once

#include <cstddef>
#include <vector>

namespace ctxbench::reports {

struct TradeoffPoint {
  double x = 0;  // the cost (keys, bytes) or the gain (speedup)
  double y = 0;  // the accuracy: higher is better
};

// Indices of the points that no other point dominates, ordered by x ascending (ties by y descending). A point q
// dominates p when q is at least as good on both axes and better on one; y is better higher, x better lower when
// `lower_x_is_better` (costs), else higher (speedups). Identical points do not dominate each other, so all of them
// are on the front. Points with a non-finite coordinate are never on it. O(n log n).
std::vector<std::size_t> pareto_front(const std::vector<TradeoffPoint>& points, bool lower_x_is_better);

}  // namespace ctxbench::reports
