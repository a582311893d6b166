// What each engine label of a run was configured with: its resolved parameters, as the run stored them, beside the
// defaults its method declares (core/param_fields.h), so that two configurations of one method are told apart by
// their values rather than their labels.
#pragma once

#include <string>
#include <vector>

#include "harness/store.h"

namespace ctxbench::reports {

struct Setting {
  std::string name;
  std::string value;
  std::string default_value;  // "" when the method declares none (a required parameter, or a method unknown here)
  bool changed = false;       // differs from the declared default
};

struct EngineSettings {
  std::string engine;  // the label
  std::string method;
  bool method_known = true;  // false for a method this build does not register: no defaults to compare with
  std::vector<Setting> settings;
};

// One entry per engine label, in order of first appearance; the method's declared parameters in their declared
// order (those a cell left out take their default), then any stored parameter the method does not declare.
std::vector<EngineSettings> engine_settings(const std::vector<CellRecord>& cells);

// A parameter value as a person writes it: strings bare, numbers and lists as JSON.
std::string setting_text(const Json& value);

}  // namespace ctxbench::reports
