// Checks before a run starts that its text cells can make their prompts.
#pragma once

#include <vector>

#include "harness/suite.h"

namespace ctxbench {

// Makes the prompts of every text cell run by the local model (once per task, parameters, length, depth and
// seed: the engine does not change them) with the model's tokenizer, so that a task that cannot work with the
// model or the length (a prompt that does not fit, a missing dataset file, a model directory without a tokenizer)
// stops the run before any work, naming every such cell (one per task, parameters, length, depth and seed),
// instead of failing cell after cell. Cells of engines
// that bring their own generator (a remote server) are left to run time. Throws InputError.
void check_text_cells(const std::vector<Cell>& cells);

}  // namespace ctxbench
