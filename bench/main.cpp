#include <benchmark/benchmark.h>

#include "bench/engine_bench.h"

int main(int argc, char** argv) {
  ctxbench::bench::register_engine_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
