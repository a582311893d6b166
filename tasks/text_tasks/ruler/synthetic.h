// RULER's synthetic tasks (NVIDIA/RULER scripts/data/synthetic/*.py, constants.py, synthetic.yaml), generated
// here in the model's tokens: the 13 tasks of tasks.h, with the original templates (base model: no chat
// wrapper; the answer prefix ends the prompt) and the original recipes, one file per generator script
// (niah.cpp, variable_tracking.cpp, common_words_extraction.cpp, freq_words_extraction.cpp, qa.cpp).
// Random draws use ctxbench's seeded generator, so the samples follow RULER's recipe but are not
// byte-identical to RULER's for the same seed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"

namespace ctxbench::tasks::text::ruler {

// One entry of constants.py TASKS.
struct Template {
  std::string_view task_template;
  std::string_view answer_prefix;
  int tokens_to_generate;
};
// base task: niah, variable_tracking, common_words_extraction, freq_words_extraction, qa.
const Template& base_template(std::string_view base_task);

// The 13 task names of synthetic.yaml, and the base task of each (throws InputError for other names).
const std::vector<std::string>& task_names();
std::string_view base_task_of(std::string_view task);

struct Options {
  std::string task;           // one of task_names()
  int max_seq_length = 4096;  // prompt tokens + tokens_to_generate + a BOS must fit
  int samples = 1;
  std::uint64_t seed = 42;
  std::string haystack_dir;  // the "essay" haystack (our books instead of Paul Graham's essays)
  std::string words_dir;     // adjectives.txt, nouns.txt, verbs.txt
  std::string qa_file;       // SQuAD (qa_1) or HotpotQA (qa_2) json; required for qa tasks
};

struct Sample {
  std::string input;          // the prompt without the answer prefix (RULER's "input")
  std::string answer_prefix;  // appended to the input to form the prompt
  std::vector<std::string> outputs;
  int length = 0;  // tokens of input + answer prefix + tokens_to_generate, as RULER records it
};

// Throws InputError when the context is too short for even the smallest sample, or for missing data.
std::vector<Sample> generate(const Options& options, const Tokenizer& tokenizer);

// RULER's string_match_all tasks vs string_match_part (qa).
bool uses_string_match_part(std::string_view task);

// Exposed for tests.
std::vector<std::string> split_sentences(const std::string& text);  // stand-in for NLTK's sent_tokenize
double riemann_zeta(double alpha);                                  // scipy.special.zeta(alpha), alpha > 1

}  // namespace ctxbench::tasks::text::ruler
