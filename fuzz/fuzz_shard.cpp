// libFuzzer target: --shard values and budget parameters (harness/shard.*, engines/budget.*). The body is in
// fuzz/targets.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ctxbench::fuzz::shard({reinterpret_cast<const char*>(data), size});
  return 0;
}
