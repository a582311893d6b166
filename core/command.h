// Subcommands of the ctxbench CLI. Each registers itself from its own file with one RegisterCommand line;
// harness/cli.h dispatches to them.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/registry.h"

namespace ctxbench {

// Parsed arguments of one subcommand: `--name value` options, `--flag` switches and positionals.
class Args {
 public:
  // `flags` take no value; every other --option takes one (repeatable).
  Args(const std::vector<std::string>& argv, const std::set<std::string>& options, const std::set<std::string>& flags);

  bool flag(const std::string& name) const { return flags_.contains(name); }
  std::string option(const std::string& name, const std::string& fallback) const;
  std::vector<std::string> all(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  // Throws InputError with the usage when the count is outside [min, max].
  void expect_positionals(std::size_t min, std::size_t max, const std::string& usage) const;

 private:
  std::multimap<std::string, std::string> options_;
  std::set<std::string> flags_;
  std::vector<std::string> positionals_;
};

struct CommandInfo {
  std::string name;
  std::string summary;
  std::string usage;  // full --help text
  std::set<std::string> options;
  std::set<std::string> flags;
  std::function<int(const Args&)> run;
};

using CommandRegistry = Registry<CommandInfo>;
using RegisterCommand = Registrar<CommandInfo>;

inline const char* kDefaultDb = "ctxbench.db";

}  // namespace ctxbench
