// niah.py: needles "One of the special magic {type_needle_v} for {key} is: {value}." in a noise, essay or
// needle haystack, as synthetic.yaml's NiahArgs say; the question asks for the values of num_q of the keys.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/ruler/scripts.h"

namespace ctxbench::tasks::text::ruler {
namespace {

// niah.py: words = sorted(set(f"{adj}-{noun}")).
std::vector<std::string> key_words(const std::string& dir) {
  std::set<std::string> pairs;
  for (const auto& adj : read_words(dir, "adjectives.txt")) {
    for (const auto& noun : read_words(dir, "nouns.txt")) pairs.insert(adj + "-" + noun);
  }
  return {pairs.begin(), pairs.end()};
}

std::string random_value(Rng& rng, Kind kind, const std::vector<std::string>& words) {
  switch (kind) {
    case Kind::numbers: return std::to_string(rng.integer(1000000, 9999999));
    case Kind::words: return words[below(rng, words.size())];
    case Kind::uuids: return random_uuid4(rng);
  }
  return "";
}

std::string type_name(Kind kind) { return kind == Kind::numbers ? "numbers" : kind == Kind::words ? "words" : "uuids"; }

constexpr const char* kNeedle = "One of the special magic {type_needle_v} for {key} is: {value}.";

Generated niah_sample(const Options& o, const NiahArgs& a, const std::vector<std::string>& words, int size, Rng& rng) {
  const int num_k = std::max(a.num_k, a.num_q);
  const std::string type_v = type_name(a.value);
  std::vector<std::string> keys, needles;
  std::vector<std::vector<std::string>> values;
  for (int k = 0; k < num_k; ++k) {
    keys.push_back(random_value(rng, a.key, words));
    values.emplace_back();
    for (int v = 0; v < a.num_v; ++v) {
      values.back().push_back(random_value(rng, a.value, words));
      needles.push_back(
          format_template(kNeedle, {{"type_needle_v", type_v}, {"key", keys.back()}, {"value", values.back().back()}}));
    }
  }
  shuffle(rng, needles);

  std::string context;
  if (a.haystack == Haystack::essay) {
    const auto sentences = essay_sentences(o.haystack_dir, static_cast<std::size_t>(size));
    // DEPTHS = np.round(np.linspace(0, 100, num=40)).astype(int)
    std::vector<int> depths;
    for (int i = 0; i < 40; ++i) depths.push_back(static_cast<int>(std::nearbyint(100.0 * i / 39.0)));
    std::vector<std::size_t> positions = {0};
    for (const std::size_t d : sample_indices(rng, depths.size(), needles.size())) {
      positions.push_back(static_cast<std::size_t>(static_cast<double>(sentences.size()) * (depths[d] / 100.0)));
    }
    std::sort(positions.begin() + 1, positions.end());
    positions.push_back(sentences.size());
    std::vector<std::string> parts;
    for (std::size_t i = 1; i < positions.size(); ++i) {
      std::string segment;
      for (std::size_t s = positions[i - 1]; s < positions[i]; ++s)
        segment += (s > positions[i - 1] ? " " : "") + sentences[s];
      parts.push_back(segment);
      if (i - 1 < needles.size()) parts.push_back(needles[i - 1]);
    }
    for (std::size_t i = 0; i < parts.size(); ++i) context += (i ? " " : "") + parts[i];
  } else {
    std::vector<std::string> sentences;
    for (int i = 0; i < size; ++i) {
      sentences.push_back(a.haystack == Haystack::noise
                              ? std::string(kNoise)
                              : format_template(kNeedle, {{"type_needle_v", type_v},
                                                          {"key", random_value(rng, a.key, words)},
                                                          {"value", random_value(rng, a.value, words)}}));
    }
    auto indexes = sample_indices(rng, sentences.size(), needles.size());
    std::sort(indexes.rbegin(), indexes.rend());
    for (std::size_t i = 0; i < indexes.size(); ++i) {
      sentences.insert(sentences.begin() + static_cast<std::ptrdiff_t>(indexes[i]), needles[i]);
    }
    for (std::size_t i = 0; i < sentences.size(); ++i) context += (i ? "\n" : "") + sentences[i];
  }

  Generated out;
  std::vector<std::string> queries;
  for (const std::size_t k : sample_indices(rng, keys.size(), static_cast<std::size_t>(a.num_q))) {
    queries.push_back(keys[k]);
    out.outputs.insert(out.outputs.end(), values[k].begin(), values[k].end());
  }
  std::string query = queries.back();
  if (queries.size() > 1) {
    query.clear();
    for (std::size_t i = 0; i + 1 < queries.size(); ++i) query += (i ? ", " : "") + queries[i];
    query += ", and " + queries.back();
  }
  std::string pattern = prompt_template(Script::niah);
  std::string type_shown = type_v;
  if (a.num_q * a.num_v == 1) {
    pattern = replace_all(pattern, "Some", "A");
    pattern = replace_all(pattern, "are all", "is");
    pattern = replace_all(pattern, "are", "is");
    pattern = replace_all(pattern, "answers", "answer");
    type_shown.pop_back();
  }
  out.text = format_template(pattern, {{"type_needle_v", type_shown}, {"context", context}, {"query", query}});
  return out;
}

}  // namespace

std::vector<Generated> niah_samples(const Options& o, const NiahArgs& args, const Tokenizer& tokenizer) {
  const auto words = key_words(o.words_dir);
  return fit_samples(o, tokenizer, script_template(Script::niah).tokens_to_generate,
                     [&](int size, Rng& rng) { return niah_sample(o, args, words, size, rng); });
}

}  // namespace ctxbench::tasks::text::ruler
