// common_words_extraction.py (freq_cw 30, freq_ucw 3, num_cw 10, one example): a numbered list of words in
// which ten appear more often than the others; the answer is those ten.
#include <fmt/format.h>

#include <algorithm>

#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/ruler/scripts.h"

namespace ctxbench::tasks::text::ruler {
namespace {

std::vector<std::string> sample_unique_words(Rng& rng, const std::vector<std::string>& base, std::size_t count) {
  std::size_t arity = 1, capacity = base.size();
  while (capacity < count) {
    ++arity;
    capacity *= base.size();
  }
  std::vector<std::string> out;
  for (const std::size_t index : sample_indices(rng, capacity, count)) {
    std::string word;
    std::size_t rest = index;
    for (std::size_t part = 0; part < arity; ++part) {
      word += (part ? "-" : "") + base[rest % base.size()];
      rest /= base.size();
    }
    out.push_back(word);
  }
  return out;
}

std::pair<std::string, std::vector<std::string>> cwe_example(Rng& rng, const std::vector<std::string>& base,
                                                             int num_words, int common_repeats, int uncommon_repeats) {
  const auto words = sample_unique_words(rng, base, static_cast<std::size_t>(num_words));
  const std::size_t common_count = std::min<std::size_t>(10, words.size());
  std::vector<std::string> common(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(common_count)), list;
  for (int r = 0; r < common_repeats; ++r) list.insert(list.end(), common.begin(), common.end());
  for (int r = 0; r < uncommon_repeats; ++r)
    list.insert(list.end(), words.begin() + static_cast<std::ptrdiff_t>(common_count), words.end());
  shuffle(rng, list);
  std::string context;
  for (std::size_t i = 0; i < list.size(); ++i) context += fmt::format("{}{}. {}", i ? " " : "", i + 1, list[i]);
  return {context, common};
}

}  // namespace

std::vector<Generated> common_words_samples(const Options& o, const Tokenizer& tokenizer) {
  std::vector<std::string> base;
  for (const char* file : {"nouns.txt", "adjectives.txt", "verbs.txt"}) {
    for (auto& w : read_words(o.words_dir, file)) base.push_back(std::move(w));
  }
  // RULER adds a list of English words; ours are the haystack's lowercase words, so that contexts of 128K
  // tokens still use single words.
  for (const auto& w : essay_words(o.haystack_dir)) {
    if (w.size() >= 3 && w.size() <= 12 && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
      base.push_back(w);
  }
  std::sort(base.begin(), base.end());
  base.erase(std::unique(base.begin(), base.end()), base.end());
  Rng base_rng(o.seed);
  shuffle(base_rng, base);
  const bool short_context = o.max_seq_length < 4096;
  const std::string pattern = prompt_template(Script::common_words_extraction);
  const int reserve = script_template(Script::common_words_extraction).tokens_to_generate;
  return fit_samples(o, tokenizer, reserve, [&](int num_words, Rng& rng) {
    const auto [shot_context, shot_answer] =
        short_context ? cwe_example(rng, base, 20, 3, 1) : cwe_example(rng, base, 40, 10, 3);
    std::string shot = format_template(pattern, {{"context", shot_context}, {"query", ""}}) + " ";
    for (std::size_t i = 0; i < shot_answer.size(); ++i)
      shot += fmt::format("{}{}. {}", i ? " " : "", i + 1, shot_answer[i]);
    auto [context, answer] =
        short_context ? cwe_example(rng, base, num_words, 6, 1) : cwe_example(rng, base, num_words, 30, 3);
    return Generated{shot + "\n" + format_template(pattern, {{"context", context}, {"query", ""}}), answer};
  });
}

}  // namespace ctxbench::tasks::text::ruler
