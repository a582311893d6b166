#include "model/unicode.h"

#include <algorithm>
#include <vector>

namespace ctxbench::model {

bool in_ranges(std::span<const CodeRange> ranges, char32_t c) {
  const auto it = std::upper_bound(ranges.begin(), ranges.end(), c,
                                   [](char32_t value, const CodeRange& range) { return value < range.first; });
  return it != ranges.begin() && c <= std::prev(it)->last;
}

namespace {

CodePoint invalid_byte(unsigned char byte) { return {0xDC00 + static_cast<char32_t>(byte), 1}; }

// Hangul syllables decompose and compose by arithmetic (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kSCount = kLCount * kVCount * kTCount;

int combining_class(char32_t c) {
  const auto& t = unicode_tables::combining_classes;
  const auto it = std::upper_bound(t.begin(), t.end(), c, [](char32_t v, const CodeValue& r) { return v < r.first; });
  return it != t.begin() && c <= std::prev(it)->last ? static_cast<int>(std::prev(it)->value) : 0;
}

void decompose(char32_t c, std::vector<char32_t>& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out.push_back(kLBase + s / (kVCount * kTCount));
    out.push_back(kVBase + (s % (kVCount * kTCount)) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const auto& t = unicode_tables::decompositions;
  const auto it = std::lower_bound(t.begin(), t.end(), c, [](const CodePair& p, char32_t v) { return p.a < v; });
  if (it == t.end() || it->a != c) {
    out.push_back(c);
    return;
  }
  decompose(it->b, out);
  if (it->c != 0) decompose(it->c, out);
}

// The primary composite of a and b, or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& t = unicode_tables::compositions;
  const auto it = std::lower_bound(t.begin(), t.end(), CodePair{a, b, 0}, [](const CodePair& x, const CodePair& y) {
    return x.a != y.a ? x.a < y.a : x.b < y.b;
  });
  return it != t.end() && it->a == a && it->b == b ? it->c : 0;
}

// Stable insertion sort of each run of non-starters by combining class.
void canonical_order(std::vector<char32_t>& cps) {
  for (std::size_t i = 1; i < cps.size(); ++i) {
    const int ccc = combining_class(cps[i]);
    if (ccc == 0) continue;
    for (std::size_t j = i; j > 0 && combining_class(cps[j - 1]) > ccc; --j) std::swap(cps[j - 1], cps[j]);
  }
}

// Canonical composition: each character joins the last starter unless a character between them blocks it
// (one with class 0, or with a class at least its own).
std::vector<char32_t> compose_all(const std::vector<char32_t>& cps) {
  std::vector<char32_t> out;
  std::size_t starter = 0;
  bool have_starter = false;
  int last_class = 0;
  for (const char32_t c : cps) {
    const int ccc = combining_class(c);
    const bool adjacent = have_starter && out.size() - 1 == starter;
    const bool blocked = !adjacent && (last_class == 0 || last_class >= ccc);
    if (have_starter && !blocked) {
      if (const char32_t composite = compose(out[starter], c); composite != 0) {
        out[starter] = composite;
        continue;
      }
    }
    if (ccc == 0) starter = out.size(), have_starter = true;
    last_class = ccc;
    out.push_back(c);
  }
  return out;
}

}  // namespace

CodePoint decode_utf8(std::string_view text, std::size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0x80) return {lead, 1};
  int length = 0;
  char32_t value = 0;
  char32_t minimum = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, value = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, value = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    return invalid_byte(lead);
  }
  if (at + length > text.size()) return invalid_byte(lead);
  for (int i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[at + i]);
    if ((next & 0xC0) != 0x80) return invalid_byte(lead);
    value = (value << 6) | (next & 0x3F);
  }
  const bool surrogate = value >= 0xD800 && value <= 0xDFFF;
  if (value < minimum || value > 0x10FFFF || surrogate) return invalid_byte(lead);
  return {value, length};
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return in_ranges(unicode_tables::letters, c);
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(unicode_tables::numbers, c);
}

// The Unicode White_Space property (what Oniguruma's \s matches on Unicode text).
bool is_whitespace(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string nfc(std::string_view text) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    return std::string(text);
  }
  std::vector<char32_t> cps;
  for (std::size_t at = 0; at < text.size();) {
    const CodePoint c = decode_utf8(text, at);
    decompose(c.value, cps);
    at += c.bytes;
  }
  canonical_order(cps);
  std::string out;
  for (const char32_t c : compose_all(cps)) append_utf8(out, c);
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c >= 0xDC80 && c <= 0xDCFF) {  // a byte that was not UTF-8 (decode_utf8), put back as it was
    out.push_back(static_cast<char>(c - 0xDC00));
  } else if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace ctxbench::model
