// The Unicode tables behind python_text.cpp, generated from Debian's unicode-data by gen_python_text_tables.py.
#pragma once

#include <span>

#include "model/unicode.h"

namespace ctxbench::scoring::py::tables {

using model::CodeRange;

struct SimpleLower {  // UnicodeData's simple lowercase mapping
  char32_t from;
  char32_t to;
};

struct FullLower {  // SpecialCasing's unconditional lowercase where it differs from the simple one (0-padded)
  char32_t from;
  char32_t to[3];
};

extern const std::span<const CodeRange> space;           // str.isspace()
extern const std::span<const CodeRange> word;            // re's \w: str.isalnum() or "_"
extern const std::span<const CodeRange> cased;           // DerivedCoreProperties Cased
extern const std::span<const CodeRange> case_ignorable;  // DerivedCoreProperties Case_Ignorable
extern const std::span<const char32_t> decimal_zeros;    // the zero of every run of ten decimal digits, sorted
extern const std::span<const SimpleLower> simple_lower;  // sorted by `from`
extern const std::span<const FullLower> full_lower;      // sorted by `from`

}  // namespace ctxbench::scoring::py::tables
