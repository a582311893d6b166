// The allowed slowdown of a regression gate, as `gate --max-slowdown` and a suite's "thresholds" write it.
#pragma once

#include <optional>
#include <string>

namespace ctxbench {

// "5%" -> 0.05, "0.05" -> 0.05, "off" -> nullopt (no timing check). A bare number >= 1 is refused as ambiguous
// (5 percent or 5x?). Throws InputError naming `what` (the option or JSON path) and the accepted forms.
std::optional<double> parse_slowdown(const std::string& text, const std::string& what);

}  // namespace ctxbench
