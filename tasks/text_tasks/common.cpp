#include "tasks/text_tasks/common.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <sstream>

#include "core/random.h"
#include "core/source_tree.h"

namespace ctxbench::tasks::text {

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open the file", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int token_count(const Tokenizer& tokenizer, std::string_view text) {
  return static_cast<int>(tokenizer.encode(text).size());
}

std::string middle_truncate(const Tokenizer& tokenizer, const std::string& text, int max_tokens) {
  const auto tokens = tokenizer.encode(text);
  if (static_cast<int>(tokens.size()) <= max_tokens) return text;
  const int head = max_tokens / 2, tail = max_tokens - head;
  return tokenizer.decode({tokens.begin(), tokens.begin() + head}) +
         tokenizer.decode({tokens.end() - tail, tokens.end()});
}

std::string format_template(std::string_view pattern, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(pattern.size());
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if ((c == '{' || c == '}') && i + 1 < pattern.size() && pattern[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      const std::size_t close = pattern.find('}', i);
      if (close == std::string_view::npos) throw std::invalid_argument("template: unmatched '{'");
      const std::string name(pattern.substr(i + 1, close - i - 1));
      const auto it = values.find(name);
      if (it == values.end()) throw std::invalid_argument(fmt::format("template: no value for {{{}}}", name));
      out += it->second;
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

int largest_fitting(int lo, int hi, const std::function<bool(int)>& fits) {
  int best = lo - 1;
  while (lo <= hi) {
    const int mid = lo + (hi - lo) / 2;
    if (fits(mid)) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

std::vector<std::size_t> choose_records(std::size_t available, int wanted, std::uint64_t seed) {
  std::vector<std::size_t> all(available);
  std::iota(all.begin(), all.end(), std::size_t{0});
  if (wanted <= 0 || static_cast<std::size_t>(wanted) >= available) return all;
  Rng rng(seed ^ 0x6c6f61646572ull);
  for (std::size_t i = 0; i < static_cast<std::size_t>(wanted); ++i) {  // partial Fisher-Yates
    std::swap(all[i], all[i + static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(available - i - 1)))]);
  }
  all.resize(static_cast<std::size_t>(wanted));
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("{}: cannot open the file", path.string()));
  std::vector<JsonlRecord> records;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (std::all_of(line.begin(), line.end(), [](unsigned char c) { return std::isspace(c); })) continue;
    try {
      records.push_back({Json::parse(line), number});
    } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
      throw InputError(fmt::format("{}:{}: not a JSON value ({})", path.string(), number, e.what()));
    }
  }
  return records;
}

std::vector<TextSample> samples_from_jsonl(
    const std::string& file, int samples, std::uint64_t seed,
    const std::function<TextSample(const Json& record, const std::string& where)>& make) {
  const auto path = from_source_tree(file);
  const auto records = read_jsonl(path);
  std::vector<TextSample> out;
  for (const std::size_t i : choose_records(records.size(), samples, seed)) {
    out.push_back(make(records[i].value, fmt::format("{}:{}", path.string(), records[i].line)));
  }
  if (out.empty()) throw InputError(fmt::format("{}: no records", path.string()));
  return out;
}

std::vector<JsonlRecord> read_json_records(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '[') return read_jsonl(path);
  Json array;
  try {
    array = Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(fmt::format("{}: not a JSON array ({})", path.string(), e.what()));
  }
  std::vector<JsonlRecord> records;
  for (std::size_t i = 0; i < array.size(); ++i) records.push_back({std::move(array[i]), static_cast<int>(i)});
  return records;
}

const Json& field(const Json& record, const std::string& name, const std::string& where) {
  if (!record.is_object()) throw InputError(fmt::format("{}: expected a JSON object", where));
  const auto it = record.find(name);
  if (it == record.end()) throw InputError(fmt::format("{}: missing field \"{}\"", where, name));
  return *it;
}

std::string string_field(const Json& record, const std::string& name, const std::string& where) {
  const Json& value = field(record, name, where);
  if (!value.is_string()) throw InputError(fmt::format("{}: field \"{}\" must be a string", where, name));
  return value.get<std::string>();
}

std::vector<std::string> answers_field(const Json& record, const std::string& name, const std::string& where) {
  const Json& value = field(record, name, where);
  if (value.is_string()) return {value.get<std::string>()};
  if (!value.is_array() || value.empty() ||
      !std::all_of(value.begin(), value.end(), [](const Json& v) { return v.is_string(); })) {
    throw InputError(fmt::format("{}: field \"{}\" must be a non-empty list of strings", where, name));
  }
  return value.get<std::vector<std::string>>();
}

std::uint64_t sample_seed(std::uint64_t cell_seed, std::size_t index, std::uint64_t salt) {
  return (cell_seed * 0x9e3779b97f4a7c15ull) ^ (static_cast<std::uint64_t>(index) * 0xbf58476d1ce4e5b9ull) ^ salt;
}

int prompt_budget(int context_length, int max_new_tokens) { return context_length - max_new_tokens - 1; }

std::string random_uuid4(Rng& rng) {
  std::uint64_t hi = rng.next(), lo = rng.next();
  hi = (hi & ~0xF000ull) | 0x4000ull;                  // version 4
  lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);  // RFC 4122 variant
  const std::string hex = fmt::format("{:016x}{:016x}", hi, lo);
  return fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4), hex.substr(16, 4),
                     hex.substr(20));
}

}  // namespace ctxbench::tasks::text
