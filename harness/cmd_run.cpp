#include <fmt/format.h>

#include "core/command.h"
#include "harness/runner.h"

namespace ctxbench {
namespace {

int run_command(const Args& args) {
  args.expect_positionals(1, 1);
  const Suite suite = load_suite(args.positionals()[0]);  // fails before any work on a malformed suite
  const Shard shard = Shard::parse(args.text("--shard"));
  Store store(args.text("--db"));
  const RunSummary summary = run_suite(suite, store, {.resume = args.flag("--resume"), .shard = shard});
  fmt::print("run {}: {} cells, {} already stored, {} failed; database {}\n", summary.run_id, summary.cells,
             summary.skipped, summary.failed, store.path());
  return summary.failed ? 3 : 0;
}

const RegisterCommand registration{{
    .name = "run",
    .summary = "run a suite into the results database",
    .usage = "ctxbench run SUITE.json [--db FILE] [--resume] [--shard I/N]",
    .description =
        "Expands the suite into cells (engine x task x context length x depth x seed) and runs each, storing\n"
        "every finished cell in one transaction.\n"
        "Exit status: 0 all cells ok, 3 some cells failed (stored with their error), 2 bad input.",
    .options = {database_option(),
                {.name = "--resume",
                 .type = ParamType::boolean,
                 .help = "continue the newest run of this suite in the database: cells already stored are\n"
                         "skipped, failed ones are retried"},
                {.name = "--shard",
                 .type = ParamType::string,
                 .default_value = "0/1",
                 .help = "I/N: run only shard I (0-based) of N, a deterministic partition balanced by context\n"
                         "length; each shard writes its own database, `ctxbench merge` combines them"}},
    .run = run_command,
}};

}  // namespace
}  // namespace ctxbench
