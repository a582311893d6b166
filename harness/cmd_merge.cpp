#include <fmt/format.h>

#include "core/command.h"
#include "harness/store.h"

namespace ctxbench {
namespace {

int merge_command(const Args& args) {
  args.expect_positionals(2, 1000000);
  const auto& paths = args.positionals();
  Store out(paths[0]);
  for (std::size_t i = 1; i < paths.size(); ++i) {
    if (paths[i] == paths[0]) throw InputError(fmt::format("{}: cannot merge a database into itself", paths[i]));
    const int added = out.merge_from(paths[i]);
    fmt::print("{}: {} cells added\n", paths[i], added);
  }
  for (const auto& run : out.runs()) {
    if (run.shard.empty())
      fmt::print("run {} of suite \"{}\": {} cells\n", run.id, run.suite, out.cells(run.id).size());
  }
  return 0;
}

const RegisterCommand registration{{
    .name = "merge",
    .summary = "combine shard databases of one suite into one run",
    .usage = "ctxbench merge OUT.db IN.db [IN.db ...]",
    .description = "Adds every cell of the inputs to OUT's run of their suite (created on first merge). Cells are\n"
                   "identified by key: a cell already stored ok is kept, a failed one is replaced by an ok one, so\n"
                   "merging the same shard twice changes nothing. Inputs of another suite (or another version of the\n"
                   "suite file) or of another schema version are refused.",
    .options = {},
    .run = merge_command,
}};

}  // namespace
}  // namespace ctxbench
