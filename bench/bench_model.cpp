// Model runtime speed: the weight matrix products (prefill: many rows; decode: one row, weights streamed
// from memory) in each weight dtype, reported as FLOP/s; and the whole runtime on a checkpoint under dense,
// HiP and InfiniteHiP at 4K, 16K and 32K tokens (prefill tokens/s, decode ms/token).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/random.h"
#include "engines/engine.h"
#include "model/llama_model.h"
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

// ---- The whole runtime on a checkpoint: prefill tokens/s and decode ms/token under an engine ----------------
// CTXBENCH_BENCH_CHECKPOINT names the checkpoint (e.g. `scripts/make_checkpoint.py --arch llama --shape 1b OUT`:
// the 1B-scale table); without it these benchmarks report an error and run nothing. Prompt ids are
// seeded random ids below the tokenizer's 300 (make_checkpoint.py's tokenizer; every id reads the same weights).

namespace {

namespace model = ctxbench::model;
namespace engines = ctxbench::engines;

constexpr int kPrefillChunk = 512;  // the runtime's default (model/llama_generator.h)
constexpr int kDecodeSteps = 8;
const char* const kEngines[] = {"dense", "hip", "infinite_hip"};

struct Setup {
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<engines::Engine> engine;
  std::vector<int> ids;
};

// Null (with the benchmark marked as an error) when no checkpoint is named.
std::optional<Setup> setup(benchmark::State& state, int context, int threads) {
  const char* dir = std::getenv("CTXBENCH_BENCH_CHECKPOINT");
  if (!dir) {
    state.SkipWithError("set CTXBENCH_BENCH_CHECKPOINT to a checkpoint directory (scripts/make_checkpoint.py)");
    return std::nullopt;
  }
  Setup s;
  s.model = std::make_unique<model::LlamaModel>(dir, ctxbench::Json::object(), threads);
  const auto& info = engines::EngineRegistry::instance().get(kEngines[state.range(1)], "bench_model");
  s.engine = info.make(ctxbench::resolve_params(info.params, ctxbench::Json{{"threads", threads}}, "bench_model"));
  ctxbench::Rng rng(7);
  const int ids = std::min(300, s.model->config().vocab_size);
  for (int i = 0; i < context; ++i) s.ids.push_back(static_cast<int>(rng.integer(0, ids - 1)));
  return s;
}

void prefill(const Setup& s, model::Sequence& seq, int tokens) {
  std::vector<float> hidden;
  for (int at = 0; at < tokens; at += kPrefillChunk) {
    const int n = std::min(kPrefillChunk, tokens - at);
    s.model->forward(seq, std::span(s.ids).subspan(at, n), engines::Phase::prefill, hidden);
  }
}

// Args: context tokens, engine (index into kEngines), threads. Counter: prompt tokens per second.
void BM_model_prefill(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(2));
  const auto s = setup(state, context, threads);
  if (!s) return;
  for (auto _ : state) {
    model::Sequence seq = s->model->start(*s->engine, context, ctxbench::kernels::DType::f32);
    prefill(*s, seq, context);
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(context) * state.iterations(), benchmark::Counter::kIsRate);
}

// Args as BM_model_prefill. Each iteration decodes one token after the prompt: the time is ms per token.
void BM_model_decode(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(2));
  const auto s = setup(state, context, threads);
  if (!s) return;
  model::Sequence seq = s->model->start(*s->engine, context + kDecodeSteps, ctxbench::kernels::DType::f32);
  prefill(*s, seq, context - 1);
  std::vector<float> hidden;
  int next = s->ids.back();
  for (auto _ : state) {
    s->model->forward(seq, std::span(&next, 1), engines::Phase::decode, hidden);
    benchmark::DoNotOptimize(hidden.data());
  }
}

void model_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"context", "engine", "threads"});
  for (const int context : {4096, 16384, 32768}) {
    for (int engine = 0; engine < static_cast<int>(std::size(kEngines)); ++engine) b->Args({context, engine, 2});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_model_prefill)->Apply(model_args)->Iterations(1);
BENCHMARK(BM_model_decode)->Apply(model_args)->Iterations(kDecodeSteps);

}  // namespace
