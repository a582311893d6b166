// libFuzzer target: HTTP requests as serve reads them (remote/http_request.*, remote/openai.*). The body is in
// fuzz/targets.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ctxbench::fuzz::http_request({reinterpret_cast<const char*>(data), size});
  return 0;
}
