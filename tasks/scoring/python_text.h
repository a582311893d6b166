// Python 3 `str` semantics on UTF-8 text, as far as the official scorers rely on them.
//
// The originals run on Python `str` (code points). Our strings are UTF-8 bytes, so every helper that must see
// code points decodes first. str.isspace() (and so split() and strip()), str.lower() (with the Final_Sigma rule,
// the one context CPython applies), re's `\d` and `\w` follow CPython's rules on tables generated from Debian's
// Unicode Character Database (gen_python_text_tables.py): Unicode 15.0, CPython 3.12's version. CPython 3.11
// (Unicode 14.0) differs only on the code points Unicode 15.0 added; a test compares with the python3 here on all
// the others. string.punctuation is ASCII in Python too, and substring tests carry over to UTF-8 unchanged.
// Invalid UTF-8 bytes decode to U+DC80+byte (Python's "surrogateescape") and encode back unchanged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ctxbench::scoring::py {

std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);

bool is_space(char32_t c);      // str.isspace()
int decimal_value(char32_t c);  // 0..9 when re's `\d` matches c, else -1
bool is_word_char(char32_t c);  // re's `\w`: str.isalnum() or "_"

std::string lower(std::string_view text);        // str.lower()
std::u32string lower(std::u32string_view text);  // str.lower() on code points

std::vector<std::string> split_whitespace(std::string_view text);                   // str.split()
std::vector<std::string> split(std::string_view text, std::string_view separator);  // str.split(sep)
std::string strip_whitespace(std::string_view text);                                // str.strip()
std::string join(const std::vector<std::string>& parts, std::string_view separator);

bool contains(std::string_view haystack, std::string_view needle);  // `needle in haystack`

// re.findall(r"\d+", text): maximal runs of Unicode decimal digits, as UTF-8.
std::vector<std::string> find_decimal_runs(std::string_view text);

// The digits of a `\d+` run mapped to ASCII (what Python's int() reads), e.g. full-width "１２" -> "12".
std::string ascii_digits(std::string_view decimal_run);

}  // namespace ctxbench::scoring::py
