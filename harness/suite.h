// Suite files: a matrix of engines, tasks, context lengths, depths and seeds that the harness expands into
// cells. Everything is checked against the registries before any work starts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/params.h"

namespace ctxbench {

struct ComponentSpec {
  std::string label;   // unique within the suite; defaults to the registered name
  std::string method;  // the registered engine or task name
  Json params;         // resolved: checked, defaults filled in
  // A task's own grid ("context_lengths", "depths" in its entry); empty: the suite's.
  std::vector<int> context_lengths;
  std::vector<double> depths;
};

struct Thresholds {
  std::optional<double> max_slowdown;       // fraction, e.g. 0.05
  std::optional<double> max_accuracy_drop;  // absolute, in the metric's own unit
};

// Budgets of one cell: a cell that exceeds them is stopped and stored as failed, and the run goes on.
struct Limits {
  double cell_seconds = 0;    // 0: no limit
  double cell_memory_mb = 0;  // address-space limit of the cell's process; 0: no limit
};

struct Cell {
  std::string key;  // stable hash of the canonical parameters below
  ComponentSpec engine;
  ComponentSpec task;
  int context_length = 0;
  double depth = 50.0;
  std::uint64_t seed = 0;
  int repetitions = 1;
  // Repetitions run before the timed ones and not recorded (a cold first repetition is consistently slower). A
  // run setting, not part of the key: a cell measured with another warm-up is the same cell.
  int warmup = 1;
};

struct Suite {
  std::string name;
  std::string description;
  std::string source;  // file name, for messages
  Json document;       // the file as parsed
  std::vector<ComponentSpec> engines;
  std::vector<ComponentSpec> tasks;
  std::vector<int> context_lengths;
  std::vector<double> depths;
  std::vector<std::uint64_t> seeds;
  int repetitions = 1;
  int warmup = 1;
  // The engine label speedups are measured against ("baseline"; by default the engine labelled "dense", else the
  // first dense engine; "" for none).
  std::string baseline;
  // "paired": attention-level cells that differ only by engine run together, repetitions taking turns, and store
  // speedups against the baseline. Runs compared by gate must be timed alike (both paired, or both not).
  bool paired = true;
  Thresholds thresholds;
  Limits limits;

  std::vector<Cell> cells() const;
};

// Throws InputError naming the file, the JSON path and what was expected.
Suite parse_suite(const Json& document, const std::string& source);
Suite load_suite(const std::string& path);

// How `suite` differs from a stored suite document: cells added and removed (with the first of each) and the
// other settings that changed; empty when they are the same.
std::string suite_differences(const Json& stored, const Suite& suite);

// The canonical parameters of a cell and their stable hash (FNV-1a 64, hex).
Json canonical_cell(const Cell& cell);
std::string cell_key(const Cell& cell);
// "dense / niah T=4096 depth=50 seed=0": how progress lines and errors name a cell.
std::string describe_cell(const Cell& cell);

// The declared parameters of a registered engine method, defaults included; nullptr for a method this build does
// not register (a database written by another build). Reports read the defaults through it.
const ParamSchema* engine_schema(const std::string& method);

// gkamradt's NIAH sigmoid depth spacing of a linear grid.
std::vector<double> sigmoid_depths(double from, double to, int count);

}  // namespace ctxbench
