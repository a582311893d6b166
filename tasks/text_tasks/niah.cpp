// Needle in a haystack (gkamradt/LLMTest_NeedleInAHaystack): the haystack is cut to the cell's length minus
// a 200-token buffer (and the needles; then back to a whole UTF-8 character), each needle is inserted at its depth and
// moved back to just after a
// "." token; depth 100 appends. Multi-needle spaces n needles (100 - depth) / n apart, as
// llm_multi_needle_haystack_tester.py does. The original grades answers with an LLM judge; this task scores
// deterministically (recall of the answer phrase's words) and its metric name says so.
#include <fmt/format.h>

#include <algorithm>

#include "core/random.h"
#include "tasks/scoring/needle.h"
#include "tasks/task.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/haystack.h"

namespace ctxbench::tasks::text {
namespace {

constexpr const char* kNeedle =
    "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n";
constexpr const char* kQuestion = "What is the best thing to do in San Francisco?";
constexpr const char* kAnswer = "eat a sandwich and sit in Dolores Park on a sunny day";
const std::vector<std::string> kPizzaNeedles = {
    " Figs are one of the secret ingredients needed to build the perfect pizza. ",
    " Prosciutto is one of the secret ingredients needed to build the perfect pizza. ",
    " Goat cheese is one of the secret ingredients needed to build the perfect pizza. ",
};
constexpr const char* kPizzaQuestion = "What are the secret ingredients needed to build the perfect pizza?";
const std::vector<std::string> kPizzaAnswers = {"Figs", "Prosciutto", "Goat cheese"};
// needlehaystack/providers/Anthropic_prompt.txt: the original's plain-text (non-chat) prompt.
constexpr const char* kPrompt =
    "You are a helpful AI bot that answers questions for a user. Keep your response short and direct\n\nHuman: "
    "<context>\n{context}\n</context>\n\n{retrieval_question} Don't give information outside the document or "
    "repeat your findings\n\nAssistant: Here is the most relevant sentence in the context:";

struct NiahParams : TextTaskParams<1> {
  std::string haystack = kDefaultHaystack;
  std::string needle = kNeedle;
  std::string question = kQuestion;
  std::string answer = kAnswer;
  bool multi_needle = false;
  int buffer = 200;
  int max_new_tokens = 300;

  static ParamFields<NiahParams> fields() {
    using P = NiahParams;
    return model::with_model_fields(
        samples_field<P>()
            .field(&P::haystack, "haystack", "directory of *.txt files (sorted, repeated as needed)")
            .field(&P::needle, "needle", "the needle sentence")
            .field(&P::question, "question", "retrieval question")
            .field(&P::answer, "answer", "phrase whose words the answer must recall")
            .field(&P::multi_needle, "multi_needle",
                   "the three pizza-ingredient needles spaced (100-depth)/3 apart, and their question")
            .field(&P::buffer, "buffer",
                   "final_context_length_buffer: tokens left for the prompt wrapper and the answer", {.min = 0})
            .field(&P::max_new_tokens, "max_new_tokens", "generation limit (the original's max_tokens)", {.min = 1}));
  }
};

struct Inserted {
  std::vector<int> tokens;
  std::vector<int> needle_starts;  // token index of each needle, in insertion order
};

// insert_needles of the multi-needle tester (a single needle is the n = 1 case of the same loop).
Inserted insert_needles(const Tokenizer& tokenizer, std::vector<int> context, const std::vector<std::string>& needles,
                        double depth, int context_length, int buffer) {
  std::vector<std::vector<int>> needle_tokens;
  std::size_t needles_length = 0;
  for (const auto& n : needles) {
    needle_tokens.push_back(tokenizer.encode(n));
    needles_length += needle_tokens.back().size();
  }
  const int budget = context_length - buffer - static_cast<int>(needles_length);
  if (budget <= 0) {
    throw InputError(
        fmt::format("niah: context length {} leaves no room for the haystack after the {}-token buffer "
                    "and {} needle tokens",
                    context_length, buffer, needles_length));
  }
  if (context.size() > static_cast<std::size_t>(budget)) context.resize(static_cast<std::size_t>(budget));
  drop_partial_character(tokenizer, context);
  const auto period = tokenizer.encode(".");
  const double interval = (100.0 - depth) / static_cast<double>(needles.size());
  Inserted out;
  for (const auto& needle : needle_tokens) {
    std::size_t at = context.size();
    if (depth != 100.0) {
      at = static_cast<std::size_t>(static_cast<double>(context.size()) * (depth / 100.0));
      while (at > 0 && std::find(period.begin(), period.end(), context[at - 1]) == period.end()) --at;
    }
    context.insert(context.begin() + static_cast<std::ptrdiff_t>(at), needle.begin(), needle.end());
    for (int& start : out.needle_starts) {
      if (static_cast<std::size_t>(start) >= at) start += static_cast<int>(needle.size());
    }
    out.needle_starts.push_back(static_cast<int>(at));
    if (depth != 100.0) depth += interval;
  }
  out.tokens = std::move(context);
  return out;
}

std::vector<TextSample> make_samples(const NiahParams& p, const CellContext& cell, const Tokenizer& tokenizer) {
  const auto needles = p.multi_needle ? kPizzaNeedles : std::vector<std::string>{p.needle};
  const std::string question = p.multi_needle ? kPizzaQuestion : p.question;
  const auto answers = p.multi_needle ? kPizzaAnswers : std::vector<std::string>{p.answer};
  const std::string& dir = p.haystack;
  const std::size_t corpus_chars = haystack_text(dir).size();
  std::vector<TextSample> out;
  for (int i = 0; i < p.samples; ++i) {
    // The first sample starts at the corpus start as the original does; others at a seeded line start.
    std::size_t start = 0;
    if (i > 0) {
      Rng rng(sample_seed(cell.seed, static_cast<std::size_t>(i), 0x6e696168));
      const std::string& corpus = haystack_text(dir);
      start = corpus.find('\n', static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(corpus_chars) - 1)));
      start = start == std::string::npos ? 0 : start + 1;
    }
    const auto haystack = haystack_tokens(tokenizer, dir, cell.context_length, start);
    const auto inserted = insert_needles(tokenizer, haystack, needles, cell.depth, cell.context_length, p.buffer);
    TextSample sample;
    sample.prompt =
        format_template(kPrompt, {{"context", tokenizer.decode(inserted.tokens)}, {"retrieval_question", question}});
    sample.references = answers;
    sample.max_new_tokens = p.max_new_tokens;
    sample.extra = {{"needle_token_starts", inserted.needle_starts},
                    {"context_tokens", inserted.tokens.size()},
                    {"scoring", "deterministic phrase recall, not the original LLM judge"}};
    out.push_back(std::move(sample));
  }
  return out;
}

const RegisterTask registration{declared_text_task<NiahParams>(
    {
        .name = "niah",
        .description = "needle in a haystack (gkamradt): needle at the cell's depth after a '.', 200-token buffer; "
                       "scored by phrase recall, NOT the original LLM judge",
        .score =
            [](const TextSample& sample, const std::string& prediction) {
              return scoring::needle::niah_phrase_recall_not_llm_judge(prediction, sample.references);
            },
        .metric = "phrase_recall_not_llm_judge",
    },
    make_samples)};

}  // namespace
}  // namespace ctxbench::tasks::text
