// freq_words_extraction.py (alpha 2.0, coded words of 6 letters, vocabulary max_seq_length // 50): coded words
// whose counts follow a Zipf law, the most frequent replaced by "..."; the answer is the next three.
#include <algorithm>
#include <cmath>
#include <set>

#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/ruler/scripts.h"

namespace ctxbench::tasks::text::ruler {

std::vector<Generated> freq_words_samples(const Options& o, const Tokenizer& tokenizer) {
  const std::string pattern = prompt_template(Script::freq_words_extraction);
  const int reserve = script_template(Script::freq_words_extraction).tokens_to_generate;
  const std::size_t vocab_size = std::max<std::size_t>(4, static_cast<std::size_t>(o.max_seq_length / 50));
  const double alpha = 2.0, zeta = riemann_zeta(alpha);
  return fit_samples(o, tokenizer, reserve, [&](int num_words, Rng& rng) {
    std::set<std::string> unique;
    while (unique.size() < vocab_size) unique.insert(random_letters(rng, 6, 'a'));
    std::vector<std::string> vocab(unique.begin(), unique.end());
    shuffle(rng, vocab);
    vocab[0] = "...";  // the top-ranked word is noise
    std::vector<std::string> words;
    for (std::size_t k = 1; k <= vocab.size(); ++k) {
      const auto count = static_cast<std::size_t>(num_words * std::pow(static_cast<double>(k), -alpha) / zeta);
      words.insert(words.end(), count, vocab[k - 1]);
    }
    shuffle(rng, words);
    std::string context;
    for (std::size_t i = 0; i < words.size(); ++i) context += (i ? " " : "") + words[i];
    return Generated{format_template(pattern, {{"context", context}, {"query", ""}}), {vocab[1], vocab[2], vocab[3]}};
  });
}

double riemann_zeta(double alpha) {
  if (!(alpha > 1)) throw std::invalid_argument("zeta: alpha must be > 1");
  // Direct sum to N plus the Euler-Maclaurin tail: exact to double precision for alpha >= 1.1 with N = 1000.
  const int n = 1000;
  double sum = 0;
  for (int k = n - 1; k >= 1; --k) sum += std::pow(k, -alpha);
  const double N = n;
  sum += std::pow(N, 1 - alpha) / (alpha - 1) + 0.5 * std::pow(N, -alpha) + alpha * std::pow(N, -alpha - 1) / 12 -
         alpha * (alpha + 1) * (alpha + 2) * std::pow(N, -alpha - 3) / 720;
  return sum;
}

}  // namespace ctxbench::tasks::text::ruler
