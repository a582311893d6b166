#include "tasks/scoring/python_text.h"

#include <algorithm>
#include <array>

#include "model/unicode.h"
#include "tasks/scoring/python_text_tables.h"

namespace ctxbench::scoring::py {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;  // surrogateescape: byte b -> U+DC00+b (b >= 0x80)
constexpr char32_t kCapitalSigma = 0x3A3, kSmallSigma = 0x3C3, kFinalSigma = 0x3C2;

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// Length of the valid UTF-8 sequence starting at text[i] (Python's strict decoder), or 0 if it is invalid.
size_t valid_sequence_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < second_min || byte(i + 1) > second_max) return 0;
  for (size_t k = 2; k < length; ++k)
    if (!is_continuation(byte(i + k))) return 0;
  return length;
}

// Decodes the code point at text[i]; `length` receives the bytes consumed (1 for an escaped invalid byte).
char32_t decode_at(std::string_view text, size_t i, size_t& length) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  length = valid_sequence_length(text, i);
  switch (length) {
    case 0: length = 1; return kEscapeBase + byte(i);
    case 1: return byte(i);
    case 2: return ((byte(i) & 0x1Fu) << 6) | (byte(i + 1) & 0x3Fu);
    case 3: return ((byte(i) & 0x0Fu) << 12) | ((byte(i + 1) & 0x3Fu) << 6) | (byte(i + 2) & 0x3Fu);
    default:
      return ((byte(i) & 0x07u) << 18) | ((byte(i + 1) & 0x3Fu) << 12) | ((byte(i + 2) & 0x3Fu) << 6) |
             (byte(i + 3) & 0x3Fu);
  }
}

// Python's lower() of one code point other than U+03A3 (SpecialCasing's unconditional mapping, else the simple one).
void append_lower(std::u32string& out, char32_t c) {
  const auto full = std::lower_bound(tables::full_lower.begin(), tables::full_lower.end(), c,
                                     [](const tables::FullLower& row, char32_t value) { return row.from < value; });
  if (full != tables::full_lower.end() && full->from == c) {
    for (char32_t to : full->to)
      if (to != 0) out.push_back(to);
    return;
  }
  const auto simple = std::lower_bound(tables::simple_lower.begin(), tables::simple_lower.end(), c,
                                       [](const tables::SimpleLower& row, char32_t value) { return row.from < value; });
  out.push_back(simple != tables::simple_lower.end() && simple->from == c ? simple->to : c);
}

// CPython's Final_Sigma context for the capital sigma at text[at]: a cased letter before it and none after it,
// skipping case-ignorable code points on both sides.
bool is_final_sigma(std::u32string_view text, size_t at) {
  const auto ignorable = [](char32_t c) { return model::in_ranges(tables::case_ignorable, c); };
  size_t before = at;
  while (before > 0 && ignorable(text[before - 1])) --before;
  if (before == 0 || !model::in_ranges(tables::cased, text[before - 1])) return false;
  size_t after = at + 1;
  while (after < text.size() && ignorable(text[after])) ++after;
  return after == text.size() || !model::in_ranges(tables::cased, text[after]);
}

template <typename Visit>
void for_each_code_point(std::string_view text, Visit visit) {
  for (size_t i = 0; i < text.size();) {
    size_t length = 0;
    const char32_t c = decode_at(text, i, length);
    visit(c, i, length);
    i += length;
  }
}

}  // namespace

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for_each_code_point(text, [&](char32_t c, size_t, size_t) { out.push_back(c); });
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) model::append_utf8(out, c);
  return out;
}

bool is_space(char32_t c) { return model::in_ranges(tables::space, c); }

int decimal_value(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9' ? static_cast<int>(c - '0') : -1;
  const auto next_zero = std::upper_bound(tables::decimal_zeros.begin(), tables::decimal_zeros.end(), c);
  if (next_zero == tables::decimal_zeros.begin()) return -1;
  const char32_t zero = *(next_zero - 1);
  return c - zero < 10 ? static_cast<int>(c - zero) : -1;
}

bool is_word_char(char32_t c) { return model::in_ranges(tables::word, c); }

std::u32string lower(std::u32string_view text) {
  std::u32string lowered;
  lowered.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == kCapitalSigma)
      lowered.push_back(is_final_sigma(text, i) ? kFinalSigma : kSmallSigma);
    else
      append_lower(lowered, text[i]);
  }
  return lowered;
}

std::string lower(std::string_view text) {
  const bool ascii = std::all_of(text.begin(), text.end(), [](char ch) { return (ch & 0x80) == 0; });
  if (!ascii) return encode_utf8(lower(decode_utf8(text)));
  std::string out(text);
  for (char& ch : out)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + ('a' - 'A'));
  return out;
}

std::vector<std::string> split_whitespace(std::string_view text) {
  std::vector<std::string> words;
  size_t word_start = std::string_view::npos;
  for_each_code_point(text, [&](char32_t c, size_t i, size_t) {
    if (is_space(c)) {
      if (word_start != std::string_view::npos) words.emplace_back(text.substr(word_start, i - word_start));
      word_start = std::string_view::npos;
    } else if (word_start == std::string_view::npos) {
      word_start = i;
    }
  });
  if (word_start != std::string_view::npos) words.emplace_back(text.substr(word_start));
  return words;
}

std::vector<std::string> split(std::string_view text, std::string_view separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t found = text.find(separator); found != std::string_view::npos; found = text.find(separator, start)) {
    parts.emplace_back(text.substr(start, found - start));
    start = found + separator.size();
  }
  parts.emplace_back(text.substr(start));
  return parts;
}

std::string strip_whitespace(std::string_view text) {
  size_t begin = std::string_view::npos, end = 0;
  for_each_code_point(text, [&](char32_t c, size_t i, size_t length) {
    if (is_space(c)) return;
    if (begin == std::string_view::npos) begin = i;
    end = i + length;
  });
  return begin == std::string_view::npos ? std::string() : std::string(text.substr(begin, end - begin));
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k > 0) out += separator;
    out += parts[k];
  }
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::vector<std::string> find_decimal_runs(std::string_view text) {
  std::vector<std::string> runs;
  size_t run_start = std::string_view::npos;
  for_each_code_point(text, [&](char32_t c, size_t i, size_t) {
    if (decimal_value(c) >= 0) {
      if (run_start == std::string_view::npos) run_start = i;
    } else if (run_start != std::string_view::npos) {
      runs.emplace_back(text.substr(run_start, i - run_start));
      run_start = std::string_view::npos;
    }
  });
  if (run_start != std::string_view::npos) runs.emplace_back(text.substr(run_start));
  return runs;
}

std::string ascii_digits(std::string_view decimal_run) {
  std::string digits;
  for_each_code_point(decimal_run, [&](char32_t c, size_t, size_t) {
    const int value = decimal_value(c);
    if (value >= 0) digits.push_back(static_cast<char>('0' + value));
  });
  return digits;
}

}  // namespace ctxbench::scoring::py
