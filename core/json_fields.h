// Typed reading of one JSON object's fields (a model's config.json, its rope_scaling, a data record), with the
// Hugging Face convention that null means absent. Every error is an InputError naming the field as `prefix.key`
// and what was expected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/params.h"

namespace ctxbench {

// Throws InputError "FIELD: expected EXPECTED".
[[noreturn]] void fail_field(const std::string& field, const std::string& expected);

class JsonFields {
 public:
  // `prefix` names the object in messages (empty at the top level).
  JsonFields(const Json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  std::string name(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, const std::string& expected) const { fail_field(name(key), expected); }

  // A present, non-null value.
  const Json* find(std::string_view key) const;

  std::optional<double> number(std::string_view key) const;
  std::optional<double> positive_number(std::string_view key) const;
  double number_at_least(std::string_view key, double min, double fallback) const;
  double required_number_at_least(std::string_view key, double min) const;
  // An integral number (2.0 counts) in [min, 2^62].
  std::optional<std::int64_t> integer_at_least(std::string_view key, std::int64_t min) const;
  std::optional<std::int64_t> positive_integer(std::string_view key) const { return integer_at_least(key, 1); }
  std::optional<bool> boolean(std::string_view key) const;
  std::optional<std::string> string(std::string_view key) const;
  // Exactly `count` positive numbers; `what` says what they are, for messages.
  std::vector<double> positive_numbers(std::string_view key, std::size_t count, const std::string& what) const;
  // A non-negative integer below 2^31, a list of them, or nothing (a model's bos/eos token ids).
  std::vector<int> ids(std::string_view key) const;

 private:
  const Json& object_;
  std::string prefix_;
};

// `value` without trailing zeros (4 rather than 4.000000), for messages.
std::string format_number(double value);

}  // namespace ctxbench
