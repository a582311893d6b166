#include "model/memory_plan.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/params.h"

namespace ctxbench::model {

namespace {

constexpr std::uint64_t kFloat = sizeof(float);
constexpr int kLogitRows = 32;  // rows of logits formed at once when scoring every position (llama_generator.cpp)

std::string bytes_text(double bytes) {
  if (bytes >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024 * 1024));
  if (bytes >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024));
  return fmt::format("{:.1f} KiB", bytes / 1024.0);
}

// A KvCache's capacity after `keys` keys arrive in appends of `chunk` (engines/kv_cache.cpp: at least double
// the old capacity, at least 16), and the capacity before its last growth.
struct Capacity {
  std::int64_t last = 0, before_last = 0;
};

Capacity cache_capacity(std::int64_t keys, int chunk) {
  Capacity c;
  for (std::int64_t held = 0; held < keys;) {
    held = std::min(keys, held + chunk);
    if (held > c.last) {
      c.before_last = c.last;
      c.last = std::max({held, 2 * c.last, std::int64_t{16}});
    }
  }
  return c;
}

// One line of /proc/self/status or /proc/meminfo in bytes ("VmRSS:   1234 kB"); nullopt when absent.
std::optional<std::uint64_t> proc_kb_field(const char* file, const std::string& field) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream value(line.substr(field.size() + 1));
    std::uint64_t kb = 0;
    if (value >> kb) return kb * 1024;
  }
  return std::nullopt;
}

}  // namespace

std::string MemoryPlan::describe() const {
  std::string text = fmt::format("{} (weights {} + KV cache {} for {} keys over all layers", bytes_text(total()),
                                 bytes_text(weights), bytes_text(kv_cache), kv_keys);
  if (window > 0) text += fmt::format(" + sliding-window copies {}", bytes_text(window));
  return text + fmt::format(" + activations {} for a prefill chunk of {} tokens) for {} tokens",
                            bytes_text(activations), prefill_chunk, tokens);
}

MemoryPlan plan_memory(const LlamaModel& model, const engines::Engine& engine, std::int64_t tokens, int prefill_chunk,
                       kernels::DType kv_dtype) {
  const LlamaConfig& c = model.config();
  MemoryPlan plan;
  plan.tokens = tokens;
  plan.prefill_chunk = prefill_chunk;
  const std::uint64_t d = c.hidden_size, hd = c.head_dim, heads_q = c.num_heads, heads_kv = c.num_kv_heads;
  // The norms (and biases, when present) are copied to fp32 beside the mapped tensors.
  plan.weights = model.weights().tensor_bytes() + (2 * c.num_layers + 1) * d * kFloat;

  const std::uint64_t key_bytes = heads_kv * hd * kernels::dtype_bytes(kv_dtype);  // one key (or value), all heads
  std::uint64_t growth = 0;  // the old buffer beside the new one while the largest cache grows
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const std::int64_t keys = engine.peak_resident_keys(tokens, prefill_chunk, layer);
    const Capacity capacity = cache_capacity(keys, prefill_chunk);
    plan.kv_keys += keys;
    plan.kv_cache += 2 * key_bytes * static_cast<std::uint64_t>(capacity.last);
    growth = std::max(growth, 2 * key_bytes * static_cast<std::uint64_t>(capacity.before_last));
    const std::int64_t window = c.sliding_windows[layer];
    if (window > 0 && tokens > window) plan.window += 2 * heads_kv * hd * kFloat * static_cast<std::uint64_t>(window);
  }
  plan.kv_cache += growth;

  // Sequence's buffers (x, h, q, k, v, the head-major q/k/v, the attended rows, gate, up), the final-normed
  // hidden rows, the RoPE table of the chunk, and the logits.
  const std::uint64_t n = static_cast<std::uint64_t>(std::min<std::int64_t>(tokens, prefill_chunk));
  const std::uint64_t intermediate = static_cast<std::uint64_t>(c.intermediate_size) * (c.fused_projections() ? 2 : 1);
  const std::uint64_t per_token = 3 * d + 3 * heads_q * hd + 4 * heads_kv * hd + 2 * intermediate + hd;
  plan.activations = (n * per_token + kLogitRows * static_cast<std::uint64_t>(c.vocab_size)) * kFloat;
  return plan;
}

std::optional<MemoryRoom> memory_room(const LlamaModel& model) {
  std::optional<MemoryRoom> room;
  const auto available = proc_kb_field("/proc/meminfo", "MemAvailable");
  const auto resident = proc_kb_field("/proc/self/status", "VmRSS");
  if (available && resident) {
    room = MemoryRoom{*available + *resident, fmt::format("the machine's MemAvailable {} + the {} this process holds",
                                                          bytes_text(*available), bytes_text(*resident))};
  }
  rlimit limit{};
  const auto mapped = proc_kb_field("/proc/self/status", "VmSize");
  if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && mapped) {
    // The weights are mapped already, and the plan counts them: the rest of the mapped space is the program's.
    const std::uint64_t weights = model.weights().tensor_bytes();
    const std::uint64_t program = *mapped > weights ? *mapped - weights : 0;
    const std::uint64_t left = limit.rlim_cur > program ? limit.rlim_cur - program : 0;
    if (!room || left < room->bytes) {
      room = MemoryRoom{left, fmt::format("the address-space limit {} (a suite's limits.cell_memory_mb) less the {} "
                                          "the program has mapped besides the weights",
                                          bytes_text(static_cast<double>(limit.rlim_cur)), bytes_text(program))};
    }
  }
  return room;
}

void check_fits(const MemoryPlan& plan, const MemoryRoom& room, const std::string& what) {
  if (plan.total() <= room.bytes) return;
  throw InputError(fmt::format(
      "{}: does not fit in memory: the estimate is {}, and {} leaves {}. Use a shorter context, an engine that "
      "evicts keys (streaming_llm), a larger limits.cell_memory_mb or a machine with more memory (or, in the "
      "runtime's own parameters, kv_dtype bf16 and a smaller prefill_chunk)",
      what, plan.describe(), room.source, bytes_text(static_cast<double>(room.bytes))));
}

std::uint64_t peak_resident_bytes() { return proc_kb_field("/proc/self/status", "VmHWM").value_or(0); }

}  // namespace ctxbench::model
