// Whole-engine attention speed (mask building included) on one Llama-3-8B layer: 32 query heads, 8 KV heads,
// head_dim 128, fp16 K/V, engines with their default parameters as a one-layer (sparse) session. Every
// registered attention engine runs at 4K, 16K, 64K and 256K keys; dense, hip and infinite_hip also at 32K-1M
// (the reference engine's speedup curve).
//
//  - engine_decode/NAME/KEYS: one iteration = one decode step (append one token, attend one query) after a
//    prompt of about KEYS tokens. Iterations are fixed at 32 per repetition and the session lives across
//    repetitions, so every repetition covers exactly one cycle of the refresh schedules (HiP: a mask every
//    8 steps; InfiniteHiP: [32, 16, 8]) and the mask cost is amortized as in the original.
//  - engine_prefill1k/NAME/KEYS: a 1024-query prefill chunk at the end of KEYS keys (the chunk's own keys
//    included); every iteration builds the masks afresh.
//
// Engines that rank tokens by the model's surprisal (sirllm) get a deterministic stand-in after each append, as a
// model runtime would report it; the logits a runtime computes for it are not part of the time.
//
// Locret runs with untrained heads of 16 hidden units (the shipped heads fit only the bundled model), so its
// scoring costs less than trained heads of the original's 1024 would.
//
// "infinite_hip_rope" is infinite_hip with InfiniteHiP's RoPE modes on (prune_rope per_layer, attention_rope
// streaming), fed un-rotated keys and Llama-3's RoPE (theta 500000) through Engine::open_unrotated; it runs
// wherever infinite_hip does.
//
// Counters: GBps = K/V bytes the attention read per second, GFLOPs = 4 x head_dim flops per (query row, key
// attended) per second (scores and weighted sum), keys_attended per query row, mask_share of engine time.
// Compare engines as ratios within one run: e.g. engine_decode/dense/131072 over engine_decode/hip/131072.
// One session (up to 4 GiB of K/V at 1M keys) is alive at a time.
#include "bench/engine_bench.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/params.h"
#include "engines/engine.h"

namespace {

using namespace ctxbench;

constexpr int kQueryHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kDim = 128;
constexpr int kDecodeSteps = 32;     // one full [32, 16, 8] refresh cycle per repetition
constexpr int kDecodeReserve = 128;  // decode steps the prompt leaves room for (4 repetitions)
constexpr int kAppendChunk = 8192;
constexpr int kPrefillQueries = 1024;
// Seeds of the key, value and query streams (token t of a stream starts at seed + t * row elements).
constexpr std::uint64_t kKeySeed = 0x1000000000ULL, kValueSeed = 0x7000000000ULL, kQuerySeed = 0xd000000000ULL;
constexpr std::uint64_t kSurprisalSeed = 0x3000000000ULL;

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Deterministic values in [-1, 1): the cost of the methods does not depend on the data.
void fill(std::vector<float>& out, std::uint64_t seed) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<float>(mix(seed + i) >> 40) / static_cast<float>(1 << 23) - 1.0f;
  }
}

engines::HeadLayout layout() {
  return {.heads_q = kQueryHeads,
          .heads_kv = kKvHeads,
          .head_dim = kDim,
          .kv_dtype = kernels::DType::f16,
          .layer = 0,
          .num_layers = 1};
}

constexpr const char* kRopeVariant = "infinite_hip_rope";

std::unique_ptr<engines::Engine> make_engine(const std::string& name) {
  const bool rope = name == kRopeVariant;
  const std::string method = rope ? "infinite_hip" : name;
  Json params = rope ? Json{{"prune_rope", "per_layer"}, {"attention_rope", "streaming"}} : Json::object();
  if (name == "locret") params["heads"] = "untrained";  // no trained heads fit this layer
  const auto& info = engines::EngineRegistry::instance().get(method, "engine_bench");
  return info.make(resolve_params(info.params, params, method));
}

std::unique_ptr<engines::Session> open_session(const engines::Engine& engine) {
  if (!engine.wants_unrotated_kv()) return engine.open(layout());
  const engines::RopeSpec rope{kernels::RopeConfig::standard_rope(kDim, 500000.0).frequencies(1 << 20),
                               kernels::RopeLayout::neox};
  return engine.open_unrotated(layout(), rope);
}

// A stand-in in [0, 8) for the model's surprisal of tokens [first, first + n).
std::vector<float> stand_in_surprisal(int first, int n) {
  std::vector<float> surprisal(n);
  fill(surprisal, kSurprisalSeed + static_cast<std::uint64_t>(first));
  for (float& s : surprisal) s = 4.0f * (s + 1.0f);
  return surprisal;
}

// Appends `tokens` tokens of K/V to the session in chunks, each chunk's stand-in surprisal reported after it.
void append_tokens(engines::Session& session, int first, int tokens) {
  std::vector<float> k, v;
  for (int done = 0; done < tokens; done += kAppendChunk) {
    const int n = std::min(kAppendChunk, tokens - done);
    k.resize(static_cast<std::size_t>(kKvHeads) * n * kDim);
    v.resize(k.size());
    fill(k, kKeySeed + static_cast<std::uint64_t>(first + done) * kKvHeads * kDim);
    fill(v, kValueSeed + static_cast<std::uint64_t>(first + done) * kKvHeads * kDim);
    session.append(k.data(), v.data(), n);
    session.token_surprisal(stand_in_surprisal(first + done, n).data(), n);
  }
}

// The session of the benchmark running now, kept across its repetitions; the previous one is freed first.
struct LiveSession {
  std::string key;
  std::unique_ptr<engines::Engine> engine;
  std::unique_ptr<engines::Session> session;
  int tokens = 0;
};

LiveSession& live_session(const std::string& engine, int prompt, const std::string& purpose) {
  static LiveSession live;
  const std::string key = purpose + "/" + engine + "/" + std::to_string(prompt);
  if (live.key != key) {
    live.session.reset();
    live.engine = make_engine(engine);
    live.session = open_session(*live.engine);
    append_tokens(*live.session, 0, prompt);
    live.tokens = prompt;
    live.key = key;
  }
  return live;
}

void report(benchmark::State& state, const engines::SessionStats& before, const engines::SessionStats& after,
            int queries_per_iteration) {
  const double rows = static_cast<double>(state.iterations()) * kQueryHeads * queries_per_iteration;
  const auto keys = static_cast<double>(after.keys_attended - before.keys_attended);
  using benchmark::Counter;
  state.counters["GBps"] =
      Counter(static_cast<double>(after.kv_bytes_read - before.kv_bytes_read) / 1e9, Counter::kIsRate);
  state.counters["GFLOPs"] = Counter(4.0 * kDim * keys / 1e9, Counter::kIsRate);
  state.counters["keys_attended"] = keys / rows;
  state.counters["mask_share"] = (after.mask_seconds - before.mask_seconds) /
                                 std::max(1e-12, (after.mask_seconds - before.mask_seconds) +
                                                     (after.attention_seconds - before.attention_seconds));
}

void run_decode(benchmark::State& state, const std::string& engine, int keys) {
  LiveSession& live = live_session(engine, keys - kDecodeReserve, "decode");
  std::vector<float> k(static_cast<std::size_t>(kKvHeads) * kDim), v(k.size());
  std::vector<float> q(static_cast<std::size_t>(kQueryHeads) * kDim), out(q.size());
  const engines::SessionStats before = live.session->stats();
  for (auto _ : state) {
    state.PauseTiming();
    fill(k, kKeySeed + static_cast<std::uint64_t>(live.tokens) * kKvHeads * kDim);
    fill(v, kValueSeed + static_cast<std::uint64_t>(live.tokens) * kKvHeads * kDim);
    fill(q, kQuerySeed + static_cast<std::uint64_t>(live.tokens) * kQueryHeads * kDim);
    const std::vector<float> surprisal = stand_in_surprisal(live.tokens, 1);
    state.ResumeTiming();
    live.session->append(k.data(), v.data(), 1);
    live.session->attend(q.data(), 1, engines::Phase::decode, out.data());
    live.session->token_surprisal(surprisal.data(), 1);
    ++live.tokens;
    benchmark::DoNotOptimize(out.data());
  }
  report(state, before, live.session->stats(), 1);
}

void run_prefill(benchmark::State& state, const std::string& engine, int keys) {
  LiveSession& live = live_session(engine, keys, "prefill");
  std::vector<float> q(static_cast<std::size_t>(kQueryHeads) * kPrefillQueries * kDim), out(q.size());
  fill(q, kQuerySeed);
  const engines::SessionStats before = live.session->stats();
  for (auto _ : state) {
    live.session->attend(q.data(), kPrefillQueries, engines::Phase::prefill, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  report(state, before, live.session->stats(), kPrefillQueries);
}

void register_decode(const std::string& engine, int keys) {
  const std::string name = "engine_decode/" + engine + "/" + std::to_string(keys);
  benchmark::RegisterBenchmark(name.c_str(), run_decode, engine, keys)
      ->Iterations(kDecodeSteps)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void register_prefill(const std::string& engine, int keys) {
  const std::string name = "engine_prefill1k/" + engine + "/" + std::to_string(keys);
  benchmark::RegisterBenchmark(name.c_str(), run_prefill, engine, keys)
      ->Iterations(1)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

bool is_reference(const std::string& engine) {
  return engine == "dense" || engine == "hip" || engine == "infinite_hip" || engine == kRopeVariant;
}

}  // namespace

void ctxbench::bench::register_engine_benchmarks() {
  // Context lengths outer, engines inner: one session per (engine, length), freed before the next.
  std::vector<std::string> attention_engines;
  for (const auto& name : engines::EngineRegistry::instance().names()) {
    if (engines::EngineRegistry::instance().get(name, "engine_bench").make) attention_engines.push_back(name);
  }
  attention_engines.push_back(kRopeVariant);
  for (int keys : {4096, 16384, 32768, 65536, 131072, 262144, 524288, 1048576}) {
    const bool issue_shape = keys == 4096 || keys == 16384 || keys == 65536 || keys == 262144;
    for (const auto& engine : attention_engines) {
      if (issue_shape || (keys >= 32768 && is_reference(engine))) register_decode(engine, keys);
    }
  }
  for (int keys : {4096, 16384, 65536, 131072, 262144}) {
    for (const auto& engine : attention_engines) {
      if (keys != 131072 || is_reference(engine)) register_prefill(engine, keys);
    }
  }
}
