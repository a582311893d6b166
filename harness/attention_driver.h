// Drives an engine over an attention-level problem and measures it: time (median of repetitions), keys and
// bytes, output error against a float64 dense reference, and recall of the keys that matter.
#pragma once

#include <functional>
#include <vector>

#include "core/measurement.h"
#include "engines/engine.h"
#include "tasks/task.h"

namespace ctxbench {

// `warmup` repetitions run first and are not recorded.
std::vector<Measurement> run_attention_problem(const engines::Engine& engine, const tasks::AttentionProblem& problem,
                                               int repetitions, int warmup = 0);

// Told the index of the engine about to run, and kNoEngine once none runs: lets a caller account each engine's
// own time (the per-engine time budget of a paired group, harness/isolation.h).
using TurnObserver = std::function<void(int engine)>;
inline constexpr int kNoEngine = -1;

// The same for several engines on one problem, taking turns repetition by repetition (engine 0, 1, ..., 0, 1,
// ..., warm-up included), so that a change of machine state hits every engine alike: paired timing
// (harness/paired_timing.h). Entry i holds engine i's measurements.
std::vector<std::vector<Measurement>> run_attention_problem_paired(const std::vector<const engines::Engine*>& engines,
                                                                   const tasks::AttentionProblem& problem,
                                                                   int repetitions, int warmup = 0,
                                                                   const TurnObserver& on_turn = {});

// ||a - b|| / ||b|| over the given values.
double relative_l2_error(const std::vector<float>& actual, const std::vector<double>& expected);

}  // namespace ctxbench
