#include "reports/settings.h"

#include <fmt/format.h>

#include <algorithm>

#include "harness/suite.h"

namespace ctxbench::reports {
namespace {

Setting declared_setting(const ParamSpec& spec, const Json& params) {
  const bool given = params.is_object() && params.contains(spec.name);
  const Json& value = given ? params.at(spec.name) : spec.default_value;
  const bool has_default = !spec.default_value.is_null();
  return {spec.name, setting_text(value), has_default ? setting_text(spec.default_value) : "",
          has_default && value != spec.default_value};
}

EngineSettings settings_of(const CellRecord& cell) {
  EngineSettings out{cell.engine, cell.engine_method, true, {}};
  const ParamSchema* schema = engine_schema(cell.engine_method);
  out.method_known = schema != nullptr;
  if (schema) {
    for (const auto& spec : *schema) out.settings.push_back(declared_setting(spec, cell.engine_params));
  }
  if (!cell.engine_params.is_object()) return out;
  for (const auto& [name, value] : cell.engine_params.items()) {
    const bool declared = std::any_of(out.settings.begin(), out.settings.end(),
                                      [&, key = name](const Setting& s) { return s.name == key; });
    if (!declared) out.settings.push_back({name, setting_text(value), "", false});
  }
  return out;
}

}  // namespace

std::string setting_text(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  // A budget stored as 516.0 reads as 516, as the suite wrote it.
  if (value.is_number_float()) return fmt::format("{}", value.get<double>());
  return value.dump();
}

std::vector<EngineSettings> engine_settings(const std::vector<CellRecord>& cells) {
  std::vector<EngineSettings> out;
  for (const auto& cell : cells) {
    const bool seen = std::any_of(out.begin(), out.end(), [&](const auto& e) { return e.engine == cell.engine; });
    if (!seen) out.push_back(settings_of(cell));
  }
  return out;
}

}  // namespace ctxbench::reports
