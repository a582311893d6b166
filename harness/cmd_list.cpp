#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/command.h"
#include "engines/engine.h"
#include "harness/database_file.h"
#include "harness/store.h"
#include "tasks/task.h"

namespace ctxbench {
namespace {

// One line per parameter in aligned columns: name, type (with its choices or range), default, help.
void print_params(const ParamSchema& schema) {
  std::vector<std::string> types, defaults;
  std::size_t name_width = 0, type_width = 0, default_width = 0;
  for (const auto& p : schema) {
    types.push_back(p.choices.empty() ? describe(p.type) + describe_range(p)
                                      : fmt::format("one of {}", fmt::join(p.choices, "|")));
    defaults.push_back(p.default_value.is_null() ? "(required)" : p.default_value.dump());
    name_width = std::max(name_width, p.name.size());
    type_width = std::max(type_width, types.back().size());
    default_width = std::max(default_width, defaults.back().size());
  }
  for (std::size_t i = 0; i < schema.size(); ++i) {
    fmt::print("      {:<{}}  {:<{}}  default {:<{}}  {}\n", schema[i].name, name_width, types[i], type_width,
               defaults[i], default_width, schema[i].help);
  }
}

int list_command(const Args& args) {
  args.expect_positionals(1, 1);
  const std::string what = args.positionals()[0];
  if (what == "engines") {
    for (const auto& [name, e] : engines::EngineRegistry::instance().entries()) {
      fmt::print("{:<16} [{}] {}\n", name, engines::policy_name(e.policy), e.description);
      print_params(e.params);
    }
  } else if (what == "tasks") {
    for (const auto& [name, t] : tasks::TaskRegistry::instance().entries()) {
      fmt::print("{:<16} {}\n", name, t.description);
      print_params(t.params);
    }
  } else if (what == "runs") {
    check_readable_database(args.text("--db"));
    Store store(args.text("--db"));
    fmt::print("{:>4}  {:<20} {:<22} {:<24} {}\n", "id", "suite", "started", "status", "commit");
    for (const auto& r : store.runs()) {
      fmt::print("{:>4}  {:<20} {:<22} {:<24} {}\n", r.id, r.suite, r.started_at, r.status, r.git_commit.substr(0, 12));
    }
  } else {
    throw InputError("usage: " + args.usage());
  }
  return 0;
}

const RegisterCommand registration{{
    .name = "list",
    .summary = "list registered engines or tasks (with parameters), or the runs in a database",
    .usage = "ctxbench list engines|tasks|runs [--db FILE]",
    .description = "",
    .options = {database_option("the SQLite results database (for `list runs`)")},
    .run = list_command,
}};

}  // namespace
}  // namespace ctxbench
