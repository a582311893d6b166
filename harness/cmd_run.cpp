#include <fmt/format.h>

#include <cstring>

#include "core/command.h"
#include "harness/preflight.h"
#include "harness/runner.h"

namespace ctxbench {
namespace {

int run_command(const Args& args) {
  args.expect_positionals(1, 1);
  const Suite suite = load_suite(args.positionals()[0]);  // fails before any work on a malformed suite
  const Shard shard = Shard::parse(args.text("--shard"));
  check_text_cells(suite.cells());
  Store store(args.text("--db"));
  if (args.flag("--allow-suite-change") && !args.flag("--resume"))
    throw InputError("--allow-suite-change applies to --resume only: a new run records its suite anyway");
  const RunSummary summary = run_suite(
      suite, store,
      {.resume = args.flag("--resume"), .allow_suite_change = args.flag("--allow-suite-change"), .shard = shard});
  if (summary.stop_signal) {
    fmt::print("interrupted by SIG{}: {} of {} cells stored; continue with ctxbench run {} --resume --db {}{}\n",
               sigabbrev_np(summary.stop_signal), summary.stored, summary.cells, suite.source, store.path(),
               args.given("--shard") ? " --shard " + shard.text() : "");
    return 128 + summary.stop_signal;  // as the shell reports a process ended by that signal
  }
  fmt::print("run {}: {} cells, {} already stored, {} failed; database {}\n", summary.run_id, summary.cells,
             summary.skipped, summary.failed, store.path());
  return summary.failed ? 3 : 0;
}

const RegisterCommand registration{{
    .name = "run",
    .summary = "run a suite into the results database",
    .usage = "ctxbench run SUITE.json [--db FILE] [--resume [--allow-suite-change]] [--shard I/N]",
    .description =
        "Expands the suite into cells (engine x task x context length x depth x seed) and runs each, storing\n"
        "every finished cell in one transaction. Text cells make their prompts first: a task that cannot work\n"
        "with the model or the length stops the run before any work, naming each such cell.\n"
        "Ctrl-C or SIGTERM stops the run once the cell in flight is stored (a second one abandons that cell):\n"
        "the run is marked interrupted and the command to continue it is printed. A run whose process died\n"
        "(kill -9) reads as interrupted the next time the database is opened on its host.\n"
        "Exit status: 0 all cells ok, 3 some cells failed (stored with their error), 2 bad input,\n"
        "130 or 143 interrupted by SIGINT or SIGTERM.",
    .options = {database_option(),
                {.name = "--resume",
                 .type = ParamType::boolean,
                 .help = "continue the newest run of this suite in the database: cells already stored are\n"
                         "skipped, failed ones are retried. Refused when the suite's cells or settings differ\n"
                         "from the ones the run started with"},
                {.name = "--allow-suite-change",
                 .type = ParamType::boolean,
                 .help = "with --resume: continue the run with a changed suite and record the new suite with it"},
                {.name = "--shard",
                 .type = ParamType::string,
                 .default_value = "0/1",
                 .help = "I/N: run only shard I (0-based) of N, a deterministic partition balanced by context\n"
                         "length; each shard writes its own database, `ctxbench merge` combines them"}},
    .run = run_command,
}};

}  // namespace
}  // namespace ctxbench
