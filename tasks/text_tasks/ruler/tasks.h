// RULER's 13 synthetic tasks (synthetic.yaml): the generator script (scripts/data/synthetic/*.py) that makes
// each and the arguments it passes. The one list of the task names: the ruler task's choices, the generator's
// dispatch and the scorer's metric all read it. Standard library only, so that the scorers can use it too.
#pragma once

#include <array>
#include <string_view>

namespace ctxbench::tasks::text::ruler {

// The scripts, named as constants.py's TASKS names them (the "base tasks").
enum class Script { niah, variable_tracking, common_words_extraction, freq_words_extraction, qa };

constexpr std::string_view script_name(Script script) {
  switch (script) {
    case Script::niah: return "niah";
    case Script::variable_tracking: return "variable_tracking";
    case Script::common_words_extraction: return "common_words_extraction";
    case Script::freq_words_extraction: return "freq_words_extraction";
    case Script::qa: return "qa";
  }
  return "";
}

// niah.py's arguments: the haystack, the kinds of keys and values, and how many keys, values per key and
// queried keys.
enum class Haystack { noise, essay, needle };
enum class Kind { words, numbers, uuids };
struct NiahArgs {
  Haystack haystack = Haystack::noise;
  Kind key = Kind::words, value = Kind::numbers;
  int num_k = 1, num_v = 1, num_q = 1;
};

// qa.py's dataset: SQuAD (qa_1) or HotpotQA (qa_2).
enum class QaDataset { squad, hotpotqa };

struct SyntheticTask {
  std::string_view name;
  Script script;
  NiahArgs niah = {};               // niah only
  QaDataset qa = QaDataset::squad;  // qa only
};

inline constexpr std::array<SyntheticTask, 13> kSyntheticTasks = {{
    {"niah_single_1", Script::niah, {Haystack::noise, Kind::words, Kind::numbers, 1, 1, 1}},
    {"niah_single_2", Script::niah, {Haystack::essay, Kind::words, Kind::numbers, 1, 1, 1}},
    {"niah_single_3", Script::niah, {Haystack::essay, Kind::words, Kind::uuids, 1, 1, 1}},
    {"niah_multikey_1", Script::niah, {Haystack::essay, Kind::words, Kind::numbers, 4, 1, 1}},
    {"niah_multikey_2", Script::niah, {Haystack::needle, Kind::words, Kind::numbers, 1, 1, 1}},
    {"niah_multikey_3", Script::niah, {Haystack::needle, Kind::uuids, Kind::uuids, 1, 1, 1}},
    {"niah_multivalue", Script::niah, {Haystack::essay, Kind::words, Kind::numbers, 1, 4, 1}},
    {"niah_multiquery", Script::niah, {Haystack::essay, Kind::words, Kind::numbers, 1, 1, 4}},
    {"vt", Script::variable_tracking},
    {"cwe", Script::common_words_extraction},
    {"fwe", Script::freq_words_extraction},
    {"qa_1", Script::qa, {}, QaDataset::squad},
    {"qa_2", Script::qa, {}, QaDataset::hotpotqa},
}};

}  // namespace ctxbench::tasks::text::ruler
