#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <numeric>
#include <set>

#include "core/params.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/haystack.h"
#include "tasks/text_tasks/ruler/scripts.h"

namespace ctxbench::tasks::text::ruler {

std::size_t below(Rng& rng, std::size_t n) {
  return static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(n) - 1));
}

std::vector<std::size_t> sample_indices(Rng& rng, std::size_t n, std::size_t k) {
  if (k > n) throw std::logic_error("sample larger than population");
  std::vector<std::size_t> out;
  if (k * 4 < n) {
    std::set<std::size_t> seen;
    while (out.size() < k) {
      const std::size_t x = below(rng, n);
      if (seen.insert(x).second) out.push_back(x);
    }
    return out;
  }
  std::vector<std::size_t> all(n);
  std::iota(all.begin(), all.end(), std::size_t{0});
  for (std::size_t i = 0; i < k; ++i) std::swap(all[i], all[i + below(rng, n - i)]);
  all.resize(k);
  return all;
}

std::string random_letters(Rng& rng, int count, char first) {
  std::string s;
  for (int i = 0; i < count; ++i) s += static_cast<char>(first + below(rng, 26));
  return s;
}
std::vector<std::string> read_words(const std::string& dir, const std::string& file) {
  const auto path = from_source_tree(dir) / file;
  std::vector<std::string> words;
  std::string text = read_text_file(path), word;
  for (const char c : text + "\n") {
    if (c == '\n' || c == '\r') {
      if (!word.empty()) words.push_back(word);
      word.clear();
    } else {
      word += c;
    }
  }
  if (words.empty()) throw InputError(fmt::format("{}: no words", path.string()));
  return words;
}

const std::vector<std::string>& essay_words(const std::string& dir) {
  static std::mutex mutex;
  static std::map<std::string, std::vector<std::string>> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(dir);
  if (it != cache.end()) return it->second;
  std::vector<std::string> words(1);
  bool in_space = false;
  for (const char c : haystack_text(dir)) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
    if (space && !in_space) words.emplace_back();
    if (!space) words.back() += c;
    in_space = space;
  }
  return cache.emplace(dir, std::move(words)).first->second;
}

std::vector<std::string> essay_sentences(const std::string& dir, std::size_t n) {
  static std::mutex mutex;
  static std::vector<std::pair<std::pair<std::string, std::size_t>, std::vector<std::string>>> recent;
  {
    std::lock_guard lock(mutex);
    for (const auto& [key, sentences] : recent) {
      if (key.first == dir && key.second == n) return sentences;
    }
  }
  const auto& words = essay_words(dir);
  std::string text;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) text += ' ';
    text += words[i % words.size()];
  }
  const auto first = text.find_first_not_of(' ');
  auto sentences =
      split_sentences(first == std::string::npos ? "" : text.substr(first, text.find_last_not_of(' ') - first + 1));
  std::lock_guard lock(mutex);
  recent.insert(recent.begin(), {{dir, n}, sentences});
  if (recent.size() > 4) recent.pop_back();
  return sentences;
}
std::vector<Generated> fit_samples(const Options& o, const Tokenizer& tokenizer, int reserve, const Maker& make) {
  auto fits_for = [&](std::uint64_t seed) {
    return [&, seed](int size) {
      Rng rng(seed);
      return token_count(tokenizer, make(size, rng).text) <= prompt_budget(o.max_seq_length, reserve);
    };
  };
  const auto first_fits = fits_for(sample_seed(o.seed, 0, 0x72756c6572));
  if (!first_fits(1)) {
    Rng rng(sample_seed(o.seed, 0, 0x72756c6572));
    throw InputError(
        fmt::format("ruler {}: context length {} is too short: the smallest sample has {} tokens plus {} "
                    "to generate and a BOS",
                    o.task, o.max_seq_length, token_count(tokenizer, make(1, rng).text), reserve));
  }
  int hi = 1;
  while (hi < (1 << 26) && first_fits(2 * hi)) hi *= 2;
  const int size = largest_fitting(hi, 2 * hi - 1, first_fits);
  std::vector<Generated> out;
  for (int i = 0; i < o.samples; ++i) {
    const std::uint64_t seed = sample_seed(o.seed, static_cast<std::size_t>(i), 0x72756c6572);
    const auto fits = fits_for(seed);
    const int own = fits(size) ? size : largest_fitting(1, size - 1, fits);
    if (own < 1)
      throw InputError(fmt::format("ruler {}: sample {} does not fit {} tokens", o.task, i, o.max_seq_length));
    Rng rng(seed);
    out.push_back(make(own, rng));
  }
  return out;
}

std::vector<std::string> split_sentences(const std::string& text) {
  // Punkt's English model splits after . ! ? (and closing quotes or brackets) before whitespace, except after
  // common abbreviations and initials; this is a small stand-in with the same behaviour on ordinary prose.
  static const std::set<std::string> abbreviations = {"mr", "mrs", "ms",   "dr", "st", "jr", "sr",
                                                      "vs", "etc", "prof", "no", "co", "mt"};
  std::vector<std::string> sentences;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '.' && c != '!' && c != '?') continue;
    std::size_t end = i + 1;
    while (end < text.size() && (text[end] == '"' || text[end] == '\'' || text[end] == ')' || text[end] == ']')) ++end;
    if (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) continue;
    if (c == '.') {
      std::size_t w = i;
      while (w > start && std::isalpha(static_cast<unsigned char>(text[w - 1]))) --w;
      std::string word = text.substr(w, i - w);
      std::transform(word.begin(), word.end(), word.begin(), [](unsigned char ch) { return std::tolower(ch); });
      if (abbreviations.contains(word) || (word.size() == 1 && std::isupper(static_cast<unsigned char>(text[w]))))
        continue;
    }
    sentences.push_back(text.substr(start, end - start));
    start = end;
    while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
    i = start - 1;
  }
  if (start < text.size()) sentences.push_back(text.substr(start));
  return sentences;
}

}  // namespace ctxbench::tasks::text::ruler
