#include "harness/cli.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/command.h"
#include "harness/environment.h"
#include "harness/store.h"

namespace ctxbench {

namespace {

void print_overview() {
  fmt::print(
      "ctxbench: benchmark and evaluation harness for long-context attention\n\nusage: ctxbench COMMAND [ARGS]\n\n"
      "commands:\n");
  for (const auto& [name, command] : CommandRegistry::instance().entries())
    fmt::print("  {:<10} {}\n", name, command.summary);
  fmt::print("\n`ctxbench COMMAND --help` describes one command.\n");
}

// The version, and the build and source tree it came from, for bug reports and results files.
void print_version() {
  const RunInfo build = current_environment();
  fmt::print("ctxbench {} (commit {}, {} build, {})\n", CTXBENCH_VERSION,
             build.git_commit.empty() ? "unknown" : build.git_commit, build.build_type, build.compiler);
}

}  // namespace

int run_cli(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_overview();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    print_version();
    return 0;
  }
  try {
    const auto& command = CommandRegistry::instance().get(args[0], "command");
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (std::find(rest.begin(), rest.end(), "--help") != rest.end() ||
        std::find(rest.begin(), rest.end(), "-h") != rest.end()) {
      fmt::print("{}\n", help_text(command));
      return 0;
    }
    return command.run(Args(rest, command.options, command.usage));
  } catch (const InputError& e) {
    fmt::print(stderr, "ctxbench: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ctxbench: error: {}\n", e.what());
    return 1;
  }
}

}  // namespace ctxbench
