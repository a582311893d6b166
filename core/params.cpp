#include "core/params.h"

#include <fmt/format.h>

namespace ctxbench {
namespace {

bool matches(ParamType type, const Json& value) {
  switch (type) {
    case ParamType::integer: return value.is_number_integer();
    case ParamType::number: return value.is_number();
    case ParamType::boolean: return value.is_boolean();
    case ParamType::string: return value.is_string();
    case ParamType::integer_list:
      return value.is_array() &&
             std::all_of(value.begin(), value.end(), [](const Json& v) { return v.is_number_integer(); });
    case ParamType::number_list:
      return value.is_array() && std::all_of(value.begin(), value.end(), [](const Json& v) { return v.is_number(); });
    case ParamType::object: return value.is_object();
  }
  return false;
}

void check_range(const ParamSpec& spec, const Json& value, const std::string& path) {
  auto in_range = [&](double x) { return (!spec.min || x >= *spec.min) && (!spec.max || x <= *spec.max); };
  const bool ok = value.is_array() ? std::all_of(value.begin(), value.end(),
                                                 [&](const Json& v) { return in_range(v.get<double>()); })
                                   : in_range(value.get<double>());
  if (!ok)
    throw InputError(
        fmt::format("{}: expected {}{}, got {}", path, describe(spec.type), describe_range(spec), value.dump()));
}

void check_choice(const ParamSpec& spec, const Json& value, const std::string& path) {
  if (spec.choices.empty()) return;
  const auto text = value.get<std::string>();
  if (std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
    throw InputError(fmt::format("{}: expected one of {}, got \"{}\"", path, fmt::join(spec.choices, ", "), text));
  }
}

}  // namespace

std::string describe_range(const ParamSpec& spec) {
  if (spec.min && spec.max) return fmt::format(" in [{}, {}]", *spec.min, *spec.max);
  if (spec.min) return fmt::format(" >= {}", *spec.min);
  if (spec.max) return fmt::format(" <= {}", *spec.max);
  return "";
}

std::string describe(ParamType type) {
  switch (type) {
    case ParamType::integer: return "an integer";
    case ParamType::number: return "a number";
    case ParamType::boolean: return "true or false";
    case ParamType::string: return "a string";
    case ParamType::integer_list: return "a list of integers";
    case ParamType::number_list: return "a list of numbers";
    case ParamType::object: return "an object";
  }
  return "?";
}

Json resolve_params(const ParamSchema& schema, const Json& given, const std::string& where) {
  if (!given.is_null() && !given.is_object())
    throw InputError(fmt::format("{}: expected an object of parameters", where));
  Json resolved = Json::object();
  for (const ParamSpec& spec : schema) {
    const std::string path = fmt::format("{}.{}", where, spec.name);
    const bool present = given.is_object() && given.contains(spec.name);
    if (!present) {
      if (spec.absent_by_default) continue;
      if (spec.default_value.is_null())
        throw InputError(fmt::format("{}: required {} is missing", path, describe(spec.type)));
      resolved[spec.name] = spec.default_value;
      continue;
    }
    const Json& value = given.at(spec.name);
    if (!matches(spec.type, value)) {
      throw InputError(fmt::format("{}: expected {}, got {}", path, describe(spec.type), value.dump()));
    }
    if (spec.type == ParamType::string) check_choice(spec, value, path);
    if (spec.type != ParamType::string && spec.type != ParamType::boolean && spec.type != ParamType::object) {
      check_range(spec, value, path);
    }
    resolved[spec.name] = value;
  }
  if (given.is_object()) {
    for (const auto& [name, value] : given.items()) {
      if (!resolved.contains(name)) {
        std::vector<std::string> known;
        for (const auto& spec : schema) known.push_back(spec.name);
        throw InputError(fmt::format("{}.{}: unknown parameter (known: {})", where, name,
                                     known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", "))));
      }
    }
  }
  return resolved;
}

}  // namespace ctxbench
