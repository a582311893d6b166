// The attention engine interface. An engine is a method (dense, HiP, StreamingLLM, ...) with parameters; a
// session is its state for one layer of one sequence: keys and values are appended as tokens arrive, and
// queries attend to what the method keeps. The harness, the model runtime and the benchmarks all drive
// engines through this interface only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/measurement.h"
#include "core/param_fields.h"
#include "core/params.h"
#include "core/registry.h"
#include "core/text.h"
#include "kernels/attention.h"
#include "kernels/rope.h"

namespace ctxbench::engines {

using kernels::DType;
using kernels::KeyRange;

// The rotary embedding a model runtime would have applied to queries and keys.
struct RopeSpec {
  kernels::RopeFrequencies frequencies;
  kernels::RopeLayout layout = kernels::RopeLayout::neox;
};

struct HeadLayout {
  int heads_q = 1;
  int heads_kv = 1;
  int head_dim = 64;
  DType kv_dtype = DType::f32;
  int layer = 0;       // which layer this session serves (methods keep early layers dense)
  int num_layers = 1;  // layers in the model (1 at the attention level)
};

enum class Phase { prefill, decode };

// Whether a method saves memory (drops keys for good, or keeps every key in a smaller lossy form: pruned
// channels, quantized values) or only compute (skips keys it keeps resident).
enum class KvPolicy { full, evicts, masks, compresses };

// What a session did, summed over all attend calls since it was opened.
struct SessionStats {
  std::uint64_t queries = 0;            // query rows (heads x tokens) attended
  std::uint64_t keys_attended = 0;      // sum over query rows of keys attended
  std::uint64_t keys_attended_max = 0;  // largest count for one query row
  std::uint64_t kv_bytes_read = 0;      // bytes of K and V the attention read (each key once per KV head)
  std::uint64_t kv_bytes_resident = 0;  // bytes of K and V held after the last call
  double mask_seconds = 0.0;            // time spent choosing keys
  double attention_seconds = 0.0;       // time spent in the attention kernel
};

class Session {
 public:
  virtual ~Session() = default;
  // Appends n tokens. k and v are [heads_kv][n][head_dim] fp32; the session stores them in its dtype.
  virtual void append(const float* k, const float* v, int n) = 0;
  // n queries [heads_q][n][head_dim] sitting at the last n positions appended; writes [heads_q][n][head_dim].
  virtual void attend(const float* q, int n, Phase phase, float* out) = 0;
  // The original positions of the keys that query row (head, query) of the last attend call used.
  virtual std::vector<KeyRange> attended(int head, int query) const = 0;
  virtual SessionStats stats() const = 0;
  // Method-specific measurements beyond SessionStats (e.g. a simulated offload tier's hit ratio), summed
  // over all attend calls like stats(); the harness stores them as they are.
  virtual std::vector<Measurement> extra_measurements() const { return {}; }
  // The model's surprisal -log p(token | the tokens before it) of each of the n newest tokens appended, in
  // order. A model runtime reports it after each forward call, to the sessions of engines whose
  // wants_token_surprisal() is true (SirLLM scores tokens by it); attention-level problems have no model and
  // report none.
  virtual void token_surprisal(const float* surprisal, int n) { (void)surprisal, (void)n; }
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::unique_ptr<Session> open(const HeadLayout& layout) const = 0;
  // Whether the method places keys and queries at positions of its own (InfiniteHiP's remapped RoPE modes):
  // a model runtime then opens it with open_unrotated instead of open.
  virtual bool wants_unrotated_kv() const { return false; }
  // A session fed un-rotated queries and keys, which applies `rope` itself. Key t of the session sits at real
  // position t, the n queries of an attend call at the last n positions appended. Only for engines whose
  // wants_unrotated_kv() is true.
  virtual std::unique_ptr<Session> open_unrotated(const HeadLayout& layout, const RopeSpec& rope) const {
    (void)layout, (void)rope;
    throw std::logic_error("open_unrotated: this engine takes rotated queries and keys (wants_unrotated_kv is false)");
  }
  // Whether the method scores tokens by the model's surprisal: a model runtime then computes the logits of every
  // position and reports them to each session (Session::token_surprisal).
  virtual bool wants_token_surprisal() const { return false; }
  // Keys a session of layer `layer` holds at its peak when `context` keys arrive in appends of up to `chunk`
  // (what a memory plan counts, model/memory_plan.h). Methods that drop keys while a prompt arrives say how
  // many they keep; the others hold every key at some point (those that evict after the prefill included).
  virtual std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const {
    (void)chunk, (void)layer;
    return context;
  }
};

// An engine whose sessions are `SessionT(layout, params)`.
template <class SessionT, class ParamsT>
std::unique_ptr<Engine> session_engine(ParamsT params) {
  class Opener final : public Engine {
   public:
    explicit Opener(ParamsT p) : params_(std::move(p)) {}
    std::unique_ptr<Session> open(const HeadLayout& layout) const override {
      return std::make_unique<SessionT>(layout, params_);
    }
    std::int64_t peak_resident_keys(std::int64_t context, int chunk, int layer) const override {
      if constexpr (requires { params_.peak_resident_keys(context, chunk, layer); })
        return params_.peak_resident_keys(context, chunk, layer);
      else
        return Engine::peak_resident_keys(context, chunk, layer);
    }

   private:
    ParamsT params_;
  };
  return std::make_unique<Opener>(std::move(params));
}

struct EngineInfo {
  std::string name;
  std::string description;
  KvPolicy policy = KvPolicy::full;
  ParamSchema params = {};
  // Receives parameters already checked against `params`, with defaults filled in.
  // Attention engines set `make`; engines that answer text themselves (remote servers) set `make_generator`.
  std::function<std::unique_ptr<Engine>(const Json& params)> make = nullptr;
  std::function<std::unique_ptr<Generator>(const Json& params)> make_generator = nullptr;
  // Small parameters under which the method drops keys on the shared conformance test's contexts of a few
  // hundred tokens (its defaults keep every key there); an empty object for a method that keeps every key
  // (KvPolicy::full). Every attention engine sets them: the conformance test fails for one that does not.
  Json test_params = nullptr;
  // Parameters under which the method must equal dense attention on contexts of up to `tokens` keys (a
  // budget that covers the context); the shared conformance test checks it. Null if the method has none.
  std::function<Json(int tokens)> exact_params = nullptr;
  // Whether decoding token by token after a prefill gives the outputs of one prefill over the same tokens
  // (the shared conformance test checks it under the default parameters).
  bool decode_matches_prefill = false;
  // Relative L2 error the shared conformance test allows, under test_params, between an output and exact
  // attention over the keys the session reports. Methods that attend to the keys as given are exact; those
  // that compress them (KvPolicy::compresses) give the error their compression reaches on the test's random
  // problems, with a margin (their own tests check the compressed values exactly).
  double output_tolerance = 1e-5;
};

// The entry of a method whose parameters are the fields that ParamsT::fields() declares: its schema and its
// parsing both come from that one declaration. T is built from the parsed parameters: a Session (one per layer,
// T(layout, params)), an Engine (T(params)), or a Generator (T(params)) for an engine that answers text itself.
template <class T, class ParamsT>
EngineInfo declared_engine(EngineInfo info) {
  info.params = ParamsT::fields().schema();
  // Code that opens an engine directly may give only some parameters: resolving fills in the defaults (and
  // leaves parameters the harness resolved as they are).
  auto parse = [schema = info.params, where = info.name](const Json& params) {
    return ParamsT::fields().parse(resolve_params(schema, params, where));
  };
  if constexpr (std::is_base_of_v<Generator, T>) {
    info.make_generator = [parse](const Json& params) -> std::unique_ptr<Generator> {
      return std::make_unique<T>(parse(params));
    };
  } else if constexpr (std::is_base_of_v<Engine, T>) {
    info.make = [parse](const Json& params) -> std::unique_ptr<Engine> { return std::make_unique<T>(parse(params)); };
  } else {
    info.make = [parse](const Json& params) { return session_engine<T>(parse(params)); };
  }
  return info;
}

// Adds the "threads" parameter (worker threads of the attention kernel), read into S::threads (which S may
// inherit).
template <class S>
ParamFields<S> with_threads(ParamFields<S> fields) {
  return std::move(fields).template field<int>(&S::threads, "threads", "worker threads (0: all cores)", {.min = 0});
}

using EngineRegistry = Registry<EngineInfo>;
using RegisterEngine = Registrar<EngineInfo>;

std::string_view policy_name(KvPolicy policy);

}  // namespace ctxbench::engines
