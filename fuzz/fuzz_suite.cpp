// libFuzzer target: suite files (harness/suite.*). The body is in fuzz/targets.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ctxbench::fuzz::suite({reinterpret_cast<const char*>(data), size});
  return 0;
}
