#pragma once

namespace ctxbench::bench {

// Registers engine_decode/ and engine_prefill1k/ for every registered attention engine. Called from main:
// engines register themselves during static initialisation, in an order across files that C++ leaves open.
void register_engine_benchmarks();

}  // namespace ctxbench::bench
