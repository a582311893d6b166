// What RULER's generator scripts share here: Python's random module on ctxbench's generator, the word lists
// and the essay haystack, constants.py's templates and the search for the largest sample that fits the
// context. Each script (scripts/data/synthetic/NAME.py) is one file NAME.cpp with one function below, from the
// cell's options to its samples.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/text.h"
#include "tasks/text_tasks/ruler/synthetic.h"
#include "tasks/text_tasks/ruler/tasks.h"

namespace ctxbench::tasks::text::ruler {

// ---- Python's random module equivalents on our generator

std::size_t below(Rng& rng, std::size_t n);  // random.randrange(n)

// random.sample(range(n), k): k distinct values in random order.
std::vector<std::size_t> sample_indices(Rng& rng, std::size_t n, std::size_t k);

template <typename T>
void shuffle(Rng& rng, std::vector<T>& v) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(rng, i)]);
}

// `count` letters from `first` on ('A' or 'a').
std::string random_letters(Rng& rng, int count, char first);

// ---- data

// One word per line of `file` in `dir`.
std::vector<std::string> read_words(const std::string& dir, const std::string& file);

// The essay haystack: re.sub(r"\s+", " ", text).split(" "), repeated when more words are asked for.
const std::vector<std::string>& essay_words(const std::string& dir);

// _get_essay_document_sents: the sentences of the first n words (an LRU of a few sizes, as the original's
// lru_cache, because the size search asks for the same sizes again).
std::vector<std::string> essay_sentences(const std::string& dir, std::size_t n);

// The noise haystack of niah.py and variable_tracking.py.
inline constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

// ---- constants.py

const Template& script_template(Script script);
// The script's task template followed by its answer prefix: the whole prompt, to be formatted.
std::string prompt_template(Script script);

// ---- sizing

struct Generated {
  std::string text;  // input + answer prefix
  std::vector<std::string> outputs;
};
using Maker = std::function<Generated(int size, Rng& rng)>;

// RULER searches the haystack size with the first sample, then shrinks a sample that does not fit. Here:
// the largest size that fits for the first sample (doubling, then bisection), then for each other sample
// the largest size up to that one that fits with its own draws. A sample is rebuilt from its seed for each
// size tried, so it is deterministic.
std::vector<Generated> fit_samples(const Options& o, const Tokenizer& tokenizer, int reserve, const Maker& make);

// ---- the scripts

std::vector<Generated> niah_samples(const Options& o, const NiahArgs& args, const Tokenizer& tokenizer);
std::vector<Generated> variable_tracking_samples(const Options& o, const Tokenizer& tokenizer);
std::vector<Generated> common_words_samples(const Options& o, const Tokenizer& tokenizer);
std::vector<Generated> freq_words_samples(const Options& o, const Tokenizer& tokenizer);
std::vector<Generated> qa_samples(const Options& o, QaDataset dataset, const Tokenizer& tokenizer);

}  // namespace ctxbench::tasks::text::ruler
