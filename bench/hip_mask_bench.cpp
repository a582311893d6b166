// The mask builders alone, on one thread, fp16 keys of the Llama-3-8B layout (8 KV heads, head_dim 128):
//  - hip_mask_decode/KEYS: HiP's hierarchical top-k for one decode query of each of the 32 query heads,
//    the 4 heads of a KV group searched together (select_key_blocks_for_group, as the engine does);
//  - infinite_hip_prune_decode/KEYS: InfiniteHiP's three stages for one decode query, all heads.
// A decode step's amortized mask cost is this over the refresh interval (HiP 8; InfiniteHiP's [32, 16, 8]
// schedule runs all stages once per 32 steps and the later stages more often).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "engines/hip_mask.h"
#include "engines/infinite_hip_mask.h"
#include "engines/kv_cache.h"

namespace {

using namespace ctxbench;

constexpr int kQueryHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kDim = 128;

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

float uniform(std::uint64_t i) { return static_cast<float>(mix(i) >> 40) / static_cast<float>(1 << 23) - 1.0f; }

// The keys stored as the engines' cache stores them (engines::zeroed_storage): rows on cache lines, on 2 MiB
// pages where the system grants them. On 4 KiB pages the scattered row reads would time page walks, and
// rows across five lines a fifth miss, that the engines do not pay.
struct Keys {
  engines::KvStorage storage;
  kernels::KvView view;
  explicit Keys(int tokens)
      : storage(engines::zeroed_storage(static_cast<std::size_t>(kKvHeads) * tokens * kDim * sizeof(std::uint16_t))) {
    auto* half = reinterpret_cast<std::uint16_t*>(storage.data());
    for (std::size_t i = 0; i < storage.size() / sizeof(std::uint16_t); ++i) {
      half[i] = kernels::float_to_half(uniform(i));
    }
    view = {half, kernels::DType::f16, kKvHeads, tokens, kDim, static_cast<std::size_t>(tokens) * kDim};
  }
};

// The keys of the benchmark running now (one size alive at a time).
const Keys& keys_for(int tokens) {
  static std::unique_ptr<Keys> keys;
  if (!keys || keys->view.tokens != tokens) {
    keys.reset();
    keys = std::make_unique<Keys>(tokens);
  }
  return *keys;
}

std::vector<float> queries() {
  std::vector<float> q(static_cast<std::size_t>(kQueryHeads) * kDim);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = uniform(0x5eed0000 + i);
  return q;
}

void hip_mask_decode(benchmark::State& state) {
  const int tokens = static_cast<int>(state.range(0));
  const engines::hip::KeyRows rows(keys_for(tokens).view);
  const auto q = queries();
  const engines::hip::HipMaskParams p;
  engines::hip::MaskCounters counters;
  constexpr int kGroup = kQueryHeads / kKvHeads;
  for (auto _ : state) {
    for (int kv = 0; kv < kKvHeads; ++kv) {
      std::vector<engines::hip::QueryBlock> blocks;
      for (int h = kv * kGroup; h < (kv + 1) * kGroup; ++h) {
        blocks.push_back({q.data() + static_cast<std::size_t>(h) * kDim, 1, tokens - 1});
      }
      benchmark::DoNotOptimize(engines::hip::select_key_blocks_for_group(p, blocks, rows, kv, &counters));
    }
  }
  state.counters["rows_per_build"] = static_cast<double>(counters.key_rows_read) / state.iterations();
}

void infinite_hip_prune_decode(benchmark::State& state) {
  const int tokens = static_cast<int>(state.range(0));
  const engines::hip::KeyRows rows(keys_for(tokens).view);
  const auto q = queries();
  const engines::hip::PruningParams p;
  const engines::hip::QueryTile tile{q.data(), kQueryHeads, 1, kDim, 0, 1, tokens - 1};
  engines::hip::MaskCounters counters;
  for (auto _ : state) {
    std::vector<engines::hip::ChunkLists> inputs;
    benchmark::DoNotOptimize(engines::hip::prune(p, tile, rows, kKvHeads, 0, inputs, 1, &counters));
  }
  state.counters["rows_per_build"] = static_cast<double>(counters.key_rows_read) / state.iterations();
}

BENCHMARK(hip_mask_decode)->Arg(131072)->Arg(1048576)->Unit(benchmark::kMillisecond);
BENCHMARK(infinite_hip_prune_decode)->Arg(131072)->Arg(1048576)->Unit(benchmark::kMillisecond);

}  // namespace
