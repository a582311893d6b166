// What the runtime reads for a prompt: BOS (when the config has one) and, with a prompt template, the template's
// tokens around the prompt's own. A template is text with one "{prompt}" placeholder in which the model's special
// tokens are written as their contents (e.g. "<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"):
// they become their ids, while the prompt is text throughout (a "<|eot_id|>" inside a haystack stays characters).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "core/text.h"

namespace ctxbench::model {

class PromptFrame {
 public:
  // `prompt_template` "" means none. BOS is put first unless the template starts with it. Throws InputError
  // naming `field` for a template without exactly one {prompt}, or with a <|...|> or <name> token the
  // tokenizer does not have.
  PromptFrame(const Tokenizer& tokenizer, std::optional<int> bos_token_id, std::string_view prompt_template,
              std::string_view field);

  // `tokenizer` is the one the frame was made with.
  std::vector<int> ids(const Tokenizer& tokenizer, std::string_view prompt) const;

 private:
  std::vector<int> before_, after_;
};

}  // namespace ctxbench::model
