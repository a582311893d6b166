// The few Unicode facts the BPE tokenizers need: UTF-8 decoding that never fails (a stray byte becomes
// a code point of its own class), membership in \p{L}, \p{N} and \s (White_Space), and NFC.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ctxbench::model {

struct CodeRange {
  char32_t first;
  char32_t last;
};

// Whether c lies in one of `ranges` (sorted, disjoint).
bool in_ranges(std::span<const CodeRange> ranges, char32_t c);

// A run of code points sharing one value (a canonical combining class).
struct CodeValue {
  char32_t first;
  char32_t last;
  char32_t value;
};

// A canonical decomposition (code point -> first, second or 0), or a composition (first, second -> composite).
struct CodePair {
  char32_t a;
  char32_t b;
  char32_t c;
};

namespace unicode_tables {
extern const std::span<const CodeRange> letters;            // general category L*
extern const std::span<const CodeRange> numbers;            // general category N*
extern const std::span<const CodeValue> combining_classes;  // the non-zero ones, sorted
extern const std::span<const CodePair> decompositions;      // {code point, first, second}, sorted, no Hangul
extern const std::span<const CodePair> compositions;        // {first, second, composite}, sorted, no Hangul
}  // namespace unicode_tables

// One decoded code point and the bytes it took.
struct CodePoint {
  char32_t value;
  int bytes;
};

// Decodes the code point at text[at]. Invalid or truncated sequences decode as one byte of value
// 0xDC00 + byte (a lone surrogate, which no class below contains), so every byte is consumed exactly once.
CodePoint decode_utf8(std::string_view text, std::size_t at);

// Appends `c` as UTF-8; U+DC80..U+DCFF (a byte decode_utf8, or Python's surrogateescape, could not read) is put
// back as that byte.
void append_utf8(std::string& out, char32_t c);

bool is_letter(char32_t c);
bool is_number(char32_t c);
bool is_whitespace(char32_t c);

// Unicode Normalization Form C: canonical decomposition, canonical order, canonical composition (HF's NFC
// normalizer). Bytes that are not UTF-8 pass through unchanged.
std::string nfc(std::string_view text);

}  // namespace ctxbench::model
