#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tasks/scoring/python_number.h"
#include "tasks/scoring/python_text.h"

namespace py = ctxbench::scoring::py;
using Strings = std::vector<std::string>;

TEST_CASE("split_whitespace and strip use Python's whitespace set, including non-ASCII spaces", "[scoring]") {
  CHECK(py::split_whitespace("  a\tb\n\x0b"
                             "c\x0c"
                             "d\re\x1f"
                             "f  ") == Strings{"a", "b", "c", "d", "e", "f"});
  CHECK(py::split_whitespace("x\u00a0y\u3000z\u2009w\u0085v") == Strings{"x", "y", "z", "w", "v"});
  CHECK(py::split_whitespace("") == Strings{});
  CHECK(py::split_whitespace(" \u00a0 ") == Strings{});
  CHECK(py::split_whitespace("caf\u00e9 na\u00efve") == Strings{"caf\u00e9", "na\u00efve"});  // é is not a space
  CHECK(py::strip_whitespace("\u3000 \tkeep me\n\u00a0") == "keep me");
  CHECK(py::strip_whitespace(" \n ") == "");
}

TEST_CASE("split(sep) keeps empty pieces like str.split(sep)", "[scoring]") {
  CHECK(py::split("a..b.", ".") == Strings{"a", "", "b", ""});
  CHECK(py::split("", ".") == Strings{""});
  CHECK(py::split("\n\nx", "\n") == Strings{"", "", "x"});
}

TEST_CASE("lower covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic, leaves the rest", "[scoring]") {
  CHECK(py::lower("Hello WORLD 123_!") == "hello world 123_!");
  CHECK(py::lower("\u00c9COLE \u00d7 \u00de\u00c0") == "\u00e9cole \u00d7 \u00fe\u00e0");  // × has no lower case
  CHECK(py::lower("\u0100\u0139\u0178\u017d") == "\u0101\u013a\u00ff\u017e");
  CHECK(py::lower("\u0130") == "i\u0307");  // Python lowers İ to two code points
  CHECK(py::lower("\u0391\u0392\u0393 \u0386") == "\u03b1\u03b2\u03b3 \u03ac");
  CHECK(py::lower("\u041c\u041e\u0421\u041a\u0412\u0410 \u0401") == "\u043c\u043e\u0441\u043a\u0432\u0430 \u0451");
  // Documented gap: Python would give the final sigma "ς" at the end of a word.
  CHECK(py::lower("\u03a3\u0391\u03a3") == "\u03c3\u03b1\u03c3");
  CHECK(py::lower("\u0531") == "\u0531");  // Armenian is outside the covered blocks
}

TEST_CASE("decimal runs follow the Unicode digit class of Python re, and ascii_digits reads them like int()",
          "[scoring]") {
  CHECK(py::find_decimal_runs("a12b007 3") == Strings{"12", "007", "3"});
  CHECK(py::find_decimal_runs("no digits") == Strings{});
  CHECK(py::find_decimal_runs("\uff11\uff12x\u0663") == Strings{"\uff11\uff12", "\u0663"});  // full-width, Arabic-Indic
  CHECK(py::find_decimal_runs("\u00b2\u00bd") == Strings{});  // superscript two and one half are not Nd
  CHECK(py::ascii_digits("\uff11\uff12\u0663") == "123");
  CHECK(py::decimal_value(U'\U0001D7D9') == 1);  // MATHEMATICAL DOUBLE-STRUCK DIGIT ONE
  CHECK(py::decimal_value(U'/') == -1);
  CHECK(py::decimal_value(U':') == -1);
}

TEST_CASE("word characters match the word class of Python re on Latin-1 and the documented non-word blocks",
          "[scoring]") {
  CHECK(py::is_word_char(U'_'));
  CHECK(py::is_word_char(U'7'));
  CHECK_FALSE(py::is_word_char(U'-'));
  CHECK(py::is_word_char(U'\u00e9'));
  CHECK(py::is_word_char(U'\u00b2'));
  CHECK_FALSE(py::is_word_char(U'\u00d7'));
  CHECK_FALSE(py::is_word_char(U'\u00a0'));
  CHECK_FALSE(py::is_word_char(U'\u2019'));  // right single quotation mark
  CHECK_FALSE(py::is_word_char(U'\u3002'));  // ideographic full stop
  CHECK(py::is_word_char(U'\u3005'));
  CHECK_FALSE(py::is_word_char(U'\uff0c'));  // full-width comma
  CHECK(py::is_word_char(U'\u4e2d'));
}

TEST_CASE("UTF-8 decoding round-trips, invalid bytes included (surrogateescape)", "[scoring]") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 40);
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes;
    for (int k = length(rng); k > 0; --k) bytes.push_back(static_cast<char>(byte(rng)));
    const std::u32string decoded = py::decode_utf8(bytes);
    REQUIRE(py::encode_utf8(decoded) == bytes);
    for (char32_t c : decoded) REQUIRE((c < 0xD800 || c >= 0xE000 || (c >= 0xDC80 && c <= 0xDCFF)));
  }
  CHECK(py::decode_utf8("a\u00e9\u4e2d\U0001F600") == U"a\u00e9\u4e2d\U0001F600");
  CHECK(py::decode_utf8("\xc0\xaf") == std::u32string{0xDCC0, 0xDCAF});              // overlong "/" is invalid
  CHECK(py::decode_utf8("\xed\xa0\x80") == std::u32string{0xDCED, 0xDCA0, 0xDC80});  // encoded surrogate
}

// Adds one unit in the last place to a non-negative decimal string ("12.39" -> "12.40", "9.99" -> "10.00").
static std::string increment_decimal(std::string digits) {
  for (size_t k = digits.size(); k-- > 0;) {
    if (digits[k] == '.') continue;
    if (digits[k] != '9') {
      ++digits[k];
      return digits;
    }
    digits[k] = '0';
  }
  return "1" + digits;
}

// An obviously-correct Python round(x, 2) for 0 <= x < 1e4: the exact decimal expansion of the double
// (glibc prints it exactly; such doubles have at most 52 fractional digits), cut after two decimals and
// rounded half to even by hand.
static double reference_round2(double x) {
  char exact[128];
  std::snprintf(exact, sizeof exact, "%.60f", x);
  const std::string text(exact);
  const size_t point = text.find('.');
  const std::string kept = text.substr(0, point + 3), rest = text.substr(point + 3);
  const bool beyond_five = rest.find_first_not_of('0', 1) != std::string::npos;
  const bool round_up = rest[0] > '5' || (rest[0] == '5' && (beyond_five || (kept.back() - '0') % 2 == 1));
  return std::strtod((round_up ? increment_decimal(kept) : kept).c_str(), nullptr);
}

TEST_CASE("python_round matches an exact-decimal reference and known Python results", "[scoring]") {
  CHECK(py::python_round(48.185, 2) == 48.19);  // 48.185 is stored as 48.18500000000000227...
  CHECK(py::python_round(2.675, 2) == 2.67);    // stored as 2.67499999999999982...
  CHECK(py::python_round(0.125, 2) == 0.12);    // exact tie: to even
  CHECK(py::python_round(0.375, 2) == 0.38);
  CHECK(py::python_round(55.55555555555555, 2) == 55.56);
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<long> cents(0, 10'000'000);
  std::uniform_int_distribution<int> nudge(-3, 3);
  for (int trial = 0; trial < 20000; ++trial) {
    double x = static_cast<double>(cents(rng)) / 1000.0;  // many values near a .xx5 boundary
    for (int k = nudge(rng); k != 0; k += k > 0 ? -1 : 1) x = std::nextafter(x, k > 0 ? 1e9 : -1e9);
    REQUIRE(py::python_round(x, 2) == reference_round2(x));
  }
}

TEST_CASE("numpy_round and numpy_mean reproduce NumPy 1.24", "[scoring]") {
  CHECK(py::numpy_round(48.185, 2) == 48.18);  // Python's round gives 48.19
  CHECK(py::numpy_round(15.945, 2) == 15.94);
  CHECK(py::numpy_round(0.125, 2) == 0.12);
  // Ten 0.1: NumPy's pairwise sum gives exactly 1.0, the sequential sum 0.9999999999999999.
  const std::vector<double> tenths(10, 0.1);
  CHECK(py::numpy_mean(tenths) == 0.1);
  CHECK(py::sequential_sum(tenths) / 10 == 0.09999999999999999);
  CHECK(std::isnan(py::numpy_mean({})));
  // Below 8 elements NumPy adds sequentially; above, the result stays within rounding of an exact sum.
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int n : {1, 5, 7, 8, 9, 100, 128, 129, 1000, 5000}) {
    std::vector<double> values(static_cast<size_t>(n));
    long double exact = 0;
    for (double& v : values) exact += v = unit(rng);
    if (n < 8) REQUIRE(py::numpy_mean(values) == py::sequential_sum(values) / n);
    REQUIRE(py::numpy_mean(values) == Approx(static_cast<double>(exact / n)).epsilon(1e-14));
  }
}

TEST_CASE("python_float_repr prints like Python's repr", "[scoring]") {
  CHECK(py::python_float_repr(45.23) == "45.23");
  CHECK(py::python_float_repr(100.0) == "100.0");
  CHECK(py::python_float_repr(0.0) == "0.0");
  CHECK(py::python_float_repr(-0.5) == "-0.5");
  CHECK(py::python_float_repr(0.0001) == "0.0001");
  CHECK(py::python_float_repr(0.00001) == "1e-05");
  CHECK(py::python_float_repr(1.5e-7) == "1.5e-07");
  CHECK(py::python_float_repr(1e16) == "1e+16");
  CHECK(py::python_float_repr(1234567890123456.0) == "1234567890123456.0");
  CHECK(py::python_float_repr(0.1 + 0.2) == "0.30000000000000004");
  CHECK(py::python_float_repr(std::nan("")) == "nan");
}
