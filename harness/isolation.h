// Runs one cell in a child process so that a crash, a runaway allocation or a hang in an engine costs that
// cell only: the child sends its result back through a pipe, the parent enforces the time budget.
#pragma once

#include <stdexcept>

#include "harness/runner.h"

namespace ctxbench {

// A second SIGINT or SIGTERM (harness/interrupt.h) stopped the cell: it has no result and is not stored.
struct CellAbandoned : std::runtime_error {
  CellAbandoned() : std::runtime_error("abandoned by a second interrupt") {}
};

// One engine of a paired group ran past its own time budget: the group's process was stopped there.
struct EngineOverBudget : std::runtime_error {
  EngineOverBudget(std::size_t engine, double seconds, double budget);
  std::size_t engine;  // the index of its cell in the group
  double seconds;      // the time it had run
};

// Throws CellAbandoned, or std::runtime_error describing what went wrong (time budget, memory budget, signal, exit
// status).
CellOutput run_cell_isolated(const Cell& cell, const Limits& limits);
// run_cells_paired in one child process. Each engine has the time budget of one cell for its own runs (its making
// included): the child reports whose turn it is, and the parent stops it with EngineOverBudget when an engine's
// time exceeds it. The group as a whole has the budgets of its cells together (for what no engine runs).
std::vector<CellOutput> run_cells_paired_isolated(const std::vector<Cell>& cells, const Limits& limits);

Json cell_output_to_json(const CellOutput& output);
CellOutput cell_output_from_json(const Json& json);

}  // namespace ctxbench
