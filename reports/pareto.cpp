#include "reports/pareto.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ctxbench::reports {

std::vector<std::size_t> pareto_front(const std::vector<TradeoffPoint>& points, bool lower_x_is_better) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (std::isfinite(points[i].x) && std::isfinite(points[i].y)) order.push_back(i);
  }
  // The best x first, then the best y within one x: a point is dominated exactly when an earlier group (strictly
  // better x) reached its y, or its own group holds a higher y.
  const auto better_x = [&](double a, double b) { return lower_x_is_better ? a < b : a > b; };
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (points[a].x != points[b].x) return better_x(points[a].x, points[b].x);
    return points[a].y > points[b].y;
  });
  std::vector<std::size_t> front;
  double best_of_better_x = -std::numeric_limits<double>::infinity();
  for (std::size_t start = 0; start < order.size();) {
    std::size_t end = start;
    while (end < order.size() && points[order[end]].x == points[order[start]].x) ++end;
    const double group_best = points[order[start]].y;
    for (std::size_t k = start; k < end && points[order[k]].y == group_best; ++k) {
      if (group_best > best_of_better_x) front.push_back(order[k]);
    }
    best_of_better_x = std::max(best_of_better_x, group_best);
    start = end;
  }
  std::sort(front.begin(), front.end(), [&](std::size_t a, std::size_t b) {
    if (points[a].x != points[b].x) return points[a].x < points[b].x;
    if (points[a].y != points[b].y) return points[a].y > points[b].y;
    return a < b;
  });
  return front;
}

}  // namespace ctxbench::reports
