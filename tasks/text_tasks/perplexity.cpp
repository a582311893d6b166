// Perplexity over long documents (the fitness of LongRoPE's factor search, and a RoPE comparison): one window
// of the cell's length per document, from its start (or a seeded offset), exp of the mean negative
// log-likelihood of the window's tokens under the model (Generator::token_logprobs). An optional BOS id is
// put first so that every text token is predicted. Lower is better.
#include <fmt/format.h>

#include <cmath>

#include "core/random.h"
#include "core/timer.h"
#include "tasks/task.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/haystack.h"

namespace ctxbench::tasks::text {
namespace {

enum class Offset { start, random };

struct PerplexityParams : TextTaskParams<3> {
  std::string documents = kDefaultHaystack;
  Offset offset = Offset::start;
  int bos_token_id = -1;

  static ParamFields<PerplexityParams> fields() {
    using P = PerplexityParams;
    return model::with_model_fields(
        samples_field<P>()
            .field(&P::documents, "documents", "directory of *.txt files, or jsonl with a \"text\" field")
            .choice(&P::offset, "offset", "window at the document start, or a seeded offset",
                    {{"start", Offset::start}, {"random", Offset::random}})
            .field(&P::bos_token_id, "bos_token_id", "token put first (-1: none)", {.min = -1}));
  }
};

// The documents: every *.txt file of a directory (sorted), or the "text" field of each line of a jsonl file.
std::vector<std::pair<std::string, std::string>> documents(const std::string& source) {
  const auto path = from_source_tree(source);
  std::vector<std::pair<std::string, std::string>> out;
  if (std::filesystem::is_directory(path)) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.is_regular_file() && entry.path().extension() == ".txt") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) out.emplace_back(f.string(), read_text_file(f));
  } else {
    for (const auto& [record, line] : read_jsonl(path)) {
      const std::string where = fmt::format("{}:{}", path.string(), line);
      out.emplace_back(where, string_field(record, "text", where));
    }
  }
  if (out.empty()) throw InputError(fmt::format("perplexity: no documents in {}", path.string()));
  return out;
}

// The first `count` tokens of `text` from character `start` on, encoding a growing prefix only.
std::vector<int> window_tokens(const Tokenizer& tokenizer, const std::string& text, std::size_t start, int count) {
  for (std::size_t chars = 2 * static_cast<std::size_t>(count) + 256;; chars *= 2) {
    const bool whole = start + chars >= text.size();
    auto tokens = tokenizer.encode(std::string_view(text).substr(start, chars));
    if (static_cast<int>(tokens.size()) > count || whole) {
      if (static_cast<int>(tokens.size()) > count) tokens.resize(static_cast<std::size_t>(count));
      return tokens;
    }
  }
}

std::vector<TextSample> make_samples(const PerplexityParams& p, const CellContext& cell, const Tokenizer& tokenizer) {
  const auto docs = documents(p.documents);
  const int bos = p.bos_token_id;
  const int count = cell.context_length - (bos >= 0 ? 1 : 0);
  std::vector<TextSample> out;
  for (int i = 0; i < p.samples; ++i) {
    const auto& [name, text] = docs[static_cast<std::size_t>(i) % docs.size()];
    std::size_t start = 0;
    if (p.offset == Offset::random) {
      Rng rng(sample_seed(cell.seed, static_cast<std::size_t>(i), 0x70706c));
      start = text.find(' ', static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(text.size()) - 1)));
      start = start == std::string::npos ? 0 : start + 1;
    }
    auto tokens = window_tokens(tokenizer, text, start, count);
    if (bos >= 0) tokens.insert(tokens.begin(), bos);
    if (tokens.size() < 2) throw InputError(fmt::format("perplexity: {} has fewer than two tokens", name));
    TextSample sample;
    sample.prompt = tokenizer.decode(tokens);
    sample.extra = {{"tokens", tokens}, {"document", name}, {"start_char", start}};
    out.push_back(std::move(sample));
  }
  return out;
}

SampleOutcome evaluate(Generator& generator, const TextSample& sample) {
  const auto tokens = sample.extra.at("tokens").get<std::vector<int>>();
  Stopwatch watch;
  const auto logprobs = generator.token_logprobs(tokens);
  double nll = 0;
  for (std::size_t i = 1; i < logprobs.size(); ++i) nll -= logprobs[i];
  const double perplexity = std::exp(nll / static_cast<double>(logprobs.size() - 1));
  SampleOutcome outcome;
  outcome.score = perplexity;
  outcome.generation.text = fmt::format("{:.6g}", perplexity);
  outcome.generation.prompt_tokens = static_cast<int>(tokens.size());
  outcome.generation.prefill_seconds = watch.seconds();
  outcome.generation.first_token_seconds = outcome.generation.prefill_seconds;
  return outcome;
}

const RegisterTask registration{declared_text_task<PerplexityParams>(
    {
        .name = "perplexity",
        .description = "perplexity of one window of the cell's length per document (lower is better)",
        .metric = "perplexity",
        .evaluate = evaluate,
    },
    make_samples)};

}  // namespace
}  // namespace ctxbench::tasks::text
