// The model level: text tasks produce prompts with references, a generator (the in-process model runtime
// over an attention engine, or a remote server) answers them, and the task scores the answers.
#pragma once

#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/measurement.h"
#include "core/params.h"

namespace ctxbench {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string name() const = 0;  // recorded with every result: lengths are in these tokens
  // Encodes as the model's own tokenizer does by default: the contents of added tokens in the text become them.
  virtual std::vector<int> encode(std::string_view text) const = 0;
  // Encodes text in which the contents of special tokens are text ("<|eot_id|>" inside a haystack stays
  // characters): what prompts are encoded with. Tokenizers without special contents encode as encode() does.
  virtual std::vector<int> encode_text(std::string_view text) const { return encode(text); }
  // The id of the added token whose content is exactly `content`, if there is one.
  virtual std::optional<int> added_token(std::string_view content) const {
    (void)content;
    return std::nullopt;
  }
  virtual std::string decode(const std::vector<int>& tokens) const = 0;
};

struct TextSample {
  std::string prompt;
  std::vector<std::string> references;  // what the scorer compares against
  int max_new_tokens = 32;
  std::vector<std::string> stop;  // generation stops after any of these
  Json extra;                     // task-specific scoring inputs (e.g. all_classes, length)
};

// A time a generator could not measure (a remote reply that did not stream token by token): stored as NULL and
// shown "-", never as 0.
inline constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

struct Generation {
  std::string text;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double prefill_seconds = 0;      // whole prompt, including attention
  double decode_seconds = 0;       // all generated tokens after the first; kNotMeasured when not measured
  double attention_seconds = 0;    // attention's share of prefill + decode (0: unknown, e.g. remote servers)
  double first_token_seconds = 0;  // time to first token as the caller saw it
};

class Generator {
 public:
  virtual ~Generator() = default;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual Generation generate(const TextSample& sample) = 0;
  // Like generate, handing each piece of text to on_text as soon as it exists (serve streams them); the
  // pieces concatenate to the returned text. The default hands over the whole text once generation ends.
  virtual Generation generate_stream(const TextSample& sample, const std::function<void(std::string_view)>& on_text) {
    Generation g = generate(sample);
    if (!g.text.empty()) on_text(g.text);
    return g;
  }
  // Answers every sample, in order. Generators that can keep several requests in flight (remote servers)
  // override it; the default answers one after another.
  virtual std::vector<Generation> generate_all(const std::vector<TextSample>& samples) {
    std::vector<Generation> out;
    for (const auto& sample : samples) out.push_back(generate(sample));
    return out;
  }
  // Natural-log probability of each token given the ones before it (the first entry is 0): perplexity.
  // Generators that cannot score tokens (most remote servers) throw std::runtime_error saying so.
  virtual std::vector<double> token_logprobs(const std::vector<int>& tokens) = 0;
  // Anything else worth storing for the cell (e.g. a server's token counts, KV offload figures).
  virtual std::vector<Measurement> extra_measurements() const { return {}; }
};

}  // namespace ctxbench
