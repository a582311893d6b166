// attention_captured: an attention-level problem whose Q/K/V are what a real model computed. The model reads
// a text task's prompt (passkey by default, key at the cell's depth; any text task through `task` and
// `task_params`) followed by its answer, teacher-forced; one layer's queries, keys and values are recorded as
// its dense attention saw them, after RoPE. The measured queries are the last positions (the end of the
// question and the answer), which are the ones that must read the answer; every occurrence of a reference in
// the prompt (the key's digits, a needle's value) gives the important keys whose recall is scored.
#include "tasks/attention_captured.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

#include "core/params.h"
#include "model/backend.h"
#include "model/llama_generator.h"
#include "model/tokenizer.h"
#include "tasks/task.h"

namespace ctxbench::tasks {
namespace {

// Rows appended to one [heads][tokens][dim] tensor, a call at a time.
class HeadRows {
 public:
  HeadRows(int heads, int dim) : rows_(heads), dim_(dim) {}

  void add(const float* x, int n) {
    for (std::size_t h = 0; h < rows_.size(); ++h) {
      const float* from = x + h * static_cast<std::size_t>(n) * dim_;
      rows_[h].insert(rows_[h].end(), from, from + static_cast<std::size_t>(n) * dim_);
    }
  }

  std::vector<float> joined() const {
    std::vector<float> out;
    for (const auto& head : rows_) out.insert(out.end(), head.begin(), head.end());
    return out;
  }

 private:
  std::vector<std::vector<float>> rows_;
  int dim_;
};

struct Recording {
  HeadRows q, out, k, v;
  Recording(const engines::HeadLayout& l)
      : q(l.heads_q, l.head_dim), out(l.heads_q, l.head_dim), k(l.heads_kv, l.head_dim), v(l.heads_kv, l.head_dim) {}
};

// A dense session that also records what passes through it.
class RecordingSession final : public engines::Session {
 public:
  RecordingSession(std::unique_ptr<engines::Session> dense, Recording& recording)
      : dense_(std::move(dense)), recording_(recording) {}

  void append(const float* k, const float* v, int n) override {
    recording_.k.add(k, n);
    recording_.v.add(v, n);
    dense_->append(k, v, n);
  }
  void attend(const float* q, int n, engines::Phase phase, float* out) override {
    recording_.q.add(q, n);
    dense_->attend(q, n, phase, out);
    recording_.out.add(out, n);
  }
  std::vector<engines::KeyRange> attended(int head, int query) const override { return dense_->attended(head, query); }
  engines::SessionStats stats() const override { return dense_->stats(); }

 private:
  std::unique_ptr<engines::Session> dense_;
  Recording& recording_;
};

// Dense attention on every layer; layer `layer` records.
class CaptureEngine final : public engines::Engine {
 public:
  CaptureEngine(int layer, std::unique_ptr<Recording>& recording)
      : dense_(dense_engine()), layer_(layer), recording_(recording) {}

  std::unique_ptr<engines::Session> open(const engines::HeadLayout& layout) const override {
    if (layout.layer != layer_) return dense_->open(layout);
    recording_ = std::make_unique<Recording>(layout);
    return std::make_unique<RecordingSession>(dense_->open(layout), *recording_);
  }

 private:
  static std::unique_ptr<engines::Engine> dense_engine() {
    const auto& info = engines::EngineRegistry::instance().get("dense", "attention_captured");
    return info.make(resolve_params(info.params, Json::object(), "attention_captured: dense"));
  }

  std::unique_ptr<engines::Engine> dense_;
  int layer_;
  std::unique_ptr<Recording>& recording_;
};

struct CapturedParams : model::ModelChoice, AttentionDrive<8> {
  int layer = -1;
  std::string task = "passkey";
  Json task_params = Json::object();

  static ParamFields<CapturedParams> fields() {
    return with_attention_drive(
               model::with_model_fields(
                   ParamFields<CapturedParams>()
                       .field(&CapturedParams::layer, "layer",
                              "the model layer whose attention is captured (-1: the last)", {.min = -1})
                       .field(&CapturedParams::task, "task", "the text task whose prompt the model reads")
                       .field(&CapturedParams::task_params, "task_params",
                              "that task's parameters (its model parameters are this task's)")),
               "measured positions at the end: the question's last tokens and the answer")
        .check([](const CapturedParams& p) {
          if (!p.prompt_template.empty()) {
            throw InputError(
                "attention_captured.prompt_template: not supported: the captured attention is over the bare "
                "prompt and its answer");
          }
        });
  }
};

// The prompt of text task `p.task` for this cell, at most `tokens` tokens long. Passkey puts its key at the
// cell's depth unless the task parameters say otherwise, so that the cell's depth axis means something.
TextSample source_sample(const CellContext& cell, const CapturedParams& p, int tokens, const Tokenizer& tokenizer) {
  const auto& source = TaskRegistry::instance().get(p.task, "attention_captured.task");
  if (!source.make_text_samples) {
    throw InputError(
        fmt::format("attention_captured.task: expected a text task (passkey, niah, ruler, ...), got "
                    "\"{}\", an attention-level task",
                    p.task));
  }
  Json given = p.task_params;
  if (p.task == "passkey" && !given.contains("placement")) given["placement"] = "depth";
  given.update(p.json());
  given["samples"] = 1;
  const Json params = resolve_params(source.params, given, "attention_captured.task_params");
  return source.make_text_samples(CellContext{params, tokens, cell.depth, cell.seed}, tokenizer).at(0);
}

// The answer the model reads after the prompt, as a model answers: the references after a space.
std::string answer_text(const TextSample& sample) {
  std::string joined;
  for (const auto& reference : sample.references) joined += (joined.empty() ? "" : ", ") + reference;
  return (!sample.prompt.empty() && std::isspace(static_cast<unsigned char>(sample.prompt.back())) ? "" : " ") +
         joined + ".";
}

// Token positions (after `offset` leading tokens) of every occurrence of `needle` in `prompt`: the tokens of
// prompt[0, end) minus those of prompt[0, begin). Exact for byte tokenizers; for BPE, the tokens that the
// prefixes' tokenizations assign to the occurrence.
std::vector<int> occurrence_tokens(const Tokenizer& tokenizer, const std::string& prompt, const std::string& needle,
                                   int offset) {
  std::vector<int> out;
  const auto count = [&](std::size_t chars) {
    return static_cast<int>(tokenizer.encode(prompt.substr(0, chars)).size());
  };
  for (auto at = prompt.find(needle); at != std::string::npos; at = prompt.find(needle, at + needle.size())) {
    for (int t = count(at); t < count(at + needle.size()); ++t) out.push_back(offset + t);
  }
  return out;
}

int resolve_layer(int layer, int layers) {
  if (layer >= layers) {
    throw InputError(
        fmt::format("attention_captured.layer: expected -1 (the last) or 0..{} for this model's {} "
                    "layers, got {}",
                    layers - 1, layers, layer));
  }
  return layer < 0 ? layers - 1 : layer;
}

AttentionProblem make_problem(const CapturedParams& p, const CellContext& cell) {
  const auto settings = model::ModelParams::parse(p.json());
  const model::LlamaModel llama(settings.dir, settings.rope_scaling, settings.threads);
  const auto tokenizer = model::load_tokenizer(llama.dir(), llama.config().vocab_size);
  const int layer = resolve_layer(p.layer, llama.config().num_layers);

  // Room for a BOS and a passkey answer (" " + up to 5 digits + "."); other tasks keep room for their answers
  // inside their length already.
  const int bos = llama.config().bos_token_id ? 1 : 0;
  const TextSample sample = source_sample(cell, p, cell.context_length - bos - 8, *tokenizer);
  std::vector<int> tokens;
  if (bos) tokens.push_back(*llama.config().bos_token_id);
  const auto encoded = tokenizer->encode(sample.prompt + answer_text(sample));
  tokens.insert(tokens.end(), encoded.begin(), encoded.end());

  AttentionProblem problem;
  p.drive(problem, static_cast<int>(tokens.size()), static_cast<int>(tokens.size()) - 1);
  const int prompt = problem.tokens - problem.queries;
  for (const auto& reference : sample.references) {
    const auto at = occurrence_tokens(*tokenizer, sample.prompt, reference, bos);
    problem.important_keys.insert(problem.important_keys.end(), at.begin(), at.end());
  }
  std::sort(problem.important_keys.begin(), problem.important_keys.end());
  problem.important_keys.erase(std::unique(problem.important_keys.begin(), problem.important_keys.end()),
                               problem.important_keys.end());

  CapturedLayer captured = capture_layer(llama, tokens, layer);
  problem.layout = {captured.heads_q, captured.heads_kv, captured.head_dim, p.kv_dtype};
  problem.q = slice_tokens(captured.q, captured.heads_q, captured.tokens, captured.head_dim, prompt, problem.queries);
  problem.q_observe = slice_tokens(captured.q, captured.heads_q, captured.tokens, captured.head_dim,
                                   prompt - problem.observe, problem.observe);
  problem.k = std::move(captured.k);
  problem.v = std::move(captured.v);
  return problem;
}

const RegisterTask registration{declared_attention_task<CapturedParams>(
    {
        .name = "attention_captured",
        .description = "Q/K/V of one layer of a real model reading a text task's prompt and its answer (passkey "
                       "by default, key at the cell's depth); recall of the answer's occurrences in the prompt",
    },
    make_problem)};

}  // namespace

CapturedLayer capture_layer(const model::LlamaModel& llama, const std::vector<int>& tokens, int layer) {
  std::unique_ptr<Recording> recording;
  const CaptureEngine engine(layer, recording);
  model::Sequence sequence = llama.start(engine, static_cast<std::int64_t>(tokens.size()), kernels::DType::f32);
  constexpr int kChunk = 512;
  std::vector<float> hidden;
  for (std::size_t at = 0; at < tokens.size(); at += kChunk) {
    const std::size_t size = std::min<std::size_t>(kChunk, tokens.size() - at);
    llama.forward(sequence, std::span(tokens).subspan(at, size), engines::Phase::prefill, hidden);
  }
  const auto& c = llama.config();
  CapturedLayer out;
  out.heads_q = c.num_heads;
  out.heads_kv = c.num_kv_heads;
  out.head_dim = c.head_dim;
  out.tokens = static_cast<int>(tokens.size());
  out.q = recording->q.joined();
  out.out = recording->out.joined();
  out.k = recording->k.joined();
  out.v = recording->v.joined();
  return out;
}

}  // namespace ctxbench::tasks
