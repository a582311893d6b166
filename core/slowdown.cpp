#include "core/slowdown.h"

#include <fmt/format.h>

#include "core/params.h"

namespace ctxbench {

std::optional<double> parse_slowdown(const std::string& text, const std::string& what) {
  if (text == "off") return std::nullopt;
  const bool percent = !text.empty() && text.back() == '%';
  double value = -1;
  try {
    std::size_t used = 0;
    value = std::stod(text, &used);
    if (used != text.size() - (percent ? 1 : 0)) value = -1;
  } catch (const std::exception&) {
  }
  if (!(value >= 0))
    throw InputError(fmt::format("{}: expected a percentage (5%), a fraction (0.05) or off, got {}", what, text));
  if (!percent && value >= 1)
    throw InputError(fmt::format("{} {}: ambiguous; write {}% for {} percent, or {}% for a fraction of {}", what, text,
                                 value, value, 100 * value, value));
  return percent ? value / 100 : value;
}

}  // namespace ctxbench
