// Memory planning: before a sequence starts, what the runtime will hold for it (the weights, the KV cache that
// the engine keeps, one prefill chunk's activations) against what the process may use (MemAvailable, and the
// address-space limit a suite's limits.cell_memory_mb sets), so that a cell that cannot fit fails at once with
// the estimate, its parts and what to change, instead of dying mid-way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engines/engine.h"
#include "model/llama_model.h"

namespace ctxbench::model {

struct MemoryPlan {
  std::uint64_t weights = 0;      // the checkpoint's tensors (mapped, used in place) and their fp32 vector copies
  std::uint64_t kv_cache = 0;     // the engine's K/V at its peak over all layers, with the cache's growth
  std::uint64_t window = 0;       // fp32 copies of the last keys of layers with a sliding window
  std::uint64_t activations = 0;  // one prefill chunk's buffers and the logits
  std::int64_t tokens = 0;        // the sequence's length the plan is for
  std::int64_t kv_keys = 0;       // keys the engine holds at its peak, summed over layers
  int prefill_chunk = 0;

  std::uint64_t total() const { return weights + kv_cache + window + activations; }
  // "1.2 GiB (weights 0.9 GiB + KV cache 0.3 GiB for 16 x 32768 keys + ...)"
  std::string describe() const;
};

// The plan of a sequence of `tokens` tokens (prompt and generated) read in chunks of `prefill_chunk`, with K/V
// stored as `kv_dtype`, over `engine` (Engine::peak_resident_keys) and the engine's KvCache growth (capacity
// doubling, the old and the new buffer side by side while one layer grows).
MemoryPlan plan_memory(const LlamaModel& model, const engines::Engine& engine, std::int64_t tokens, int prefill_chunk,
                       kernels::DType kv_dtype);

// What the process may still use, and why.
struct MemoryRoom {
  std::uint64_t bytes = 0;
  std::string source;  // e.g. "MemAvailable 3.1 GiB + 0.2 GiB this process holds"
};

// The tighter of: the memory available (/proc/meminfo MemAvailable plus the process's resident set, which the
// plan counts again), and the address-space limit (RLIMIT_AS, a suite's limits.cell_memory_mb) less the mapped
// address space that is not weights. nullopt when neither can be read.
std::optional<MemoryRoom> memory_room(const LlamaModel& model);

// Throws InputError naming the estimate, its parts, the room and what to change when plan.total() > room.bytes.
// `what` names the sequence in the message (e.g. the model directory).
void check_fits(const MemoryPlan& plan, const MemoryRoom& room, const std::string& what);

// The process's peak resident set (VmHWM of /proc/self/status), 0 when it cannot be read.
std::uint64_t peak_resident_bytes();

}  // namespace ctxbench::model
