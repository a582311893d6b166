#include "harness/preflight.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <set>

#include "engines/engine.h"
#include "model/backend.h"
#include "tasks/task.h"

namespace ctxbench {
namespace {

bool made_by_local_model(const Cell& cell, const tasks::TaskInfo& task) {
  if (!task.make_text_samples) return false;
  return !engines::EngineRegistry::instance().get(cell.engine.method, "engine").make_generator;
}

}  // namespace

void check_text_cells(const std::vector<Cell>& cells) {
  std::map<std::string, model::PromptTokenizer> tokenizers;  // by model parameters
  std::set<std::string> checked;                             // task, parameters, length, depth, seed
  std::vector<std::string> failures;
  for (const Cell& cell : cells) {
    const auto& task = tasks::TaskRegistry::instance().get(cell.task.method, "task");
    if (!made_by_local_model(cell, task)) continue;
    const std::string prompts = fmt::format("{} {} {} {} {}", cell.task.method, cell.task.params.dump(),
                                            cell.context_length, cell.depth, cell.seed);
    if (!checked.insert(prompts).second) continue;
    try {
      const Json model_params = model::model_params_of(cell.task.params);  // as the runner opens the model
      auto tokenizer = tokenizers.find(model_params.dump());
      if (tokenizer == tokenizers.end())
        tokenizer = tokenizers.emplace(model_params.dump(), model::open_tokenizer(model_params)).first;
      const tasks::CellContext context{cell.task.params, cell.context_length, cell.depth, cell.seed};
      task.make_text_samples(context, *tokenizer->second.tokenizer);
    } catch (const std::exception& e) {
      failures.push_back(fmt::format("  {}: {}", describe_cell(cell), e.what()));
    }
  }
  if (failures.empty()) return;
  throw InputError(fmt::format("{} cell(s) cannot make their prompts, so the run does not start:\n{}", failures.size(),
                               fmt::join(failures, "\n")));
}

}  // namespace ctxbench
