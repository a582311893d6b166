// The task interface. A task turns one cell (its parameters, context length, depth and seed) into work for
// an engine. Attention-level tasks produce a Q/K/V problem; the harness drives the engine over it and
// measures time, bytes and fidelity the same way for every task.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/param_fields.h"
#include "core/params.h"
#include "core/registry.h"
#include "core/text.h"
#include "engines/engine.h"
#include "kernels/attention.h"

namespace ctxbench::tasks {

struct CellContext {
  const Json& params;  // checked against the task's schema, defaults filled in
  int context_length = 0;
  double depth = 50.0;  // percent of the context
  std::uint64_t seed = 0;
};

// How an engine is driven over a problem.
//  prefill: append the first T - queries keys, then append the last `queries` keys and attend with the
//           `queries` queries sitting at those positions (one prefill chunk at the end of the context).
//  decode:  append the first T - queries keys; attend the `observe` queries at the end of that prompt
//           (methods such as SnapKV choose their keys there); then `queries` decode steps, each appending
//           one key and attending one query.
struct AttentionProblem {
  engines::HeadLayout layout;
  engines::Phase phase = engines::Phase::decode;
  int tokens = 0;                   // T: keys in the whole context
  int queries = 0;                  // prefill chunk size, or decode steps
  int observe = 0;                  // decode only
  std::vector<float> q;             // [heads_q][queries][head_dim]
  std::vector<float> q_observe;     // [heads_q][observe][head_dim]
  std::vector<float> k, v;          // [heads_kv][tokens][head_dim]
  std::vector<int> important_keys;  // positions whose retention is scored as recall (e.g. needles)
  int error_queries = 4;            // query tokens (all heads) checked against the float64 reference
};

// The parameters of how an attention-level problem is stored and driven, with the task's own default of
// `queries`: an attention task's parameter struct derives from AttentionDrive<its default> and declares these
// fields with with_attention_drive, after its own.
template <int kDefaultQueries>
struct AttentionDrive {
  kernels::DType kv_dtype = kernels::DType::f32;
  engines::Phase mode = engines::Phase::decode;
  int queries = kDefaultQueries;
  int observe = 32;
  int error_queries = 4;

  // Sets how `problem`, of `tokens` keys, is driven: at most `max_queries` queries, the observed queries
  // inside the prompt.
  void drive(AttentionProblem& problem, int tokens, int max_queries) const {
    problem.phase = mode;
    problem.tokens = tokens;
    problem.queries = std::min(queries, max_queries);
    problem.observe = mode == engines::Phase::decode ? std::min(observe, tokens - problem.queries) : 0;
    problem.error_queries = error_queries;
  }
};

// `queries_help` says what `queries` means for the task.
template <class S>
ParamFields<S> with_attention_drive(ParamFields<S> fields, const std::string& queries_help) {
  using engines::Phase;
  using kernels::DType;
  return std::move(fields)
      .template choice<DType>(&S::kv_dtype, "kv_dtype", "K/V storage",
                              {{"f32", DType::f32}, {"f16", DType::f16}, {"bf16", DType::bf16}})
      .template choice<Phase>(&S::mode, "mode", "decode steps or one prefill chunk",
                              {{"decode", Phase::decode}, {"prefill", Phase::prefill}})
      .template field<int>(&S::queries, "queries", queries_help, {.min = 1})
      .template field<int>(&S::observe, "observe",
                           "decode: prompt queries attended before the steps (SnapKV's observation window)", {.min = 0})
      .template field<int>(&S::error_queries, "error_queries", "query tokens checked against the float64 reference",
                           {.min = 1});
}

// Tokens [first, first + count) of every head of a [heads][tokens][dim] buffer, as [heads][count][dim].
inline std::vector<float> slice_tokens(const std::vector<float>& src, int heads, int tokens, int dim, int first,
                                       int count) {
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(heads) * count * dim);
  for (int h = 0; h < heads; ++h) {
    const auto begin = src.begin() + (static_cast<std::size_t>(h) * tokens + first) * dim;
    out.insert(out.end(), begin, begin + static_cast<std::size_t>(count) * dim);
  }
  return out;
}

// What `evaluate` returns for one sample: the score and what the generator did (its text is stored as the
// prediction).
struct SampleOutcome {
  Generation generation;
  double score = 0;
};

// A task is attention-level (make_attention_problem) or text-level (make_text_samples + score); exactly one
// of the two is set.
struct TaskInfo {
  std::string name;
  std::string description;
  ParamSchema params = {};
  std::function<AttentionProblem(const CellContext&)> make_attention_problem = nullptr;
  // Text level: samples whose lengths are measured in the generator's tokens.
  std::function<std::vector<TextSample>(const CellContext&, const Tokenizer&)> make_text_samples = nullptr;
  // Score of one answer, in [0, 1]; the cell's `metric` is their mean, times the metric's scale (x100 for the
  // "%" metrics the official scripts report in percent).
  std::function<double(const TextSample&, const std::string& prediction)> score = nullptr;
  std::string metric = "accuracy";  // a catalogued metric (core/metrics.h): its unit, scale and direction
  // Text tasks that score the model without generating (perplexity) set this instead of `score`.
  std::function<SampleOutcome(Generator&, const TextSample&)> evaluate = nullptr;
};

// The entry of a task whose parameters are the fields ParamsT::fields() declares: its schema and the parsing
// of each cell's parameters come from that one declaration, and `make` receives them parsed.
template <class ParamsT>
TaskInfo declared_attention_task(TaskInfo info, AttentionProblem (*make)(const ParamsT&, const CellContext&)) {
  info.params = ParamsT::fields().schema();
  info.make_attention_problem = [make](const CellContext& cell) {
    return make(ParamsT::fields().parse(cell.params), cell);
  };
  return info;
}

template <class ParamsT>
TaskInfo declared_text_task(TaskInfo info,
                            std::vector<TextSample> (*make)(const ParamsT&, const CellContext&, const Tokenizer&)) {
  info.params = ParamsT::fields().schema();
  info.make_text_samples = [make](const CellContext& cell, const Tokenizer& tokenizer) {
    return make(ParamsT::fields().parse(cell.params), cell, tokenizer);
  };
  return info;
}

using TaskRegistry = Registry<TaskInfo>;
using RegisterTask = Registrar<TaskInfo>;

}  // namespace ctxbench::tasks
