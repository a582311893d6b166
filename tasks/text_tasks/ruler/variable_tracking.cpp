// variable_tracking.py (num_chains 1, num_hops 4, with its one in-context example): chains of "VAR X = VAR Y"
// assignments hidden in noise; the answer is every variable that holds the chain's value.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/ruler/scripts.h"

namespace ctxbench::tasks::text::ruler {
namespace {

struct Chains {
  std::vector<std::vector<std::string>> vars, chains;
};

Chains make_chains(Rng& rng, int num_chains, int num_hops, bool icl) {
  const int letters = icl ? 3 : 5;
  std::set<std::string> used;
  Chains c;
  for (int ch = 0; ch < num_chains; ++ch) {
    std::vector<std::string> vars;
    while (static_cast<int>(vars.size()) < num_hops + 1) {
      auto name = random_letters(rng, letters, 'A');
      if (used.insert(name).second) vars.push_back(name);
    }
    std::vector<std::string> chain = {fmt::format("VAR {} = {}", vars[0], rng.integer(10000, 99998))};
    for (int j = 0; j < num_hops; ++j) chain.push_back(fmt::format("VAR {} = VAR {} ", vars[j + 1], vars[j]));
    c.vars.push_back(vars);
    c.chains.push_back(chain);
  }
  return c;
}

Generated vt_sample(int num_noises, Rng& rng, bool icl) {
  const int num_hops = 4;  // synthetic.yaml; the example's min(10, num_hops) is the same
  auto c = make_chains(rng, 1, num_hops, icl);
  const std::string noise = std::string(kNoise) + "\n";
  std::vector<std::string> sentences(static_cast<std::size_t>(num_noises), noise);
  if (sentences.size() <= c.chains[0].size()) {
    std::vector<std::string> pieces;
    for (const auto& n : sentences) {
      for (std::size_t from = 0;;) {
        const auto dot = n.find('.', from);
        const std::string piece = n.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
        const bool blank = piece.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
        pieces.push_back(blank ? piece : piece + ".");
        if (dot == std::string::npos) break;
        from = dot + 1;
      }
    }
    sentences = pieces;
    if (sentences.size() <= c.chains[0].size()) {
      for (auto& chain : c.chains) chain.resize(sentences.empty() ? 0 : sentences.size() - 1);
    }
  }
  for (const auto& chain : c.chains) {
    auto positions = sample_indices(rng, sentences.size(), chain.size());
    std::sort(positions.begin(), positions.end());
    for (std::size_t j = 0; j < chain.size(); ++j) {
      sentences.insert(sentences.begin() + static_cast<std::ptrdiff_t>(positions[j] + j), chain[j]);
    }
  }
  std::string context;
  for (std::size_t i = 0; i < sentences.size(); ++i) context += (i ? " " : "") + sentences[i];
  context = replace_all(context, ". \n", ".\n");
  const std::string& first = c.chains[0][0];
  const std::string value = first.substr(first.rfind('=') + 2);
  return {format_template(prompt_template(Script::variable_tracking),
                          {{"context", context}, {"query", value}, {"num_v", std::to_string(num_hops + 1)}}),
          c.vars[0]};
}

// randomize_icl: the example's variable names are replaced by fresh random names of the same length.
std::string randomize_icl(std::string example, Rng& rng) {
  const auto& prefix = script_template(Script::variable_tracking).answer_prefix;
  const auto cut = example.find(prefix.substr(prefix.size() - 10));
  std::vector<std::string> names;
  std::string tail = example.substr(cut + 10), name;
  for (const char c : tail + " ") {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!name.empty()) names.push_back(name);
      name.clear();
    } else {
      name += c;
    }
  }
  for (const auto& n : names) example = replace_all(example, n, random_letters(rng, static_cast<int>(n.size()), 'A'));
  return example;
}

}  // namespace

std::vector<Generated> variable_tracking_samples(const Options& o, const Tokenizer& tokenizer) {
  const int reserve = script_template(Script::variable_tracking).tokens_to_generate;
  // The example: sys_vartrack_w_noise_random(max_seq_length=500, incremental=5) with 3-letter names. Where
  // five noise sentences already exceed 500 tokens (byte-level tokenizers) five are used: the original would
  // loop forever there.
  Rng icl_rng(sample_seed(o.seed, 0, 0x69636c));
  auto icl_fits = [&](int noises) {
    Rng rng(sample_seed(o.seed, 0, 0x69636c));
    return token_count(tokenizer, vt_sample(noises * 5, rng, true).text) + reserve <= 500;
  };
  const int icl_noises = 5 * std::max(1, largest_fitting(1, 100, icl_fits));
  const auto example = vt_sample(icl_noises, icl_rng, true);
  std::string icl = example.text + " ";
  for (std::size_t i = 0; i < example.outputs.size(); ++i) icl += (i ? " " : "") + example.outputs[i];
  icl += "\n\n";
  return fit_samples(o, tokenizer, reserve, [&](int noises, Rng& rng) {
    auto g = vt_sample(noises, rng, false);
    g.text = randomize_icl(icl, rng) + "\n\n" + g.text;
    return g;
  });
}

}  // namespace ctxbench::tasks::text::ruler
