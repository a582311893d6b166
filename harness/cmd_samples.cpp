#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>

#include "core/command.h"
#include "model/backend.h"
#include "tasks/task.h"

namespace ctxbench {
namespace {

struct SeedRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};

std::uint64_t parse_seed(const std::string& digits, const std::string& text) {
  const bool all_digits = !digits.empty() && digits.size() <= 19 &&
                          std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); });
  if (!all_digits)
    throw InputError(fmt::format("--seeds {}: expected A-B or A, non-negative integers, e.g. 0-99", text));
  return std::stoull(digits);
}

// "A-B" (inclusive) or "A".
SeedRange parse_seed_range(const std::string& text) {
  const auto dash = text.find('-');
  if (dash == std::string::npos) {
    const std::uint64_t seed = parse_seed(text, text);
    return {seed, seed};
  }
  const SeedRange range{parse_seed(text.substr(0, dash), text), parse_seed(text.substr(dash + 1), text)};
  if (range.first > range.last) throw InputError(fmt::format("--seeds {}: the first seed is after the last", text));
  return range;
}

Json parse_params(const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(fmt::format("--params: expected a JSON object, got {} ({})", text, e.what()));
  }
}

const tasks::TaskInfo& text_task(const std::string& name) {
  const auto& task = tasks::TaskRegistry::instance().get(name, "task");
  if (!task.make_text_samples)
    throw InputError(fmt::format("samples writes text tasks' prompts; {} is an attention-level task", name));
  return task;
}

// One JSON line per sample of one cell, its fields in the order of the help text (ordered_json).
void write_cell(std::ostream& out, const std::string& task, const tasks::CellContext& cell,
                const model::PromptTokenizer& tokenizer, const std::vector<TextSample>& samples) {
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const TextSample& s = samples[i];
    const std::vector<int> ids = tokenizer.prompt_ids(s.prompt);
    const nlohmann::ordered_json line = {{"task", task},
                                         {"params", cell.params},
                                         {"length", cell.context_length},
                                         {"depth", cell.depth},
                                         {"seed", cell.seed},
                                         {"index", i},
                                         {"prompt", s.prompt},
                                         {"references", s.references},
                                         {"max_new_tokens", s.max_new_tokens},
                                         {"stop", s.stop},
                                         {"prompt_tokens", ids.size()},
                                         {"prompt_ids", ids},
                                         {"extra", s.extra.is_null() ? Json::object() : s.extra}};
    try {
      out << line.dump() << '\n';
    } catch (const Json::type_error& e) {  // JSON carries text only: a task's cut through a character is a bug
      throw std::runtime_error(fmt::format("{} seed {} sample {}: not valid UTF-8 ({})", task, cell.seed, i, e.what()));
    }
  }
}

int samples_command(const Args& args) {
  args.expect_positionals(1, 1);
  const std::string name = args.positionals()[0];
  const auto& task = text_task(name);
  const Json params = resolve_params(task.params, parse_params(args.text("--params")), "--params");
  const SeedRange seeds = parse_seed_range(args.text("--seeds"));
  const auto tokenizer = model::open_tokenizer(model::model_params_of(params));
  const std::string path = args.text("--out");
  std::ofstream file;
  if (path != "-") {
    file.open(path);
    if (!file) throw InputError(fmt::format("--out {}: cannot be written", path));
  }
  std::ostream& out = path == "-" ? std::cout : file;
  const int length = static_cast<int>(args.integer("--length"));
  const double depth = args.number("--depth");
  for (std::uint64_t seed = seeds.first;; ++seed) {
    const tasks::CellContext cell{params, length, depth, seed};
    write_cell(out, name, cell, tokenizer, task.make_text_samples(cell, *tokenizer.tokenizer));
    if (seed == seeds.last) break;
  }
  out.flush();
  if (!out) throw std::runtime_error(fmt::format("--out {}: writing failed", path));
  return 0;
}

const RegisterCommand registration{{
    .name = "samples",
    .summary = "write a text task's prompts and references as JSON lines",
    .usage = "ctxbench samples TASK --length N --seeds A-B [--params JSON] [--depth D] [--out FILE]",
    .description =
        "For each seed of the range builds the samples of the task's cell (parameters resolved against the\n"
        "task's schema as a suite's are, context length N, depth D, that seed) in the tokens of the task's\n"
        "`model`, whose config.json (and tokenizer.json) alone is read, and writes one JSON object per sample:\n"
        "task, params (resolved), length, depth, seed, index, prompt, references, max_new_tokens, stop,\n"
        "prompt_tokens and prompt_ids (what the model reads: BOS, when its config has one, and the prompt's\n"
        "tokens, inside the task's prompt_template when it has one), extra.",
    .options = {{.name = "--params",
                 .type = ParamType::string,
                 .default_value = "{}",
                 .help = "the task's parameters, a JSON object as in a suite"},
                {.name = "--length",
                 .type = ParamType::integer,
                 .help = "context length in the model's tokens",
                 .min = 1,
                 .max = 16 << 20},
                {.name = "--depth",
                 .type = ParamType::number,
                 .default_value = 50.0,
                 .help = "needle depth in percent of the context (a suite's default)",
                 .min = 0,
                 .max = 100},
                {.name = "--seeds",
                 .type = ParamType::string,
                 .help = "A-B: the cells of seeds A to B inclusive (or A: one seed)"},
                {.name = "--out",
                 .type = ParamType::string,
                 .default_value = "-",
                 .help = "the JSONL file to write; - is standard output"}},
    .run = samples_command,
}};

}  // namespace
}  // namespace ctxbench
