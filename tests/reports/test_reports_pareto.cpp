// The Pareto front of the trade-off charts against the definition, checked pair by pair, and the chart drawn from
// it.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <set>

#include "reports/pareto.h"
#include "reports/svg.h"

using namespace ctxbench::reports;

namespace {

// The definition, O(n^2): p is on the front unless some q is at least as good on both axes and better on one.
std::set<std::size_t> front_by_definition(const std::vector<TradeoffPoint>& points, bool lower_x_is_better) {
  const auto x_at_least_as_good = [&](double q, double p) { return lower_x_is_better ? q <= p : q >= p; };
  std::set<std::size_t> front;
  for (std::size_t p = 0; p < points.size(); ++p) {
    if (!std::isfinite(points[p].x) || !std::isfinite(points[p].y)) continue;
    bool dominated = false;
    for (std::size_t q = 0; q < points.size() && !dominated; ++q) {
      if (!std::isfinite(points[q].x) || !std::isfinite(points[q].y)) continue;
      const bool as_good = x_at_least_as_good(points[q].x, points[p].x) && points[q].y >= points[p].y;
      const bool better = points[q].x != points[p].x || points[q].y != points[p].y;
      dominated = as_good && better;
    }
    if (!dominated) front.insert(p);
  }
  return front;
}

std::set<std::size_t> as_set(const std::vector<std::size_t>& indices) { return {indices.begin(), indices.end()}; }

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("the Pareto front of a hand-made set is exactly its non-dominated points", "[reports][pareto]") {
  // Keys attended (lower is better) and accuracy.
  const std::vector<TradeoffPoint> points = {
      {64, 50},            // 0: the cheapest
      {128, 80},           // 1
      {128, 70},           // 2: beaten by 1 at the same cost
      {256, 80},           // 3: beaten by 1, cheaper at the same accuracy
      {512, 95},           // 4
      {512, 95},           // 5: identical to 4, so neither beats the other
      {1024, 94},          // 6: beaten by 4
      {2048, 100},         // 7: the most accurate
      {NAN, 100},          // 8: not measured
      {32, std::nan("")},  // 9: not measured
  };
  const auto front = pareto_front(points, true);
  CHECK(front == std::vector<std::size_t>{0, 1, 4, 5, 7});
  CHECK(as_set(front) == front_by_definition(points, true));
  // Speedup (higher is better): now the points with more keys are the "fast" ones.
  const auto fast_front = pareto_front(points, false);
  CHECK(as_set(fast_front) == std::set<std::size_t>{7});
  CHECK(as_set(fast_front) == front_by_definition(points, false));
}

TEST_CASE("the Pareto front agrees with the definition on random sets with ties", "[reports][pareto]") {
  std::mt19937 rng(Catch::rngSeed());
  std::uniform_int_distribution<int> coordinate(0, 6);  // few values: many ties
  for (int round = 0; round < 200; ++round) {
    std::vector<TradeoffPoint> points(1 + round % 12);
    for (auto& p : points) p = {static_cast<double>(coordinate(rng)), static_cast<double>(coordinate(rng))};
    for (const bool lower : {true, false}) {
      const auto front = pareto_front(points, lower);
      INFO("round " << round << (lower ? " (costs)" : " (gains)"));
      CHECK(as_set(front) == front_by_definition(points, lower));
      CHECK(std::is_sorted(front.begin(), front.end(),
                           [&](std::size_t a, std::size_t b) { return points[a].x < points[b].x; }));
    }
  }
}

TEST_CASE("a trade-off chart draws one mark per configuration and the front of those that are not references",
          "[reports][pareto][html]") {
  ScatterChart chart{"tradeoff-keys",
                     "Accuracy vs keys",
                     "keys",
                     "accuracy",
                     [](double x) { return std::to_string(static_cast<int>(x)); },
                     [](double y) { return std::to_string(static_cast<int>(y)); },
                     {},
                     true,
                     true};
  chart.points = {{4096, 100, "dense", "#000", "dense", true},
                  {64, 100, "topk", "#111", "topk", true},
                  {64, 60, "small", "#222", "small", false},
                  {256, 90, "medium", "#333", "medium", false},
                  {512, 85, "wasteful", "#444", "wasteful", false}};
  const auto svg = render_scatter_chart(chart);
  CHECK(count(svg, R"(<g class="point)") == 5);
  CHECK(count(svg, R"(<g class="point reference")") == 2);
  // The references would beat every other point; they are left out of the front, which is small and medium.
  CHECK(count(svg, R"(<g class="point front" data-engine="small">)") == 1);
  CHECK(count(svg, R"(<g class="point front" data-engine="medium">)") == 1);
  CHECK(count(svg, R"(<g class="point" data-engine="wasteful">)") == 1);
  CHECK(count(svg, R"(<path class="front-line")") == 1);
  CHECK(count(svg, "<title>medium</title>") == 1);
}
