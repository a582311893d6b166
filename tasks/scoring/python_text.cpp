#include "tasks/scoring/python_text.h"

#include <algorithm>
#include <array>

#include "model/unicode.h"

namespace ctxbench::scoring::py {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;  // surrogateescape: byte b -> U+DC00+b (b >= 0x80)

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

// First code point of every run of ten Unicode Nd digits (all Nd digits come in such runs), Unicode 14.0.
constexpr std::array<char32_t, 66> kDecimalZeros = {
    0x30,    0x660,   0x6f0,   0x7c0,   0x966,   0x9e6,   0xa66,   0xae6,   0xb66,   0xbe6,   0xc66,
    0xce6,   0xd66,   0xde6,   0xe50,   0xed0,   0xf20,   0x1040,  0x1090,  0x17e0,  0x1810,  0x1946,
    0x19d0,  0x1a80,  0x1a90,  0x1b50,  0x1bb0,  0x1c40,  0x1c50,  0xa620,  0xa8d0,  0xa900,  0xa9d0,
    0xa9f0,  0xaa50,  0xabf0,  0xff10,  0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0,
    0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60,
    0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0};

bool in_range(char32_t c, char32_t first, char32_t last) { return c >= first && c <= last; }

bool is_latin1_word_char(char32_t c) {
  switch (c) {
    case 0xAA:
    case 0xB2:
    case 0xB3:
    case 0xB5:
    case 0xB9:
    case 0xBA:
    case 0xBC:
    case 0xBD:
    case 0xBE: return true;
    default: return c >= 0xC0 && c != 0xD7 && c != 0xF7;
  }
}

bool is_cjk_symbol_word_char(char32_t c) {
  return in_range(c, 0x3005, 0x3007) || in_range(c, 0x3021, 0x3029) || in_range(c, 0x3031, 0x3035) ||
         in_range(c, 0x3038, 0x303C);
}

bool is_fullwidth_punctuation(char32_t c) {
  return in_range(c, 0xFF00, 0xFF0F) || in_range(c, 0xFF1A, 0xFF20) || in_range(c, 0xFF3B, 0xFF40) ||
         in_range(c, 0xFF5B, 0xFF65);
}

// Appends Python's lower() of c (one code point, except U+0130 which lowers to two).
void append_lower(std::u32string& out, char32_t c) {
  const bool even = c % 2 == 0;
  char32_t lowered = c;
  if (in_range(c, 'A', 'Z') || (in_range(c, 0xC0, 0xDE) && c != 0xD7)) {
    lowered = c + 0x20;
  } else if (c == 0x130) {
    out += U"i\u0307";
    return;
  } else if ((in_range(c, 0x100, 0x12F) || in_range(c, 0x132, 0x137) || in_range(c, 0x14A, 0x177)) && even) {
    lowered = c + 1;
  } else if ((in_range(c, 0x139, 0x148) || in_range(c, 0x179, 0x17E)) && !even) {
    lowered = c + 1;
  } else if (c == 0x178) {
    lowered = 0xFF;
  } else if (c == 0x386) {
    lowered = 0x3AC;
  } else if (in_range(c, 0x388, 0x38A)) {
    lowered = c + 37;
  } else if (c == 0x38C) {
    lowered = 0x3CC;
  } else if (in_range(c, 0x38E, 0x38F)) {
    lowered = c + 63;
  } else if (in_range(c, 0x391, 0x3AB) && c != 0x3A2) {
    lowered = c + 0x20;
  } else if (in_range(c, 0x400, 0x40F)) {
    lowered = c + 0x50;
  } else if (in_range(c, 0x410, 0x42F)) {
    lowered = c + 0x20;
  }
  out.push_back(lowered);
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

bool is_space(char32_t c) {
  return in_range(c, 0x09, 0x0D) || in_range(c, 0x1C, 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         in_range(c, 0x2000, 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int decimal_value(char32_t c) {
  if (c < 0x80) return in_range(c, '0', '9') ? static_cast<int>(c - '0') : -1;
  const auto next_zero = std::upper_bound(kDecimalZeros.begin(), kDecimalZeros.end(), c);
  if (next_zero == kDecimalZeros.begin()) return -1;
  const char32_t zero = *(next_zero - 1);
  return c - zero < 10 ? static_cast<int>(c - zero) : -1;
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return c == '_' || in_range(c, '0', '9') || in_range(c, 'a', 'z') || in_range(c, 'A', 'Z');
  if (c <= 0xFF) return is_latin1_word_char(c);
  if (is_space(c) || in_range(c, 0x2000, 0x206F) || is_fullwidth_punctuation(c)) return false;
  if (in_range(c, 0x3000, 0x303F)) return is_cjk_symbol_word_char(c);
  return true;
}

std::string lower(std::string_view text) {
  const bool ascii = std::all_of(text.begin(), text.end(), [](char ch) { return (ch & 0x80) == 0; });
  if (ascii) {
    std::string out(text);
    for (char& ch : out)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + ('a' - 'A'));
    return out;
  }
  std::u32string lowered;
  lowered.reserve(text.size());
  for_each_code_point(text, [&](char32_t c, size_t, size_t) { append_lower(lowered, c); });
  return encode_utf8(lowered);
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
