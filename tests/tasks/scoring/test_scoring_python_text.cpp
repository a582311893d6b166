#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/source_tree.h"
#include "tasks/scoring/python_number.h"
#include "tasks/scoring/python_text.h"
#include "tests/helpers.h"

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

TEST_CASE("lower follows str.lower: full mappings, the final sigma, every script", "[scoring]") {
  CHECK(py::lower("Hello WORLD 123_!") == "hello world 123_!");
  CHECK(py::lower("\u00c9COLE \u00d7 \u00de\u00c0") == "\u00e9cole \u00d7 \u00fe\u00e0");  // × has no lower case
  CHECK(py::lower("\u0130") == "i\u0307");                                 // Python lowers İ to two code points
  CHECK(py::lower("\u03a3\u0391\u03a3") == "\u03c3\u03b1\u03c2");          // final sigma at the end of a word
  CHECK(py::lower("\u0391\u03a3'\u0301 x") == "\u03b1\u03c2'\u0301 x");    // case-ignorables skipped
  CHECK(py::lower("\u03a3") == "\u03c3");                                  // nothing cased before it
  CHECK(py::lower("\u0531\u10a0\U00010400") == "\u0561\u2d00\U00010428");  // Armenian, Georgian, Deseret
  CHECK(py::lower("\u01c5") == "\u01c6");                                  // titlecase Dž
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

TEST_CASE("word characters are the word class of re: letters, numbers of every kind and the underscore", "[scoring]") {
  CHECK(py::is_word_char(U'_'));
  CHECK(py::is_word_char(U'7'));
  CHECK_FALSE(py::is_word_char(U'-'));
  CHECK(py::is_word_char(U'\u00e9'));
  CHECK(py::is_word_char(U'\u00b2'));  // superscript two: numeric
  CHECK_FALSE(py::is_word_char(U'\u00d7'));
  CHECK_FALSE(py::is_word_char(U'\u00a0'));
  CHECK_FALSE(py::is_word_char(U'\u2019'));  // right single quotation mark
  CHECK_FALSE(py::is_word_char(U'\u3002'));  // ideographic full stop
  CHECK(py::is_word_char(U'\u3005'));
  CHECK_FALSE(py::is_word_char(U'\uff0c'));  // full-width comma
  CHECK(py::is_word_char(U'\u4e2d'));
  CHECK_FALSE(py::is_word_char(U'\u0301'));      // a combining mark is not alphanumeric
  CHECK_FALSE(py::is_word_char(U'\U0001F600'));  // nor an emoji
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

namespace {

using ctxbench::testing::report_skipped;

std::string hexes(std::u32string_view text) {
  std::string out;
  for (char32_t c : text) {
    if (!out.empty()) out += ' ';
    out += fmt::format("{:X}", static_cast<uint32_t>(c));
  }
  return out;
}

std::string hexes_of(const std::string& utf8) { return hexes(py::decode_utf8(utf8)); }

// Runs tests/tasks/scoring/python_text_oracle.py; false (and a skip) when there is no python3.
bool run_oracle(const std::string& arguments) {
  if (ctxbench::testing::run_shell("python3 --version") != 0) {
    if (ctxbench::testing::running_in_ci()) FAIL("no python3 in CI, where the oracle must run");
    report_skipped("no python3 to compare str semantics with");
    return false;
  }
  const auto script = ctxbench::source_tree() / "tests" / "tasks" / "scoring" / "python_text_oracle.py";
  std::string output;
  const int status = ctxbench::testing::run_shell("python3 " + script.string() + " " + arguments, &output);
  INFO(output);
  REQUIRE(status == 0);
  return true;
}

std::vector<std::string> fields_of(const std::string& line) { return py::split(line, ";"); }

}  // namespace

TEST_CASE("lower, isspace and the word and digit classes equal python3's on every code point it knows",
          "[scoring][python]") {
  const ctxbench::testing::TempDir dir;
  if (!run_oracle("code-points " + dir.file("code_points.txt"))) return;
  std::ifstream in(dir.file("code_points.txt"));
  std::string line;
  std::getline(in, line);
  INFO("python3's " << line << "; the tables are Unicode 15.0, whose additions python3 does not know");
  int checked = 0;
  while (std::getline(in, line)) {
    const auto f = fields_of(line);
    REQUIRE(f.size() == 5);
    const auto c = static_cast<char32_t>(std::stoul(f[0], nullptr, 16));
    INFO("U+" << f[0]);
    CHECK(hexes(py::lower(std::u32string(1, c))) == f[1]);
    CHECK(py::is_space(c) == (f[2] == "1"));
    CHECK(py::is_word_char(c) == (f[3] == "1"));
    CHECK(py::decimal_value(c) == std::stoi(f[4]));
    ++checked;
  }
  CHECK(checked > 280000);  // every assigned, private-use and surrogate code point of Unicode 14
}

TEST_CASE("lower, strip and split equal python3's on random strings of the special cases", "[scoring][python]") {
  // Capital sigma with cased letters and case-ignorables around it, İ, titlecase, spaces of every kind, digits,
  // uncased symbols, and bytes that are not UTF-8 (surrogateescape).
  const std::u32string pool =
      U"\u03a3\u03a3\u03a3AaZ\u0391\u03c9\u01c5\u0130'.:\u00ad\u0301\u2019\u02b0 \t\n\x1c"
      U"\u0085\u00a0\u3000\u2028\u200b7\u0663\u00b2-!\u4e2d\U0001F600\xdcff";
  std::mt19937 rng(Catch::rngSeed());
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1), length(0, 12);
  std::vector<std::u32string> texts;
  for (int k = 0; k < 3000; ++k) {
    std::u32string text;
    for (size_t n = length(rng); n > 0; --n) text.push_back(pool[pick(rng)]);
    texts.push_back(text);
  }
  const ctxbench::testing::TempDir dir;
  {
    std::ofstream out(dir.file("strings.txt"));
    for (const auto& text : texts) out << hexes(text) << "\n";
  }
  if (!run_oracle("strings " + dir.file("strings.txt") + " " + dir.file("expected.txt"))) return;
  std::ifstream in(dir.file("expected.txt"));
  std::string line;
  for (const auto& text : texts) {
    REQUIRE(std::getline(in, line));
    const auto f = fields_of(line);
    REQUIRE(f.size() == 3);
    const std::string utf8 = py::encode_utf8(text);
    std::string split;
    for (const auto& part : py::split_whitespace(utf8)) {
      if (!split.empty()) split += '|';
      split += hexes_of(part);
    }
    INFO("text " << hexes(text));
    CHECK(hexes(py::lower(text)) == f[0]);
    CHECK(hexes_of(py::strip_whitespace(utf8)) == f[1]);
    CHECK(split == f[2]);
  }
}
