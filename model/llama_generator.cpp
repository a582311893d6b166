#include "model/llama_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/metrics.h"
#include "core/source_tree.h"
#include "core/timer.h"
#include "model/backend.h"
#include "model/memory_plan.h"
#include "model/tokenizer.h"

namespace ctxbench::model {

namespace {

// Final-normed hidden rows whose logits are formed at once when scoring every position.
constexpr int kLogitRows = 32;

int optional_int(const nlohmann::json& params, const char* key, int fallback, int minimum) {
  const auto it = params.find(key);
  if (it == params.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<long long>() < minimum || it->get<long long>() > (1 << 30)) {
    throw InputError(fmt::format("model params: {}: expected an integer >= {}, got {}", key, minimum, it->dump()));
  }
  return it->get<int>();
}

// Length of the trailing bytes of `text` that start a UTF-8 character the next token may complete.
std::size_t incomplete_utf8_tail(const std::string& text) {
  const std::size_t n = text.size();
  for (std::size_t back = 1; back <= std::min<std::size_t>(3, n); ++back) {
    const auto byte = static_cast<unsigned char>(text[n - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: look further back for its lead
    const std::size_t length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;
}

// Length of the longest end of `text` that is a proper beginning of a stop string: held back, since the next
// tokens may complete the stop string, which is cut from the answer.
std::size_t stop_string_tail(const std::string& text, const std::vector<std::string>& stop) {
  std::size_t tail = 0;
  for (const std::string& s : stop) {
    if (s.empty()) continue;
    for (std::size_t k = std::min(s.size() - 1, text.size()); k > tail; --k) {
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        tail = k;
        break;
      }
    }
  }
  return tail;
}

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // what a decoder shows for a cut character

}  // namespace

void TextStream::update(const std::string& text, const std::vector<std::string>& stop, bool final) {
  if (text.compare(0, sent_.size(), sent_) != 0) return;  // a decoder that rewrote what was sent: never seen
  std::size_t stable = text.size();
  if (!final) {
    stable -= std::max(incomplete_utf8_tail(text), stop_string_tail(text, stop));
    while (stable >= sent_.size() + kReplacementCharacter.size() &&
           text.compare(stable - kReplacementCharacter.size(), kReplacementCharacter.size(), kReplacementCharacter) ==
               0)
      stable -= kReplacementCharacter.size();
  }
  if (stable <= sent_.size()) return;
  on_text_(std::string_view(text).substr(sent_.size(), stable - sent_.size()));
  sent_.assign(text, 0, stable);
}

ModelParams ModelParams::parse(const nlohmann::json& params) {
  if (!params.is_object()) throw InputError("model params: expected an object, got " + params.dump());
  ModelParams p;
  const auto model = params.find("model");
  if (model == params.end() || !model->is_string() || model->get<std::string>().empty()) {
    throw InputError("model params: model: expected a model directory");
  }
  p.dir = from_source_tree(model->get<std::string>()).string();
  if (const auto rope = params.find("rope_scaling"); rope != params.end() && !rope->is_null()) {
    if (!rope->is_object()) throw InputError("model params: rope_scaling: expected an object, got " + rope->dump());
    p.rope_scaling = *rope;
  }
  if (const auto text = params.find("prompt_template"); text != params.end()) {
    if (!text->is_string()) throw InputError("model params: prompt_template: expected a string, got " + text->dump());
    p.options.prompt_template = text->get<std::string>();
  }
  p.threads = optional_int(params, "threads", 0, 0);
  p.options.prefill_chunk = optional_int(params, "prefill_chunk", p.options.prefill_chunk, 1);
  if (const auto kv = params.find("kv_dtype"); kv != params.end()) {
    try {
      p.options.kv_dtype = kernels::parse_dtype(kv->is_string() ? kv->get<std::string>() : kv->dump());
    } catch (const std::invalid_argument& e) {
      throw InputError(std::string("model params: kv_dtype: ") + e.what());
    }
  }
  return p;
}

int argmax(const float* logits, int size) { return static_cast<int>(std::max_element(logits, logits + size) - logits); }

LlamaGenerator::LlamaGenerator(std::shared_ptr<const LlamaModel> model, std::shared_ptr<const engines::Engine> engine,
                               GeneratorOptions options)
    : model_(std::move(model)),
      engine_(std::move(engine)),
      tokenizer_(load_tokenizer(model_->dir(), model_->config().vocab_size)),
      options_(options),
      frame_(*tokenizer_, model_->config().bos_token_id, options_.prompt_template, "prompt_template") {
  if (options_.prefill_chunk < 1) throw std::invalid_argument("prefill_chunk must be at least 1");
}

std::vector<float> LlamaGenerator::prefill(Sequence& seq, const std::vector<int>& prompt) {
  std::vector<float> hidden, logits;
  const int n = static_cast<int>(prompt.size());
  for (int at = 0; at < n; at += options_.prefill_chunk) {
    const int size = std::min(options_.prefill_chunk, n - at);
    model_->forward(seq, std::span(prompt).subspan(at, size), engines::Phase::prefill, hidden);
  }
  const int d = model_->config().hidden_size;
  model_->logits(hidden.data() + hidden.size() - d, 1, logits);
  return logits;
}

Sequence LlamaGenerator::start_planned(std::int64_t tokens) {
  const MemoryPlan plan = plan_memory(*model_, *engine_, tokens, options_.prefill_chunk, options_.kv_dtype);
  if (const auto room = memory_room(*model_)) check_fits(plan, *room, model_->dir());
  memory_estimate_max_ = std::max(memory_estimate_max_, static_cast<double>(plan.total()));
  return model_->start(*engine_, tokens, options_.kv_dtype);
}

Generation LlamaGenerator::generate(const TextSample& sample) {
  return generate_ids(frame_.ids(*tokenizer_, sample.prompt), sample.max_new_tokens, sample.stop);
}

Generation LlamaGenerator::generate_stream(const TextSample& sample,
                                           const std::function<void(std::string_view)>& on_text) {
  TextStream stream(on_text);
  return generate_ids(frame_.ids(*tokenizer_, sample.prompt), sample.max_new_tokens, sample.stop, &stream);
}

Generation LlamaGenerator::generate_ids(const std::vector<int>& prompt, int max_new_tokens,
                                        const std::vector<std::string>& stop, TextStream* stream) {
  const Stopwatch total;
  const LlamaConfig& c = model_->config();
  if (prompt.empty()) throw std::invalid_argument("cannot generate from an empty prompt without a BOS token");
  const int max_new = std::max(max_new_tokens, 0);

  Generation g;
  g.prompt_tokens = static_cast<int>(prompt.size());
  Sequence seq = start_planned(static_cast<std::int64_t>(prompt.size()) + max_new);
  const Stopwatch prefill_watch;
  std::vector<float> logits = prefill(seq, prompt);
  g.prefill_seconds = prefill_watch.seconds();
  g.first_token_seconds = total.seconds();

  last_tokens_.clear();
  std::vector<int> text_tokens;
  const Stopwatch decode_watch;
  for (int step = 0; step < max_new; ++step) {
    if (step > 0) {
      std::vector<float> hidden;
      model_->forward(seq, std::span(&last_tokens_.back(), 1), engines::Phase::decode, hidden);
      model_->logits(hidden.data(), 1, logits);
    }
    const int next = argmax(logits.data(), c.vocab_size);
    last_tokens_.push_back(next);
    if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), next) != c.eos_token_ids.end()) break;
    text_tokens.push_back(next);
    g.text = tokenizer_->decode(text_tokens);
    std::size_t cut = std::string::npos;
    for (const std::string& text : stop) {
      if (!text.empty()) cut = std::min(cut, g.text.find(text));
    }
    if (cut != std::string::npos) {
      g.text.resize(cut);
      break;
    }
    if (stream) stream->update(g.text, stop, false);
  }
  if (stream) stream->update(g.text, stop, true);
  g.decode_seconds = last_tokens_.size() > 1 ? decode_watch.seconds() : 0.0;
  g.generated_tokens = static_cast<int>(last_tokens_.size());
  g.attention_seconds = seq.attention_seconds;
  collect(seq);
  return g;
}

std::vector<double> LlamaGenerator::token_logprobs(const std::vector<int>& tokens) {
  const int n = static_cast<int>(tokens.size());
  std::vector<double> out(n, 0.0);
  if (n == 0) return out;
  const int d = model_->config().hidden_size, vocab = model_->config().vocab_size;
  Sequence seq = start_planned(n);
  std::vector<float> hidden, logits;
  for (int at = 0; at < n; at += options_.prefill_chunk) {
    const int size = std::min(options_.prefill_chunk, n - at);
    model_->forward(seq, std::span(tokens).subspan(at, size), engines::Phase::prefill, hidden);
    for (int r0 = 0; r0 < size; r0 += kLogitRows) {
      const int rows = std::min(kLogitRows, size - r0);
      model_->logits(hidden.data() + static_cast<std::size_t>(r0) * d, rows, logits);
      for (int r = 0; r < rows; ++r) {
        const int next = at + r0 + r + 1;
        if (next >= n) break;
        const float* row = logits.data() + static_cast<std::size_t>(r) * vocab;
        const float top = *std::max_element(row, row + vocab);
        double sum = 0;
        for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - top);
        out[next] = static_cast<double>(row[tokens[next]]) - top - std::log(sum);
      }
    }
  }
  collect(seq);
  return out;
}

void LlamaGenerator::collect(const Sequence& seq) {
  double resident = 0;
  for (const auto& session : seq.sessions) {
    const engines::SessionStats s = session->stats();
    queries_ += static_cast<double>(s.queries);
    keys_attended_ += static_cast<double>(s.keys_attended);
    resident += static_cast<double>(s.kv_bytes_resident);
  }
  kv_bytes_resident_max_ = std::max(kv_bytes_resident_max_, resident);
}

std::vector<Measurement> LlamaGenerator::extra_measurements() const {
  if (queries_ == 0) return {};
  return {make_measurement("keys_per_query", {keys_attended_ / queries_}),
          make_measurement("kv_bytes_resident", {kv_bytes_resident_max_}),
          make_measurement("memory_estimate_bytes", {memory_estimate_max_}),
          make_measurement("peak_rss_bytes", {static_cast<double>(peak_resident_bytes())})};
}

std::unique_ptr<Generator> open_generator(const Json& model_params, std::shared_ptr<const engines::Engine> attention) {
  const ModelParams p = ModelParams::parse(model_params);
  auto model = std::make_shared<const LlamaModel>(p.dir, p.rope_scaling, p.threads);
  return std::make_unique<LlamaGenerator>(std::move(model), std::move(attention), p.options);
}

Json model_params_of(const Json& task_params) {
  Json out = {{"model", task_params.at("model")}, {"rope_scaling", task_params.at("rope_scaling")}};
  if (task_params.contains("prompt_template")) out["prompt_template"] = task_params.at("prompt_template");
  return out;
}

PromptTokenizer open_tokenizer(const Json& model_params) {
  const ModelParams p = ModelParams::parse(model_params);
  const LlamaConfig config = LlamaConfig::from_dir(p.dir, p.rope_scaling);
  auto tokenizer = load_tokenizer(p.dir, config.vocab_size);
  PromptFrame frame(*tokenizer, config.bos_token_id, p.options.prompt_template, "prompt_template");
  return {std::move(tokenizer), std::move(frame)};
}

}  // namespace ctxbench::model
