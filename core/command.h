// Subcommands of the ctxbench CLI. Each registers itself from its own file with one RegisterCommand line;
// harness/cli.h dispatches to them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/params.h"
#include "core/registry.h"

namespace ctxbench {

// A command's options are declared like engine and task parameters, named as typed ("--shards"): a boolean is a
// flag and takes no value; an integer_list is repeatable, one element per occurrence; every other option takes
// one value, given at most once. A null default means the option has none: the command decides what its absence
// means, and reading it throws "--name is required".
using OptionSchema = ParamSchema;

// Converts the text of one value of `spec` strictly: integers are the whole text in base 10, numbers the whole
// text and finite, both within the range; strings within the choices. Throws InputError naming `spec.name` in the
// words suite parameters use: `--shards: expected an integer >= 1, got "3x"`.
Json parse_option_value(const ParamSpec& spec, const std::string& text);

// The arguments of one subcommand, converted and checked against its options when they are read, so that a
// malformed value fails before any work and in the same words in every command.
class Args {
 public:
  // `usage` is the command's usage line, quoted by the errors about positionals and required options.
  Args(const std::vector<std::string>& argv, const OptionSchema& options, std::string usage);

  bool flag(const std::string& name) const;
  // Whether the option was on the command line (its default does not count).
  bool given(const std::string& name) const;
  std::string text(const std::string& name) const;
  long long integer(const std::string& name) const;
  double number(const std::string& name) const;
  std::vector<long long> integers(const std::string& name) const;

  const std::string& usage() const { return usage_; }
  const std::vector<std::string>& positionals() const { return positionals_; }
  // Throws InputError with the usage when the count is outside [min, max].
  void expect_positionals(std::size_t min, std::size_t max) const;

 private:
  void add(const ParamSpec& option, const std::string& text);
  // The declaration of `name`, which must have `type`: reading an undeclared option is a bug in the command.
  const ParamSpec& declared(const std::string& name, ParamType type) const;
  // The given value or the default; the option must be declared with `type`.
  Json value(const std::string& name, ParamType type) const;

  OptionSchema options_;
  std::string usage_;
  Json given_ = Json::object();
  std::vector<std::string> positionals_;
};

struct CommandInfo {
  std::string name;
  std::string summary;
  std::string usage;        // the usage lines, e.g. "ctxbench run SUITE.json [--db FILE] [--resume] [--shard I/N]"
  std::string description;  // what the command does; --help prints it between the usage and the options
  OptionSchema options;
  std::function<int(const Args&)> run;
};

// The --help text: usage, description, then one entry per option generated from its declaration.
std::string help_text(const CommandInfo& command);

using CommandRegistry = Registry<CommandInfo>;
using RegisterCommand = Registrar<CommandInfo>;

inline const char* kDefaultDb = "ctxbench.db";

// The --db option of the commands that read or write a results database.
ParamSpec database_option(const std::string& help = "the SQLite results database");

}  // namespace ctxbench
