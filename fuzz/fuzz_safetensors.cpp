// libFuzzer target: safetensors headers (model/safetensors.*). The body is in fuzz/targets.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ctxbench::fuzz::safetensors({reinterpret_cast<const char*>(data), size});
  return 0;
}
