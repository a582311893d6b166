#include "tasks/text_tasks/ruler/synthetic.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/params.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/ruler/scripts.h"
#include "tasks/text_tasks/ruler/tasks.h"

namespace ctxbench::tasks::text::ruler {
namespace {

const SyntheticTask& task_named(std::string_view name) {
  const auto it = std::find_if(kSyntheticTasks.begin(), kSyntheticTasks.end(),
                               [&](const SyntheticTask& t) { return t.name == name; });
  if (it == kSyntheticTasks.end()) throw InputError(fmt::format("ruler: unknown task \"{}\"", name));
  return *it;
}

std::vector<Generated> run_script(const Options& o, const SyntheticTask& task, const Tokenizer& tokenizer) {
  switch (task.script) {
    case Script::niah: return niah_samples(o, task.niah, tokenizer);
    case Script::variable_tracking: return variable_tracking_samples(o, tokenizer);
    case Script::common_words_extraction: return common_words_samples(o, tokenizer);
    case Script::freq_words_extraction: return freq_words_samples(o, tokenizer);
    case Script::qa: return qa_samples(o, task.qa, tokenizer);
  }
  return {};
}

}  // namespace

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const SyntheticTask& t : kSyntheticTasks) out.emplace_back(t.name);
    return out;
  }();
  return names;
}

std::string_view base_task_of(std::string_view task) { return script_name(task_named(task).script); }

bool uses_string_match_part(std::string_view task) { return task_named(task).script == Script::qa; }

std::vector<Sample> generate(const Options& o, const Tokenizer& tokenizer) {
  const SyntheticTask& task = task_named(o.task);
  std::vector<Generated> generated = run_script(o, task, tokenizer);
  // The answer prefix is split off the end as the current RULER scripts do (rfind of its first 10 characters).
  const auto& t = script_template(task.script);
  std::vector<Sample> out;
  for (auto& g : generated) {
    const auto cut = g.text.rfind(std::string(t.answer_prefix.substr(0, 10)));
    Sample s{g.text.substr(0, cut), g.text.substr(cut), std::move(g.outputs), 0};
    s.length = token_count(tokenizer, g.text) + t.tokens_to_generate;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace ctxbench::tasks::text::ruler
