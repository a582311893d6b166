// The model runtime as a text generator: greedy decoding over a LlamaModel with the attention of any
// registered engine. Registered as the "llama" model backend, which the runner uses for text tasks on
// attention engines.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"
#include "engines/engine.h"
#include "model/llama_model.h"
#include "model/prompt_template.h"

namespace ctxbench::model {

struct GeneratorOptions {
  int prefill_chunk = 512;  // prompt tokens per forward call
  kernels::DType kv_dtype = kernels::DType::f32;
  std::string prompt_template = "";  // none (model/prompt_template.h)
};

// Reads the model parameters {"model": dir, "rope_scaling": object, "prompt_template": text} and the optional
// runtime ones
// {"prefill_chunk": int, "threads": int, "kv_dtype": "f32"|"f16"|"bf16"}. A relative model directory is
// taken from the source tree. Throws InputError naming the parameter.
struct ModelParams {
  std::string dir;
  nlohmann::json rope_scaling = nlohmann::json::object();
  int threads = 0;
  GeneratorOptions options;

  static ModelParams parse(const nlohmann::json& params);
};

// Hands a growing answer to a streaming caller piece by piece, keeping back what the next tokens may still
// change: an incomplete UTF-8 character (or the replacement character a decoder shows for it) and an end that
// may begin a stop string. The pieces concatenate to the final text.
class TextStream {
 public:
  explicit TextStream(const std::function<void(std::string_view)>& on_text) : on_text_(on_text) {}
  // `text` is the whole answer so far; `final` sends all of it that was not sent.
  void update(const std::string& text, const std::vector<std::string>& stop, bool final);

 private:
  const std::function<void(std::string_view)>& on_text_;
  std::string sent_;
};

class LlamaGenerator final : public Generator {
 public:
  LlamaGenerator(std::shared_ptr<const LlamaModel> model, std::shared_ptr<const engines::Engine> engine,
                 GeneratorOptions options = {});

  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  // Prompt = BOS (when the config has bos_token_id) + the prompt's tokens, in the prompt template when there is
  // one (model/prompt_template.h). Greedy decoding stops at an
  // EOS id, at max_new_tokens, or when the text contains a stop string (the text is cut before it).
  // Frequencies of RoPE are chosen for prompt + max_new_tokens positions.
  Generation generate(const TextSample& sample) override;
  // The same, streaming the answer token by token as it is decoded (what `serve` sends as SSE events).
  Generation generate_stream(const TextSample& sample, const std::function<void(std::string_view)>& on_text) override;
  // The same from prompt ids as given (no BOS or template added): what the llama.cpp peer is compared on.
  Generation generate_ids(const std::vector<int>& prompt, int max_new_tokens, const std::vector<std::string>& stop = {},
                          TextStream* stream = nullptr);
  // Scores the tokens as given (no BOS added): entry i is log p(tokens[i] | tokens[0..i)), entry 0 is 0.
  std::vector<double> token_logprobs(const std::vector<int>& tokens) override;
  // Keys attended per query row and resident KV bytes, summed over the layers of every sequence so far; the
  // largest memory plan of a sequence (model/memory_plan.h) and the process's peak resident set.
  std::vector<Measurement> extra_measurements() const override;

  // The greedy token ids of the last generate call (EOS included when it ended the generation).
  const std::vector<int>& last_tokens() const { return last_tokens_; }

 private:
  // Runs the prompt through in chunks; returns the logits of its last token.
  std::vector<float> prefill(Sequence& seq, const std::vector<int>& prompt);
  // Plans the memory of a sequence of `tokens` tokens and starts it; throws InputError (model/memory_plan.h)
  // before any work when the plan does not fit.
  Sequence start_planned(std::int64_t tokens);
  void collect(const Sequence& seq);

  std::shared_ptr<const LlamaModel> model_;
  std::shared_ptr<const engines::Engine> engine_;
  std::unique_ptr<Tokenizer> tokenizer_;
  GeneratorOptions options_;
  PromptFrame frame_;
  std::vector<int> last_tokens_;
  double queries_ = 0, keys_attended_ = 0, kv_bytes_resident_max_ = 0, memory_estimate_max_ = 0;
};

// Position of the largest logit (the first one on ties, as torch.argmax).
int argmax(const float* logits, int size);

}  // namespace ctxbench::model
