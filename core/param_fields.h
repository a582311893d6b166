// Every parameter declared once. A parameter struct lists its fields in one place: the member (whose initial value
// is the default), the name, the help and the limits. From that one declaration come the schema a suite is checked
// against (`schema()`) and the struct filled from checked parameters (`parse()`):
//
//   struct StreamingParams {
//     int sinks = 4;
//     static ParamFields<StreamingParams> fields() {
//       return ParamFields<StreamingParams>().field(&StreamingParams::sinks, "sinks", "first tokens kept", {.min = 0});
//     }
//   };
//
// A type whose JSON form is not one value (an engine's Budget: a number and a per-layer list) specializes
// ParamTraits.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/params.h"

namespace ctxbench {

// What a field may take besides its type: a range for numbers (and the elements of number lists), choices for
// strings. `integer_default` writes an integral default of a number as a JSON integer: parameters declared so
// before this mechanism keep their cell keys. `absent_by_default` leaves a parameter that is not given out of the
// resolved parameters (its member keeps its default): a parameter added after suites were recorded leaves their
// cell keys as they were.
struct ParamLimits {
  std::optional<double> min = std::nullopt;
  std::optional<double> max = std::nullopt;
  std::vector<std::string> choices = {};
  bool integer_default = false;
  bool absent_by_default = false;
};

// How one C++ type is declared and read. Specializations give specs() (the schema entries of a field named
// `name` with default `value`) and parse() (the value from resolved parameters).
template <class T>
struct ParamTraits;

namespace detail {

template <class T>
ParamType plain_type() {
  if constexpr (std::is_same_v<T, bool>)
    return ParamType::boolean;
  else if constexpr (std::is_integral_v<T>)
    return ParamType::integer;
  else if constexpr (std::is_floating_point_v<T>)
    return ParamType::number;
  else if constexpr (std::is_same_v<T, std::string>)
    return ParamType::string;
  else if constexpr (std::is_same_v<T, std::vector<int>>)
    return ParamType::integer_list;
  else if constexpr (std::is_same_v<T, std::vector<double>>)
    return ParamType::number_list;
  else {
    static_assert(std::is_same_v<T, Json>, "no ParamTraits for this type");
    return ParamType::object;
  }
}

}  // namespace detail

// bool, integers, floating point, std::string, std::vector<int>, std::vector<double> and Json (an object).
template <class T>
struct ParamTraits {
  static ParamSchema specs(const std::string& name, const T& value, const std::string& help,
                           const ParamLimits& limits) {
    Json default_value = value;
    if constexpr (std::is_floating_point_v<T>) {
      if (limits.integer_default) default_value = static_cast<long long>(value);
    }
    return {{.name = name,
             .type = detail::plain_type<T>(),
             .default_value = std::move(default_value),
             .help = help,
             .min = limits.min,
             .max = limits.max,
             .choices = limits.choices,
             .absent_by_default = limits.absent_by_default}};
  }
  static T parse(const Json& resolved, const std::string& name) { return resolved.at(name).get<T>(); }
};

// A parameter without a default: a suite must give it (e.g. the remote engine's base_url).
template <class T>
struct Required {
  T value{};
};

template <class T>
struct ParamTraits<Required<T>> {
  static ParamSchema specs(const std::string& name, const Required<T>&, const std::string& help,
                           const ParamLimits& limits) {
    ParamSchema specs = ParamTraits<T>::specs(name, T{}, help, limits);
    specs.front().default_value = nullptr;
    return specs;
  }
  static Required<T> parse(const Json& resolved, const std::string& name) {
    return {ParamTraits<T>::parse(resolved, name)};
  }
};

template <class S>
class ParamFields {
 public:
  // A field of type T: one entry (or more, for a ParamTraits specialization) in the schema.
  template <class T>
  ParamFields field(T S::*member, const std::string& name, const std::string& help, ParamLimits limits = {}) && {
    const S defaults{};
    for (ParamSpec& spec : ParamTraits<T>::specs(name, defaults.*member, help, limits))
      schema_.push_back(std::move(spec));
    readers_.push_back([member, name, absent = limits.absent_by_default](S& out, const Json& resolved) {
      if (absent && !resolved.contains(name)) return;
      out.*member = ParamTraits<T>::parse(resolved, name);
    });
    return std::move(*this);
  }

  // A string parameter read into an enum (or any value type) through its choices, e.g. {{"max", Pool::max}}.
  template <class T>
  ParamFields choice(T S::*member, const std::string& name, const std::string& help,
                     std::vector<std::pair<std::string, T>> choices) && {
    const S defaults{};
    Json default_text;
    std::vector<std::string> texts;
    for (const auto& [text, value] : choices) {
      texts.push_back(text);
      if (value == defaults.*member) default_text = text;
    }
    schema_.push_back(
        {.name = name, .type = ParamType::string, .default_value = default_text, .help = help, .choices = texts});
    readers_.push_back([member, name, choices](S& out, const Json& resolved) {
      const auto text = resolved.at(name).get<std::string>();
      for (const auto& [choice, value] : choices) {
        if (choice == text) out.*member = value;
      }
    });
    return std::move(*this);
  }

  // A check between fields, run after parsing; it throws InputError naming the parameters.
  ParamFields check(std::function<void(const S&)> rule) && {
    checks_.push_back(std::move(rule));
    return std::move(*this);
  }

  const ParamSchema& schema() const { return schema_; }

  // `resolved` has been checked against schema() (resolve_params), defaults filled in.
  S parse(const Json& resolved) const {
    S out{};
    for (const auto& read : readers_) read(out, resolved);
    for (const auto& rule : checks_) rule(out);
    return out;
  }

 private:
  ParamSchema schema_;
  std::vector<std::function<void(S&, const Json&)>> readers_;
  std::vector<std::function<void(const S&)>> checks_;
};

}  // namespace ctxbench
