#include "tasks/text_tasks/ruler_synthetic.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <set>

#include "core/params.h"
#include "core/random.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/haystack.h"

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

enum class Haystack { noise, essay, needle };
enum class Kind { words, numbers, uuids };

struct NiahArgs {
  Haystack haystack;
  Kind key, value;
  int num_k, num_v, num_q;
};

// synthetic.yaml
const std::map<std::string, NiahArgs, std::less<>> kNiahTasks = {
    {"niah_single_1", {Haystack::noise, Kind::words, Kind::numbers, 1, 1, 1}},
    {"niah_single_2", {Haystack::essay, Kind::words, Kind::numbers, 1, 1, 1}},
    {"niah_single_3", {Haystack::essay, Kind::words, Kind::uuids, 1, 1, 1}},
    {"niah_multikey_1", {Haystack::essay, Kind::words, Kind::numbers, 4, 1, 1}},
    {"niah_multikey_2", {Haystack::needle, Kind::words, Kind::numbers, 1, 1, 1}},
    {"niah_multikey_3", {Haystack::needle, Kind::uuids, Kind::uuids, 1, 1, 1}},
    {"niah_multivalue", {Haystack::essay, Kind::words, Kind::numbers, 1, 4, 1}},
    {"niah_multiquery", {Haystack::essay, Kind::words, Kind::numbers, 1, 1, 4}},
};

constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

// ---- random helpers (Python's random module equivalents on our generator)

std::size_t below(Rng& rng, std::size_t n) {
  return static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(n) - 1));
}

// random.sample(range(n), k): k distinct values in random order.
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

template <typename T>
void shuffle(Rng& rng, std::vector<T>& v) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(rng, i)]);
}

std::string random_letters(Rng& rng, int count, char first) {
  std::string s;
  for (int i = 0; i < count; ++i) s += static_cast<char>(first + below(rng, 26));
  return s;
}

// ---- data

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

// niah.py: words = sorted(set(f"{adj}-{noun}")).
std::vector<std::string> key_words(const std::string& dir) {
  std::set<std::string> pairs;
  for (const auto& adj : read_words(dir, "adjectives.txt")) {
    for (const auto& noun : read_words(dir, "nouns.txt")) pairs.insert(adj + "-" + noun);
  }
  return {pairs.begin(), pairs.end()};
}

std::string random_uuid4(Rng& rng) {
  std::uint64_t hi = rng.next(), lo = rng.next();
  hi = (hi & ~0xF000ull) | 0x4000ull;                  // version 4
  lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);  // RFC 4122 variant
  const std::string hex = fmt::format("{:016x}{:016x}", hi, lo);
  return fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4), hex.substr(16, 4),
                     hex.substr(20));
}

// The essay haystack: re.sub(r"\s+", " ", text).split(" "), repeated when more words are asked for.
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

// _get_essay_document_sents: the sentences of the first n words (an LRU of a few sizes, as the original's
// lru_cache, because the size search asks for the same sizes again).
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
std::vector<Generated> fit_samples(const Options& o, const Tokenizer& tokenizer, int reserve, const Maker& make) {
  auto fits_for = [&](std::uint64_t seed) {
    return [&, seed](int size) {
      Rng rng(seed);
      return token_count(tokenizer, make(size, rng).text) + reserve <= o.max_seq_length;
    };
  };
  const auto first_fits = fits_for(sample_seed(o.seed, 0, 0x72756c6572));
  if (!first_fits(1)) {
    Rng rng(sample_seed(o.seed, 0, 0x72756c6572));
    throw InputError(
        fmt::format("ruler {}: context length {} is too short: the smallest sample has {} tokens plus {} "
                    "to generate",
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

// ---- niah.py

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
  const auto& t = base_template("niah");
  std::string pattern = std::string(t.task_template) + std::string(t.answer_prefix);
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

// ---- variable_tracking.py (num_chains 1, num_hops 4, with its one in-context example)

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
  const auto& t = base_template("variable_tracking");
  return {format_template(std::string(t.task_template) + std::string(t.answer_prefix),
                          {{"context", context}, {"query", value}, {"num_v", std::to_string(num_hops + 1)}}),
          c.vars[0]};
}

// randomize_icl: the example's variable names are replaced by fresh random names of the same length.
std::string randomize_icl(std::string example, Rng& rng) {
  const auto& prefix = base_template("variable_tracking").answer_prefix;
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

std::vector<Generated> vt_samples(const Options& o, const Tokenizer& tokenizer) {
  const int reserve = base_template("variable_tracking").tokens_to_generate;
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

// ---- common_words_extraction.py (freq_cw 30, freq_ucw 3, num_cw 10, one example)

std::vector<std::string> sample_unique_words(Rng& rng, const std::vector<std::string>& base, std::size_t count) {
  std::size_t arity = 1, capacity = base.size();
  while (capacity < count) {
    ++arity;
    capacity *= base.size();
  }
  std::vector<std::string> out;
  for (const std::size_t index : sample_indices(rng, capacity, count)) {
    std::string word;
    std::size_t rest = index;
    for (std::size_t part = 0; part < arity; ++part) {
      word += (part ? "-" : "") + base[rest % base.size()];
      rest /= base.size();
    }
    out.push_back(word);
  }
  return out;
}

std::pair<std::string, std::vector<std::string>> cwe_example(Rng& rng, const std::vector<std::string>& base,
                                                             int num_words, int common_repeats, int uncommon_repeats) {
  const auto words = sample_unique_words(rng, base, static_cast<std::size_t>(num_words));
  const std::size_t common_count = std::min<std::size_t>(10, words.size());
  std::vector<std::string> common(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(common_count)), list;
  for (int r = 0; r < common_repeats; ++r) list.insert(list.end(), common.begin(), common.end());
  for (int r = 0; r < uncommon_repeats; ++r)
    list.insert(list.end(), words.begin() + static_cast<std::ptrdiff_t>(common_count), words.end());
  shuffle(rng, list);
  std::string context;
  for (std::size_t i = 0; i < list.size(); ++i) context += fmt::format("{}{}. {}", i ? " " : "", i + 1, list[i]);
  return {context, common};
}

std::vector<Generated> cwe_samples(const Options& o, const Tokenizer& tokenizer) {
  std::vector<std::string> base;
  for (const char* file : {"nouns.txt", "adjectives.txt", "verbs.txt"}) {
    for (auto& w : read_words(o.words_dir, file)) base.push_back(std::move(w));
  }
  // RULER adds a list of English words; ours are the haystack's lowercase words, so that contexts of 128K
  // tokens still use single words.
  for (const auto& w : essay_words(o.haystack_dir)) {
    if (w.size() >= 3 && w.size() <= 12 && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
      base.push_back(w);
  }
  std::sort(base.begin(), base.end());
  base.erase(std::unique(base.begin(), base.end()), base.end());
  Rng base_rng(o.seed);
  shuffle(base_rng, base);
  const bool short_context = o.max_seq_length < 4096;
  const auto& t = base_template("common_words_extraction");
  const std::string pattern = std::string(t.task_template) + std::string(t.answer_prefix);
  return fit_samples(o, tokenizer, t.tokens_to_generate, [&](int num_words, Rng& rng) {
    const auto [shot_context, shot_answer] =
        short_context ? cwe_example(rng, base, 20, 3, 1) : cwe_example(rng, base, 40, 10, 3);
    std::string shot = format_template(pattern, {{"context", shot_context}, {"query", ""}}) + " ";
    for (std::size_t i = 0; i < shot_answer.size(); ++i)
      shot += fmt::format("{}{}. {}", i ? " " : "", i + 1, shot_answer[i]);
    auto [context, answer] =
        short_context ? cwe_example(rng, base, num_words, 6, 1) : cwe_example(rng, base, num_words, 30, 3);
    return Generated{shot + "\n" + format_template(pattern, {{"context", context}, {"query", ""}}), answer};
  });
}

// ---- freq_words_extraction.py (alpha 2.0, coded words of 6 letters, vocabulary max_seq_length // 50)

std::vector<Generated> fwe_samples(const Options& o, const Tokenizer& tokenizer) {
  const auto& t = base_template("freq_words_extraction");
  const std::string pattern = std::string(t.task_template) + std::string(t.answer_prefix);
  const std::size_t vocab_size = std::max<std::size_t>(4, static_cast<std::size_t>(o.max_seq_length / 50));
  const double alpha = 2.0, zeta = riemann_zeta(alpha);
  return fit_samples(o, tokenizer, t.tokens_to_generate, [&](int num_words, Rng& rng) {
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

// ---- qa.py

struct QaData {
  struct Question {
    std::string query;
    std::vector<std::string> outputs;
    std::vector<std::size_t> docs, more_docs;
  };
  std::vector<Question> questions;
  std::vector<std::string> docs;
};

std::string json_where(const std::string& file, const std::string& path) { return fmt::format("{}: {}", file, path); }

const Json& require(const Json& j, const char* key, const std::string& file, const std::string& path) {
  if (!j.is_object() || !j.contains(key))
    throw InputError(json_where(file, path) + fmt::format(": missing \"{}\"", key));
  return j.at(key);
}

std::string require_string(const Json& j, const char* key, const std::string& file, const std::string& path) {
  const Json& v = require(j, key, file, path);
  if (!v.is_string()) throw InputError(json_where(file, path + "." + key) + ": expected a string");
  return v.get<std::string>();
}

const Json& require_array(const Json& j, const char* key, const std::string& file, const std::string& path) {
  const Json& v = require(j, key, file, path);
  if (!v.is_array()) throw InputError(json_where(file, path + "." + key) + ": expected a list");
  return v;
}

std::map<std::string, std::size_t> index_docs(std::vector<std::string>& docs) {
  std::sort(docs.begin(), docs.end());
  docs.erase(std::unique(docs.begin(), docs.end()), docs.end());
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < docs.size(); ++i) index[docs[i]] = i;
  return index;
}

// read_squad: SQuAD 1.1/2.0 ({"data": [{"paragraphs": [{"context", "qas": [...]}]}]}), answerable questions.
QaData read_squad(const Json& root, const std::string& file) {
  QaData d;
  const Json& data = require_array(root, "data", file, "$");
  for (std::size_t a = 0; a < data.size(); ++a) {
    const Json& paragraphs = require_array(data[a], "paragraphs", file, fmt::format("$.data[{}]", a));
    for (std::size_t p = 0; p < paragraphs.size(); ++p)
      d.docs.push_back(require_string(paragraphs[p], "context", file, fmt::format("$.data[{}].paragraphs[{}]", a, p)));
  }
  const auto index = index_docs(d.docs);
  for (std::size_t a = 0; a < data.size(); ++a) {
    const Json& paragraphs = data[a].at("paragraphs");
    std::vector<std::size_t> article;
    for (const auto& p : paragraphs) article.push_back(index.at(p.at("context").get<std::string>()));
    for (std::size_t p = 0; p < paragraphs.size(); ++p) {
      const std::string path = fmt::format("$.data[{}].paragraphs[{}]", a, p);
      const Json& qas = require_array(paragraphs[p], "qas", file, path);
      const std::size_t own = index.at(paragraphs[p].at("context").get<std::string>());
      for (std::size_t q = 0; q < qas.size(); ++q) {
        const std::string qpath = fmt::format("{}.qas[{}]", path, q);
        if (qas[q].value("is_impossible", false)) continue;
        QaData::Question question{require_string(qas[q], "question", file, qpath), {}, {own}, {}};
        const Json& answers = require_array(qas[q], "answers", file, qpath);
        for (std::size_t i = 0; i < answers.size(); ++i)
          question.outputs.push_back(require_string(answers[i], "text", file, fmt::format("{}.answers[{}]", qpath, i)));
        if (question.outputs.empty()) throw InputError(json_where(file, qpath + ".answers") + ": empty answer list");
        for (const std::size_t doc : article) {
          if (doc != own) question.more_docs.push_back(doc);
        }
        d.questions.push_back(std::move(question));
      }
    }
  }
  return d;
}

// read_hotpotqa: [{"question", "answer", "context": [[title, [sentences...]], ...]}]; a document is
// "title\n" + the sentences joined.
QaData read_hotpotqa(const Json& root, const std::string& file) {
  if (!root.is_array()) throw InputError(file + ": expected a JSON list of HotpotQA records");
  QaData d;
  std::vector<std::vector<std::string>> per_question;
  for (std::size_t i = 0; i < root.size(); ++i) {
    const std::string path = fmt::format("$[{}]", i);
    const Json& context = require_array(root[i], "context", file, path);
    per_question.emplace_back();
    for (std::size_t c = 0; c < context.size(); ++c) {
      const Json& entry = context[c];
      if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_array())
        throw InputError(json_where(file, fmt::format("{}.context[{}]", path, c)) + ": expected [title, [sentences]]");
      std::string doc = entry[0].get<std::string>() + "\n";
      for (const auto& s : entry[1]) {
        if (!s.is_string())
          throw InputError(json_where(file, fmt::format("{}.context[{}]", path, c)) + ": sentences must be strings");
        doc += s.get<std::string>();
      }
      per_question.back().push_back(doc);
      d.docs.push_back(doc);
    }
  }
  const auto index = index_docs(d.docs);
  for (std::size_t i = 0; i < root.size(); ++i) {
    const std::string path = fmt::format("$[{}]", i);
    QaData::Question q{
        require_string(root[i], "question", file, path), {require_string(root[i], "answer", file, path)}, {}, {}};
    for (const auto& doc : per_question[i]) q.docs.push_back(index.at(doc));
    d.questions.push_back(std::move(q));
  }
  return d;
}

const QaData& qa_data(const std::string& file, bool squad) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, bool>, QaData> cache;
  std::lock_guard lock(mutex);
  const auto key = std::make_pair(from_source_tree(file).string(), squad);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Json root;
  try {
    root = Json::parse(read_text_file(key.first));
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(fmt::format("{}: not JSON ({})", key.first, e.what()));
  }
  QaData data = squad ? read_squad(root, key.first) : read_hotpotqa(root, key.first);
  if (data.questions.empty()) throw InputError(key.first + ": no answerable question");
  return cache.emplace(key, std::move(data)).first->second;
}

Generated qa_sample(const QaData& data, std::size_t question, int num_docs, Rng& rng) {
  const auto& q = data.questions[question % data.questions.size()];
  std::vector<std::size_t> chosen;
  const auto n = static_cast<std::size_t>(num_docs);
  if (n < data.docs.size()) {
    if (n < q.docs.size()) {
      for (const std::size_t i : sample_indices(rng, q.docs.size(), n)) chosen.push_back(q.docs[i]);
    } else if (n - q.docs.size() < q.more_docs.size()) {
      chosen = q.docs;
      for (const std::size_t i : sample_indices(rng, q.more_docs.size(), n - q.docs.size()))
        chosen.push_back(q.more_docs[i]);
    } else {
      chosen = q.docs;
      chosen.insert(chosen.end(), q.more_docs.begin(), q.more_docs.end());
      const std::set<std::size_t> taken(chosen.begin(), chosen.end());
      std::vector<std::size_t> others;
      for (std::size_t i = 0; i < data.docs.size(); ++i) {
        if (!taken.contains(i)) others.push_back(i);
      }
      const std::size_t extra = n > chosen.size() ? n - chosen.size() : 0;
      for (const std::size_t i : sample_indices(rng, others.size(), std::min(extra, others.size())))
        chosen.push_back(others[i]);
    }
  } else {
    chosen.resize(data.docs.size());
    std::iota(chosen.begin(), chosen.end(), std::size_t{0});
  }
  shuffle(rng, chosen);
  std::string context;
  for (std::size_t i = 0; i < chosen.size(); ++i)
    context += fmt::format("{}Document {}:\n{}", i ? "\n\n" : "", i + 1, data.docs[chosen[i]]);
  const auto& t = base_template("qa");
  return {format_template(std::string(t.task_template) + std::string(t.answer_prefix),
                          {{"context", context}, {"query", q.query}}),
          q.outputs};
}

std::vector<Generated> qa_samples(const Options& o, const Tokenizer& tokenizer) {
  if (o.qa_file.empty()) {
    throw InputError(
        fmt::format("ruler {}: set the qa_file parameter to a local {} json file (RULER's qa tasks need "
                    "it; none is bundled)",
                    o.task, o.task == "qa_1" ? "SQuAD (v2.0 dev)" : "HotpotQA (distractor dev)"));
  }
  const QaData& data = qa_data(o.qa_file, o.task == "qa_1");
  const int reserve = base_template("qa").tokens_to_generate;
  // Question i of the file for sample i (qa.py uses index + pre_samples); the document count is searched with
  // the first question and shrunk per sample, capped at the number of documents.
  std::vector<Generated> out;
  auto fits = [&](std::size_t question, int docs) {
    Rng rng(sample_seed(o.seed, question, 0x7161));
    return token_count(tokenizer, qa_sample(data, question, docs, rng).text) + reserve <= o.max_seq_length;
  };
  const int all_docs = static_cast<int>(data.docs.size());
  const int size = largest_fitting(1, all_docs, [&](int docs) { return fits(0, docs); });
  for (int i = 0; i < o.samples; ++i) {
    const auto question = static_cast<std::size_t>(i);
    const int own = size >= 1 && fits(question, size)
                        ? size
                        : largest_fitting(1, std::max(1, size) - 1, [&](int docs) { return fits(question, docs); });
    if (own < 1)
      throw InputError(fmt::format("ruler {}: context length {} is too short for question {} and one document", o.task,
                                   o.max_seq_length, i));
    Rng rng(sample_seed(o.seed, question, 0x7161));
    out.push_back(qa_sample(data, question, own, rng));
  }
  return out;
}

}  // namespace

const Template& base_template(std::string_view base_task) {
  const auto it = kTemplates.find(base_task);
  if (it == kTemplates.end()) throw std::invalid_argument(fmt::format("no RULER template \"{}\"", base_task));
  return it->second;
}

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"niah_single_1",
                                                 "niah_single_2",
                                                 "niah_single_3",
                                                 "niah_multikey_1",
                                                 "niah_multikey_2",
                                                 "niah_multikey_3",
                                                 "niah_multivalue",
                                                 "niah_multiquery",
                                                 "vt",
                                                 "cwe",
                                                 "fwe",
                                                 "qa_1",
                                                 "qa_2"};
  return names;
}

std::string_view base_task_of(std::string_view task) {
  if (kNiahTasks.contains(task)) return "niah";
  if (task == "vt") return "variable_tracking";
  if (task == "cwe") return "common_words_extraction";
  if (task == "fwe") return "freq_words_extraction";
  if (task == "qa_1" || task == "qa_2") return "qa";
  throw InputError(fmt::format("ruler: unknown task \"{}\"", task));
}

bool uses_string_match_part(std::string_view task) { return base_task_of(task) == "qa"; }

std::vector<Sample> generate(const Options& o, const Tokenizer& tokenizer) {
  const std::string_view base = base_task_of(o.task);
  std::vector<Generated> generated;
  if (base == "niah") {
    const auto words = key_words(o.words_dir);
    const NiahArgs& args = kNiahTasks.find(o.task)->second;
    generated = fit_samples(o, tokenizer, base_template("niah").tokens_to_generate,
                            [&](int size, Rng& rng) { return niah_sample(o, args, words, size, rng); });
  } else if (base == "variable_tracking") {
    generated = vt_samples(o, tokenizer);
  } else if (base == "common_words_extraction") {
    generated = cwe_samples(o, tokenizer);
  } else if (base == "freq_words_extraction") {
    generated = fwe_samples(o, tokenizer);
  } else {
    generated = qa_samples(o, tokenizer);
  }
  // The answer prefix is split off the end as the current RULER scripts do (rfind of its first 10 characters).
  const auto& t = base_template(base);
  std::vector<Sample> out;
  for (auto& g : generated) {
    const auto cut = g.text.rfind(std::string(t.answer_prefix.substr(0, 10)));
    Sample s{g.text.substr(0, cut), g.text.substr(cut), std::move(g.outputs), 0};
    s.length = token_count(tokenizer, g.text) + t.tokens_to_generate;
    out.push_back(std::move(s));
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
