#include "core/json_fields.h"

#include <fmt/format.h>

#include <cmath>

namespace ctxbench {

void fail_field(const std::string& field, const std::string& expected) {
  throw InputError(field + ": expected " + expected);
}

std::string format_number(double value) {
  std::string text = std::to_string(value);
  text.erase(text.find_last_not_of('0') + 1);
  if (text.back() == '.') text.pop_back();
  return text;
}

std::string JsonFields::name(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
}

const Json* JsonFields::find(std::string_view key) const {
  const auto it = object_.find(key);
  return it == object_.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> JsonFields::number(std::string_view key) const {
  const Json* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_number()) fail(key, "a number, got " + value->dump());
  return value->get<double>();
}

std::optional<double> JsonFields::positive_number(std::string_view key) const {
  const auto value = number(key);
  if (value && !(*value > 0)) fail(key, "a number > 0, got " + format_number(*value));
  return value;
}

double JsonFields::number_at_least(std::string_view key, double min, double fallback) const {
  const double value = number(key).value_or(fallback);
  if (!(value >= min)) fail(key, "a number >= " + format_number(min) + ", got " + format_number(value));
  return value;
}

double JsonFields::required_number_at_least(std::string_view key, double min) const {
  if (!find(key)) fail(key, "a number >= " + format_number(min) + " (missing)");
  return number_at_least(key, min, min);
}

std::optional<std::int64_t> JsonFields::integer_at_least(std::string_view key, std::int64_t min) const {
  const Json* value = find(key);
  if (!value) return std::nullopt;
  const bool integral = value->is_number_integer() ||
                        (value->is_number_float() && std::floor(value->get<double>()) == value->get<double>());
  // 2^62 bounds every real count and keeps the conversion to int64 defined (1e300 or 2^64-1 would not be).
  if (!integral || value->get<double>() < static_cast<double>(min) || value->get<double>() > 0x1p62) {
    fail(key, (min == 1 ? std::string("a positive integer") : "an integer >= " + std::to_string(min)) + ", got " +
                  value->dump());
  }
  return value->get<std::int64_t>();
}

std::optional<bool> JsonFields::boolean(std::string_view key) const {
  const Json* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_boolean()) fail(key, "true or false, got " + value->dump());
  return value->get<bool>();
}

std::optional<std::string> JsonFields::string(std::string_view key) const {
  const Json* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_string()) fail(key, "a string, got " + value->dump());
  return value->get<std::string>();
}

std::vector<double> JsonFields::positive_numbers(std::string_view key, std::size_t count,
                                                 const std::string& what) const {
  const Json* value = find(key);
  const std::string expected = fmt::format("an array of {} positive numbers ({})", count, what);
  if (!value) fail(key, expected + " (missing)");
  if (!value->is_array()) fail(key, expected + ", got " + value->dump());
  if (value->size() != count) fail(key, fmt::format("{}, got {} entries", expected, value->size()));
  std::vector<double> out;
  for (const Json& entry : *value) {
    if (!entry.is_number() || !(entry.get<double>() > 0)) {
      fail_field(fmt::format("{}[{}]", name(key), out.size()), "a positive number, got " + entry.dump());
    }
    out.push_back(entry.get<double>());
  }
  return out;
}

std::vector<int> JsonFields::ids(std::string_view key) const {
  const Json* value = find(key);
  if (!value) return {};
  const Json list = value->is_array() ? *value : Json::array({*value});
  std::vector<int> out;
  for (const Json& id : list) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > INT32_MAX)
      fail(key, "a token id or a list of ids, got " + value->dump());
    out.push_back(id.get<int>());
  }
  return out;
}

}  // namespace ctxbench
