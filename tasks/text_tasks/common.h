// Helpers shared by the text tasks: data paths, token counting and middle truncation in the model's tokens,
// Python-style template formatting, the search for the largest filler that fits a token budget, JSONL
// loading whose errors name the file and line, seeds and UUIDs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/param_fields.h"
#include "core/params.h"
#include "core/random.h"
#include "core/source_tree.h"
#include "core/text.h"
#include "model/backend.h"

namespace ctxbench::tasks::text {

// A data path as given in a suite: absolute, or relative to the source tree (where datasets/ lives).
std::string read_text_file(const std::filesystem::path& path);

int token_count(const Tokenizer& tokenizer, std::string_view text);

// LongBench/InfiniteBench middle truncation: when the text has more than `max_tokens` tokens, keep the first
// max_tokens/2 and the last max_tokens - max_tokens/2, each decoded on its own.
std::string middle_truncate(const Tokenizer& tokenizer, const std::string& text, int max_tokens);

// Python's str.format for templates with named fields only: "{name}" is replaced, "{{" and "}}" are literal
// braces. Throws std::invalid_argument for a field without a value (Python: KeyError).
std::string format_template(std::string_view pattern, const std::map<std::string, std::string>& values);

// Every occurrence of `from` replaced by `to` (Python's str.replace).
std::string replace_all(std::string text, std::string_view from, std::string_view to);

// The largest n in [lo, hi] for which fits(n) holds, by bisection (fits is assumed monotone: true up to some
// n, false after). Returns lo - 1 when even fits(lo) is false.
int largest_fitting(int lo, int hi, const std::function<bool(int)>& fits);

// Tokens a generated prompt may have so that it, the BOS a model may put first and `max_new_tokens` fit a cell of
// `context_length` tokens.
int prompt_budget(int context_length, int max_new_tokens);

// The samples a cell draws from `available` records: all of them in order when `wanted` <= 0 or covers them,
// else a seeded subset of `wanted`, in file order.
std::vector<std::size_t> choose_records(std::size_t available, int wanted, std::uint64_t seed);

// One JSON value per non-blank line; `line` is 1-based. Throws InputError "FILE:LINE: ..." for a line that is
// not JSON and for a missing file.
struct JsonlRecord {
  Json value;
  int line = 0;
};
std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path);

// One sample per record that a cell draws from a jsonl file (choose_records), made by `make` from the record
// and its place "FILE:LINE". Throws InputError for a file without records.
std::vector<TextSample> samples_from_jsonl(
    const std::string& file, int samples, std::uint64_t seed,
    const std::function<TextSample(const Json& record, const std::string& where)>& make);

// A JSON array file or a JSONL file (one object per line), as LongBench v2 and RULER's QA sources come.
std::vector<JsonlRecord> read_json_records(const std::filesystem::path& path);

// Field access with errors that name the place ("FILE:LINE") and what was expected.
const Json& field(const Json& record, const std::string& name, const std::string& where);
std::string string_field(const Json& record, const std::string& name, const std::string& where);
// A non-empty list of strings (a single string is taken as a list of one).
std::vector<std::string> answers_field(const Json& record, const std::string& name, const std::string& where);

// What every text task has: how many samples a cell draws (the task's own default) and the model that answers.
// A text task's parameter struct derives from TextTaskParams<its default>; its fields() starts with
// samples_field and ends with model::with_model_fields, the order of every text task's schema.
template <int kDefaultSamples>
struct TextTaskParams : model::ModelChoice {
  int samples = kDefaultSamples;
};

template <class S>
ParamFields<S> samples_field() {
  return ParamFields<S>().template field<int>(&S::samples, "samples", "samples per cell", {.min = 1});
}

// A seed for sample `index` of a cell, so that each sample is the same whatever the sample count.
std::uint64_t sample_seed(std::uint64_t cell_seed, std::size_t index, std::uint64_t salt);

// A random version-4 UUID, as Python's str(uuid.uuid4()) prints it (RULER's and InfiniteBench's keys).
std::string random_uuid4(Rng& rng);

}  // namespace ctxbench::tasks::text
