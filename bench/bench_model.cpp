// Model runtime speed: the weight matrix products (prefill: many rows; decode: one row, weights streamed
// from memory) in each weight dtype, reported as FLOP/s.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "core/random.h"
#include "model/matmul.h"

namespace {

using ctxbench::kernels::DType;

struct Weights {
  std::vector<std::byte> bytes;
  ctxbench::model::WeightMatrix matrix;
};

Weights random_weights(int rows, int cols, DType dtype) {
  Weights w;
  ctxbench::Rng rng(1);
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  w.bytes.resize(n * ctxbench::kernels::dtype_bytes(dtype));
  for (std::size_t i = 0; i < n; ++i) {
    const auto v = static_cast<float>(rng.normal() * 0.02);
    if (dtype == DType::f32) {
      std::memcpy(w.bytes.data() + 4 * i, &v, 4);
    } else {
      const std::uint16_t bits =
          dtype == DType::f16 ? ctxbench::kernels::float_to_half(v) : ctxbench::kernels::float_to_bf16(v);
      std::memcpy(w.bytes.data() + 2 * i, &bits, 2);
    }
  }
  w.matrix = {w.bytes.data(), dtype, rows, cols};
  return w;
}

// Args: rows of x (tokens), out features, in features, dtype, threads.
void BM_matmul(benchmark::State& state) {
  const int m = static_cast<int>(state.range(0)), n = static_cast<int>(state.range(1));
  const int k = static_cast<int>(state.range(2));
  const auto dtype = static_cast<DType>(state.range(3));
  const int threads = static_cast<int>(state.range(4));
  const Weights w = random_weights(n, k, dtype);
  std::vector<float> x(static_cast<std::size_t>(m) * k, 0.5f), y(static_cast<std::size_t>(m) * n);
  for (auto _ : state) {
    ctxbench::model::matmul(x.data(), m, w.matrix, y.data(), false, threads);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * m * n * k * state.iterations(), benchmark::Counter::kIsRate,
                                                benchmark::Counter::kIs1000);
  state.counters["weight_B/s"] = benchmark::Counter(static_cast<double>(w.bytes.size()) * state.iterations(),
                                                    benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void matmul_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "dtype", "threads"});
  for (const int dtype : {0, 1, 2}) {
    for (const int threads : {1, 2}) {
      b->Args({512, 2048, 2048, dtype, threads});  // prefill chunk through a 2K x 2K projection
      b->Args({1, 8192, 2048, dtype, threads});    // decode: 32-64 MiB of weights, beyond the caches
    }
  }
  b->Args({512, 352, 128, 0, 2});  // the bundled model's MLP
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_matmul)->Apply(matmul_args)->UseRealTime();

}  // namespace
