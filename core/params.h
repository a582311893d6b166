// Typed parameters for engines and tasks: each declares a schema, and a suite's JSON is checked against it
// before any work starts, so that a typo fails with its JSON path instead of hours into a run.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ctxbench {

using Json = nlohmann::json;

// Bad user input (suite files, parameters, data files). The message names the place and what was expected.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ParamType { integer, number, boolean, string, integer_list, number_list, object };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::integer;
  Json default_value = nullptr;  // null means required (or, for a command option, that it has no default)
  std::string help;
  std::optional<double> min = std::nullopt;
  std::optional<double> max = std::nullopt;
  std::vector<std::string> choices = {};  // for strings
  bool absent_by_default = false;         // not given: left out of the resolved parameters (and the cell key)
};

using ParamSchema = std::vector<ParamSpec>;

// Checks `given` (an object or null) against the schema and returns it with defaults filled in.
// `where` is the JSON path used in error messages, e.g. "suite.json: $.engines[0].params".
Json resolve_params(const ParamSchema& schema, const Json& given, const std::string& where);

std::string describe(ParamType type);
// The spec's range as it follows describe(): " in [0, 1]", " >= 1", or nothing.
std::string describe_range(const ParamSpec& spec);

}  // namespace ctxbench
