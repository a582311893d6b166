// A text task for the runner and remote tests: find the key in a prompt padded with 'x' to the cell's length (in
// the tokenizer's tokens), scored by exact match.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "tasks/task.h"

namespace ctxbench::testing {

inline tasks::TaskInfo key_task(const std::string& name, int default_samples) {
  return {
      .name = name,
      .description = "test task: the key of a padded prompt",
      .params = {{.name = "samples",
                  .type = ParamType::integer,
                  .default_value = default_samples,
                  .help = "samples",
                  .min = 1}},
      .make_text_samples =
          [](const tasks::CellContext& cell, const Tokenizer& tokenizer) {
            const auto tokens = [&](const std::string& text) {
              return static_cast<int>(tokenizer.encode(text).size());
            };
            std::vector<TextSample> out;
            for (int i = 0; i < cell.params.at("samples").get<int>(); ++i) {
              const std::string key = std::to_string(1000 + 7 * i + cell.seed);
              std::string prompt = "The key is " + key + ". ";
              prompt.append(std::max(0, cell.context_length - tokens(prompt)), 'x');
              while (tokens(prompt) < cell.context_length) prompt += 'x';  // where 'x's merge into fewer tokens
              out.push_back({prompt, {key}, 8, {}, Json()});
            }
            return out;
          },
      .score = [](const TextSample& s,
                  const std::string& prediction) { return prediction == s.references[0] ? 1.0 : 0.0; },
      .metric = "accuracy",
  };
}

}  // namespace ctxbench::testing
