// Runs a suite: expands it into cells, skips cells already stored (on --resume), and for each remaining cell
// asks the task for its work, asks the engine to run it, measures it and stores it in one transaction.
// SIGINT or SIGTERM stops the run once the cell in flight is stored (a second one abandons that cell); the run
// is then `interrupted`. It is `finished` only when every cell is stored ok.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "harness/attention_driver.h"
#include "harness/shard.h"
#include "harness/store.h"
#include "harness/suite.h"

namespace ctxbench {

struct RunOptions {
  bool resume = false;
  // On --resume, a suite whose cells or settings differ from the stored one is refused unless this is set;
  // then the new suite is recorded with the run.
  bool allow_suite_change = false;
  std::FILE* log = stdout;
  Shard shard = {};  // run only this shard's cells (the default 0/1 is all of them)
  // Each cell in its own process: a crash or a budget overrun fails that cell only. The suite's limits apply.
  bool isolate = true;
};

struct RunSummary {
  std::int64_t run_id = 0;
  int cells = 0;
  int skipped = 0;  // already stored by an earlier attempt
  int failed = 0;
  int stored = 0;       // cells of this run (and shard) stored ok, by this attempt or an earlier one
  int stop_signal = 0;  // SIGINT or SIGTERM when the run was interrupted, else 0
};

RunSummary run_suite(const Suite& suite, Store& store, const RunOptions& options);

struct CellOutput {
  std::vector<Measurement> measurements;
  std::vector<SampleRecord> samples;  // text tasks: every prediction with its score
};

// Runs one cell; throws whatever the engine or task throws.
CellOutput run_cell(const Cell& cell);
// Runs attention-level cells that differ only by engine, their repetitions taking turns (paired timing); entry
// i is cell i's output. `on_turn` is told which cell's engine runs (its making included) and when none does.
std::vector<CellOutput> run_cells_paired(const std::vector<Cell>& cells, const TurnObserver& on_turn = {});

}  // namespace ctxbench
