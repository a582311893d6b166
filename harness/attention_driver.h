// Drives an engine over an attention-level problem and measures it: time (median of repetitions), keys and
// bytes, output error against a float64 dense reference, and recall of the keys that matter.
#pragma once

#include <vector>

#include "core/measurement.h"
#include "engines/engine.h"
#include "tasks/task.h"

namespace ctxbench {

// `warmup` repetitions run first and are not recorded.
std::vector<Measurement> run_attention_problem(const engines::Engine& engine, const tasks::AttentionProblem& problem,
                                               int repetitions, int warmup = 0);

// The same for several engines on one problem, taking turns repetition by repetition (engine 0, 1, ..., 0, 1,
// ..., warm-up included), so that a change of machine state hits every engine alike: paired timing
// (harness/paired_timing.h). Entry i holds engine i's measurements.
std::vector<std::vector<Measurement>> run_attention_problem_paired(const std::vector<const engines::Engine*>& engines,
                                                                   const tasks::AttentionProblem& problem,
                                                                   int repetitions, int warmup = 0);

// ||a - b|| / ||b|| over the given values.
double relative_l2_error(const std::vector<float>& actual, const std::vector<double>& expected);

}  // namespace ctxbench
