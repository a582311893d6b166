// constants.py: the prompt template, answer prefix and generation length of each script.
#include <fmt/format.h>

#include <map>
#include <stdexcept>

#include "tasks/text_tasks/ruler/scripts.h"

namespace ctxbench::tasks::text::ruler {
namespace {

// constants.py TASKS, byte for byte ("assgined" is the original's spelling).
const std::map<std::string, Template, std::less<>> kTemplates = {
    {"niah",
     {"Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will "
      "quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic {type_needle_v} "
      "for {query} mentioned in the provided text?",
      " The special magic {type_needle_v} for {query} mentioned in the provided text are", 128}},
    {"variable_tracking",
     {"Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\nQuestion: "
      "Find all variables that are assigned the value {query} in the text above.",
      " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are assgined "
      "the value {query}, they are: ",
      30}},
    {"common_words_extraction",
     {"Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones "
      "that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?",
      " Answer: The top 10 words that appear most often in the list are:", 120}},
    {"freq_words_extraction",
     {"Read the following coded text and track the frequency of each coded word. Find the three most frequently "
      "appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
      "What are the three most frequently appeared words in the above coded text?",
      " Answer: According to the coded text above, the three most frequently appeared words are:", 50}},
    {"qa",
     {"Answer the question based on the given documents. Only give me the answer and do not output any other "
      "words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given "
      "documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}",
      " Answer:", 32}},
};

}  // namespace

const Template& base_template(std::string_view base_task) {
  const auto it = kTemplates.find(base_task);
  if (it == kTemplates.end()) throw std::invalid_argument(fmt::format("no RULER template \"{}\"", base_task));
  return it->second;
}

const Template& script_template(Script script) { return base_template(script_name(script)); }

std::string prompt_template(Script script) {
  const Template& t = script_template(script);
  return std::string(t.task_template) + std::string(t.answer_prefix);
}

}  // namespace ctxbench::tasks::text::ruler
