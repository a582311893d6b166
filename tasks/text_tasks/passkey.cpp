// Passkey retrieval. "landmark": LongRoPE evaluation/passkey.py (from Landmark Attention): the task line, a
// character budget of repeated filler split at a uniform point (prefix and suffix are both cut from the start
// of the filler), the key line, the question, all joined by "\n"; 10 new tokens. "llamacpp": llama.cpp
// examples/passkey: the task line, n_junk filler sentences each with a leading space, the key line before
// junk sentence i_pos, then the question; 16 new tokens (its n_predict). The key is uniform in 1..50000 and
// an answer is correct when its first integer equals the key. The filler is sized so that the prompt, a BOS and
// the new tokens fill the cell's length as far as they fit.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/random.h"
#include "tasks/scoring/needle.h"
#include "tasks/task.h"
#include "tasks/text_tasks/common.h"

namespace ctxbench::tasks::text {
namespace {

constexpr const char* kTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you "
    "about the important information there.";
constexpr const char* kFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
constexpr const char* kQuestion = "What is the pass key? The pass key is";
constexpr int kFillerRepeats = 100000;  // " ".join([garbage] * 100000) bounds the character budget

enum class Variant { landmark, llamacpp };
enum class Placement { random, depth };

struct PasskeyParams : TextTaskParams<20> {
  Variant variant = Variant::landmark;
  Placement placement = Placement::random;

  static ParamFields<PasskeyParams> fields() {
    using P = PasskeyParams;
    return model::with_model_fields(
        samples_field<P>()
            .choice(&P::variant, "variant", "landmark (LongRoPE passkey.py) or llamacpp (examples/passkey)",
                    {{"landmark", Variant::landmark}, {"llamacpp", Variant::llamacpp}})
            .choice(&P::placement, "placement", "key position: random as the originals, or the cell's depth",
                    {{"random", Placement::random}, {"depth", Placement::depth}}));
  }
};

std::string landmark_prompt(std::size_t n_garbage, double split, int key) {
  static const std::string filler = [] {
    std::string text = kFiller;
    text.reserve(static_cast<std::size_t>(kFillerRepeats) * (text.size() + 1));
    for (int i = 1; i < kFillerRepeats; ++i) (text += " ") += kFiller;
    return text;
  }();
  // random.randint(0, n_garbage) from a uniform draw in [0, 1).
  const auto prefix = std::min(n_garbage, static_cast<std::size_t>(split * static_cast<double>(n_garbage + 1)));
  const std::string info = fmt::format("The pass key is {0}. Remember it. {0} is the pass key.", key);
  return fmt::format("{}\n{}\n{}\n{}\n{}", kTask, filler.substr(0, prefix), info, filler.substr(0, n_garbage - prefix),
                     kQuestion);
}

std::string llamacpp_prompt(int n_junk, int i_pos, int key) {
  std::string prompt = kTask;
  for (int i = 0; i < n_junk; ++i) {
    if (i == i_pos) prompt += fmt::format(" The pass key is {0}. Remember it. {0} is the pass key.", key);
    (prompt += " ") += kFiller;
  }
  return prompt + " " + kQuestion;
}

// The largest size (characters or junk sentences) whose prompt fits `tokens`: grow by doubling, then bisect.
template <typename Build>
int largest_size(const Tokenizer& tokenizer, int tokens, int cap, Build build) {
  auto fits = [&](int size) { return token_count(tokenizer, build(size)) <= tokens; };
  if (!fits(0))
    throw InputError(fmt::format("passkey: even without filler the prompt is longer than {} tokens", tokens));
  int hi = 64;
  while (hi < cap && fits(hi)) hi = std::min(cap, 2 * hi);
  return largest_fitting(0, hi, fits);
}

std::vector<TextSample> make_samples(const PasskeyParams& p, const CellContext& cell, const Tokenizer& tokenizer) {
  std::vector<TextSample> out;
  for (int i = 0; i < p.samples; ++i) {
    Rng rng(sample_seed(cell.seed, static_cast<std::size_t>(i), 0x706b6579));
    const int key = static_cast<int>(rng.integer(1, 50000));
    const double split =
        p.placement == Placement::depth ? std::min(cell.depth / 100.0, std::nextafter(1.0, 0.0)) : rng.uniform();
    TextSample sample;
    sample.max_new_tokens = p.variant == Variant::llamacpp ? 16 : 10;
    const int budget = prompt_budget(cell.context_length, sample.max_new_tokens);
    if (p.variant == Variant::llamacpp) {
      auto build = [&](int n_junk) {
        return llamacpp_prompt(n_junk, std::min(n_junk - 1, static_cast<int>(split * n_junk)), key);
      };
      sample.prompt = build(std::max(1, largest_size(tokenizer, budget, kFillerRepeats, build)));
    } else {
      auto build = [&](int n) { return landmark_prompt(static_cast<std::size_t>(n), split, key); };
      const int cap = kFillerRepeats * static_cast<int>(std::string_view(kFiller).size() + 1) - 1;
      sample.prompt = build(largest_size(tokenizer, budget, cap, build));
    }
    sample.references = {std::to_string(key)};
    out.push_back(std::move(sample));
  }
  return out;
}

const RegisterTask registration{declared_text_task<PasskeyParams>(
    {
        .name = "passkey",
        .description = "passkey retrieval (LongRoPE/Landmark recipe, or llama.cpp's junk sentences); first integer "
                       "of the answer must equal the key",
        .score =
            [](const TextSample& sample, const std::string& prediction) {
              return scoring::needle::passkey_correct(prediction, sample.references[0]) ? 1.0 : 0.0;
            },
        .metric = "accuracy",
    },
    make_samples)};

}  // namespace
}  // namespace ctxbench::tasks::text
