// libFuzzer target: LongBench, LongBench v2 and RULER records (tasks/text_tasks/). The body is in fuzz/targets.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ctxbench::fuzz::text_records({reinterpret_cast<const char*>(data), size});
  return 0;
}
