// The parameters of KIVI's packed K/V (kernels/quantized_kv.h) that every engine storing it declares: `bits` and
// `group_size`, and their checks (KIVI's kivi.cpp, GEAR's gear.cpp).
#pragma once

#include <fmt/format.h>

#include <string_view>

#include "engines/engine.h"

namespace ctxbench::engines {

template <class P>
ParamFields<P> quantized_kv_fields(ParamFields<P> fields) {
  return std::move(fields)
      .field(&P::bits, "bits", "bits per quantized key and value element (2 or 4)", {.min = 2, .max = 4})
      .field(&P::group_size, "group_size", "tokens per key scale, channels per value scale", {.min = 1});
}

// `full_precision` (named `name`) counts the newest tokens kept unquantized; they are quantized whole groups at a
// time, so it must be a multiple of group_size.
template <class P>
void check_quantized_kv(std::string_view engine, const P& p, std::string_view name, int full_precision) {
  if (p.bits == 3) throw InputError(fmt::format("{}.bits: expected 2 or 4, got 3", engine));
  if (full_precision % p.group_size != 0) {
    throw InputError(fmt::format("{}.{}: expected a multiple of group_size ({}), got {}", engine, name, p.group_size,
                                 full_precision));
  }
}

}  // namespace ctxbench::engines
