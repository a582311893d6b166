// The ctxbench command line: dispatches to the registered commands (core/command.h).
#pragma once

namespace ctxbench {

// Runs one command; returns the exit status (0 success, 2 bad input, 1 other errors, or the command's own).
int run_cli(int argc, char** argv);

}  // namespace ctxbench
