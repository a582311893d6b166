// One budget API for every method that keeps a subset of keys: a token count or a ratio of the context,
// optionally per layer. Engines record the budget they achieved (keys attended), not just this request.
#pragma once

#include <string>
#include <vector>

#include "core/param_fields.h"
#include "core/params.h"

namespace ctxbench::engines {

class Budget {
 public:
  // `tokens_or_ratio` as `budget` below; the default of a parameter struct's budget field.
  explicit Budget(double tokens_or_ratio = 1.0) : value_(tokens_or_ratio) {}

  // `budget` is a number: >= 1 means tokens, in (0, 1) a ratio of the context. `per_layer`, if non-empty,
  // overrides it layer by layer with numbers of the same meaning. `where` names the parameter in errors.
  static Budget parse(const Json& budget, const Json& per_layer, const std::string& where);

  // Keys to keep for a query at a context of `context` keys in layer `layer` (-1: no per-layer override), at least 1
  // and at most the context.
  int tokens(int context, int layer = -1) const;

  static ParamSpec spec(double default_value, const std::string& help);  // the "budget" parameter
  static ParamSpec per_layer_spec();                                     // the "budget_per_layer" parameter

  double value() const { return value_; }

 private:
  static int resolve(double value, int context);
  double value_ = 1.0;
  std::vector<double> per_layer_;
};

// A budget without per-layer overrides, for a method that sets its per-layer budgets itself (PyramidKV).
class UniformBudget : public Budget {
 public:
  using Budget::Budget;
};

}  // namespace ctxbench::engines

namespace ctxbench {

// A Budget field named "budget" declares two parameters: "budget" and "budget_per_layer".
template <>
struct ParamTraits<engines::Budget> {
  static ParamSchema specs(const std::string& name, const engines::Budget& value, const std::string& help,
                           const ParamLimits&) {
    if (name != "budget") throw std::logic_error("a Budget parameter is named \"budget\", not " + name);
    return {engines::Budget::spec(value.value(), help), engines::Budget::per_layer_spec()};
  }
  static engines::Budget parse(const Json& resolved, const std::string& name) {
    return engines::Budget::parse(resolved.at(name), resolved.at("budget_per_layer"), "params");
  }
};

// A UniformBudget field named "budget" declares only "budget".
template <>
struct ParamTraits<engines::UniformBudget> {
  static ParamSchema specs(const std::string& name, const engines::UniformBudget& value, const std::string& help,
                           const ParamLimits&) {
    if (name != "budget") throw std::logic_error("a Budget parameter is named \"budget\", not " + name);
    return {engines::Budget::spec(value.value(), help)};
  }
  static engines::UniformBudget parse(const Json& resolved, const std::string& name) {
    return engines::UniformBudget(engines::Budget::parse(resolved.at(name), Json(), "params").value());
  }
};

}  // namespace ctxbench
