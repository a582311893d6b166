#include "model/prompt_template.h"

#include <fmt/format.h>

#include <regex>
#include <string>

#include "core/params.h"

namespace ctxbench::model {

namespace {

constexpr std::string_view kPlaceholder = "{prompt}";

// A template's special tokens must be the tokenizer's: a "<|im_start|>" meant for another model family would
// otherwise reach the model as characters.
void check_token_spans(const Tokenizer& tokenizer, const std::string& piece, std::string_view field) {
  static const std::regex token_like(R"(<\|[^<>|\s]*\|>|</?[A-Za-z_][A-Za-z0-9_.-]*>)");
  for (std::sregex_iterator it(piece.begin(), piece.end(), token_like), end; it != end; ++it) {
    if (!tokenizer.added_token(it->str())) {
      throw InputError(fmt::format(
          "{}: \"{}\" is not a token of the model's tokenizer ({}); write special tokens as their tokenizer.json "
          "contents",
          field, it->str(), tokenizer.name()));
    }
  }
}

}  // namespace

PromptFrame::PromptFrame(const Tokenizer& tokenizer, std::optional<int> bos_token_id, std::string_view prompt_template,
                         std::string_view field) {
  if (!prompt_template.empty()) {
    const std::size_t at = prompt_template.find(kPlaceholder);
    if (at == std::string_view::npos || prompt_template.find(kPlaceholder, at + 1) != std::string_view::npos) {
      throw InputError(
          fmt::format("{}: expected exactly one {} placeholder in \"{}\"", field, kPlaceholder, prompt_template));
    }
    const std::string before(prompt_template.substr(0, at)), after(prompt_template.substr(at + kPlaceholder.size()));
    check_token_spans(tokenizer, before, field);
    check_token_spans(tokenizer, after, field);
    before_ = tokenizer.encode(before);
    after_ = tokenizer.encode(after);
  }
  if (bos_token_id && (before_.empty() || before_.front() != *bos_token_id))
    before_.insert(before_.begin(), *bos_token_id);
}

std::vector<int> PromptFrame::ids(const Tokenizer& tokenizer, std::string_view prompt) const {
  std::vector<int> out = before_;
  const std::vector<int> text = tokenizer.encode_text(prompt);
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), after_.begin(), after_.end());
  return out;
}

}  // namespace ctxbench::model
