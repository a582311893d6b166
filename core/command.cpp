#include "core/command.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <stdexcept>

namespace ctxbench {
namespace {

// What one value of the option must be, e.g. "an integer >= 1" (an element, for a list).
std::string expected_value(const ParamSpec& spec) {
  const ParamType element = spec.type == ParamType::integer_list ? ParamType::integer : spec.type;
  return describe(element) + describe_range(spec);
}

template <class T>
std::optional<T> whole_text_as(const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
  return value;
}

template <class T>
Json in_range(const ParamSpec& spec, std::optional<T> value, const std::string& text) {
  const bool ok = value && std::isfinite(static_cast<double>(*value)) && (!spec.min || *value >= *spec.min) &&
                  (!spec.max || *value <= *spec.max);
  if (!ok) throw InputError(fmt::format("{}: expected {}, got \"{}\"", spec.name, expected_value(spec), text));
  return *value;
}

Json among_choices(const ParamSpec& spec, const std::string& text) {
  if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
    throw InputError(fmt::format("{}: expected one of {}, got \"{}\"", spec.name, fmt::join(spec.choices, ", "), text));
  }
  return text;
}

const ParamSpec* find_option(const OptionSchema& options, const std::string& name) {
  const auto it = std::find_if(options.begin(), options.end(), [&](const ParamSpec& o) { return o.name == name; });
  return it == options.end() ? nullptr : &*it;
}

std::string unknown_option(const OptionSchema& options, const std::string& name) {
  std::vector<std::string> known;
  for (const auto& option : options) known.push_back(option.name);
  return fmt::format("unknown option {} (known: {})", name,
                     known.empty() ? "none" : fmt::format("{}", fmt::join(known, " ")));
}

// "-o" or "-v": no command has one-letter options, but the user meant an option, not a positional ("-" and "-1"
// are positionals).
bool is_short_option(const std::string& arg) {
  return arg.size() > 1 && arg[0] == '-' && std::isalpha(static_cast<unsigned char>(arg[1]));
}

// "--db", "--format csv|json": the option as typed; the usage lines name the other values.
std::string option_synopsis(const ParamSpec& option) {
  if (option.choices.empty()) return option.name;
  return fmt::format("{} {}", option.name, fmt::join(option.choices, "|"));
}

// " (an integer >= 1; default 64)": the declared type, range and default, after the help.
std::string option_details(const ParamSpec& option) {
  std::vector<std::string> details;
  if (option.type == ParamType::integer || option.type == ParamType::number) details.push_back(expected_value(option));
  if (option.type == ParamType::integer_list) details.push_back(fmt::format("repeatable, {}", expected_value(option)));
  if (!option.default_value.is_null()) {
    const Json& value = option.default_value;
    details.push_back("default " + (value.is_string() ? value.get<std::string>() : value.dump()));
  }
  return details.empty() ? "" : fmt::format(" ({})", fmt::join(details, "; "));
}

constexpr std::size_t kHelpColumn = 22, kLineWidth = 118;

// The option, then its help and details in a column (on the next line when the option is long), continued lines
// indented to the column.
std::string option_help(const ParamSpec& option) {
  const std::string synopsis = option_synopsis(option), details = option_details(option);
  std::string out = synopsis.size() + 2 < kHelpColumn ? fmt::format("  {:<{}}", synopsis, kHelpColumn - 2)
                                                      : fmt::format("  {}\n{:{}}", synopsis, "", kHelpColumn);
  for (const char c : option.help) {
    out.push_back(c);
    if (c == '\n') out.append(kHelpColumn, ' ');
  }
  const std::size_t last_line = out.size() - (out.find_last_of('\n') + 1);  // npos + 1 is 0: one line
  if (last_line + details.size() > kLineWidth) out += fmt::format("\n{:{}}", "", kHelpColumn - 1);
  return out + details;
}

}  // namespace

Json parse_option_value(const ParamSpec& spec, const std::string& text) {
  switch (spec.type) {
    case ParamType::integer:
    case ParamType::integer_list: return in_range(spec, whole_text_as<long long>(text), text);
    case ParamType::number: return in_range(spec, whole_text_as<double>(text), text);
    case ParamType::string: return among_choices(spec, text);
    default: throw std::logic_error(fmt::format("{}: {} is not a command-line value", spec.name, describe(spec.type)));
  }
}

Args::Args(const std::vector<std::string>& argv, const OptionSchema& options, std::string usage)
    : options_(options), usage_(std::move(usage)) {
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (is_short_option(a)) throw InputError(unknown_option(options_, a) + "; options are spelled out, e.g. --db");
    if (a.rfind("--", 0) != 0 || a == "--") {
      positionals_.push_back(a);
      continue;
    }
    const auto eq = a.find('=');
    const std::string name = a.substr(0, eq);
    const ParamSpec* option = find_option(options_, name);
    if (!option) throw InputError(unknown_option(options_, name));
    if (option->type == ParamType::boolean) {
      if (eq != std::string::npos) throw InputError(fmt::format("option {} takes no value", name));
      add(*option, "");
    } else if (eq != std::string::npos) {
      add(*option, a.substr(eq + 1));
    } else if (i + 1 < argv.size()) {
      add(*option, argv[++i]);
    } else {
      throw InputError(fmt::format("option {} needs a value", name));
    }
  }
}

void Args::add(const ParamSpec& option, const std::string& text) {
  if (option.type == ParamType::integer_list) {
    given_[option.name].push_back(parse_option_value(option, text));
    return;
  }
  if (given_.contains(option.name)) throw InputError(fmt::format("option {} is given more than once", option.name));
  given_[option.name] = option.type == ParamType::boolean ? Json(true) : parse_option_value(option, text);
}

bool Args::given(const std::string& name) const {
  if (!find_option(options_, name)) throw std::logic_error(fmt::format("option {} is not declared", name));
  return given_.contains(name);
}

const ParamSpec& Args::declared(const std::string& name, ParamType type) const {
  const ParamSpec* option = find_option(options_, name);
  if (!option || option->type != type)
    throw std::logic_error(fmt::format("option {} is not declared as {}", name, describe(type)));
  return *option;
}

Json Args::value(const std::string& name, ParamType type) const {
  const ParamSpec& option = declared(name, type);
  if (given_.contains(name)) return given_.at(name);
  if (option.default_value.is_null()) throw InputError(fmt::format("{} is required; usage: {}", name, usage_));
  return option.default_value;
}

bool Args::flag(const std::string& name) const {
  declared(name, ParamType::boolean);
  return given_.contains(name);
}

std::string Args::text(const std::string& name) const { return value(name, ParamType::string).get<std::string>(); }

long long Args::integer(const std::string& name) const { return value(name, ParamType::integer).get<long long>(); }

double Args::number(const std::string& name) const { return value(name, ParamType::number).get<double>(); }

std::vector<long long> Args::integers(const std::string& name) const {
  declared(name, ParamType::integer_list);
  return given_.contains(name) ? given_.at(name).get<std::vector<long long>>() : std::vector<long long>{};
}

void Args::expect_positionals(std::size_t min, std::size_t max) const {
  if (positionals_.size() < min || positionals_.size() > max) throw InputError("usage: " + usage_);
}

std::string help_text(const CommandInfo& command) {
  std::vector<std::string> parts = {command.usage};
  if (!command.description.empty()) parts.push_back(command.description);
  std::vector<std::string> options = {"options:"};
  for (const auto& option : command.options) options.push_back(option_help(option));
  if (!command.options.empty()) parts.push_back(fmt::format("{}", fmt::join(options, "\n")));
  return fmt::format("{}", fmt::join(parts, "\n\n"));
}

ParamSpec database_option(const std::string& help) {
  return {.name = "--db", .type = ParamType::string, .default_value = kDefaultDb, .help = help};
}

}  // namespace ctxbench
