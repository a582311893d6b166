// Two runs of a report side by side: compare's cell matching and judgement (reports/comparison.h), as rows the HTML
// and the terminal report both draw.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reports/comparison.h"

namespace ctxbench::reports {

enum class Direction { worse, better, neither };

struct RunToRunRow {
  const CellRecord* cell = nullptr;  // run B's
  std::string metric;                // its display name
  std::string before, after;         // timings with the interquartile range of their repetitions
  std::string change, judgement;
  Direction direction = Direction::neither;  // judged slower or faster, accuracy lower or higher
};

struct RunToRun {
  Comparison comparison;
  std::vector<RunToRunRow> rows;   // compare's headline metrics of every matched cell
  std::vector<std::string> notes;  // parameter changes, cells failing or fixed or in one run only, load
};

// Throws InputError as compare_runs does (a run without successful cells, runs without a cell in common).
RunToRun run_to_run(Store& store, std::int64_t before, std::int64_t after, double alpha);

// "1.23 ms (IQR 1.20–1.31 ms, 5 reps)" for a timing with repetitions; the value alone otherwise.
std::string timing_with_spread(const Measurement& m);

}  // namespace ctxbench::reports
