#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tasks/scoring/sequence_matcher.h"

using ctxbench::scoring::fuzz_ratio;
using ctxbench::scoring::MatchingBlock;
using ctxbench::scoring::SequenceMatcher;

namespace {

// difflib's documented contract, checked by brute force: among the longest blocks a[i:i+k] == b[j:j+k] whose
// b side avoids the popular elements, the earliest i, then the earliest j; then extended on both ends by
// equal elements (popular ones included).
MatchingBlock brute_force_longest(const std::u32string& a, const std::u32string& b, const std::set<char32_t>& popular,
                                  size_t alo, size_t ahi, size_t blo, size_t bhi) {
  MatchingBlock best{alo, blo, 0};
  for (size_t i = alo; i < ahi; ++i) {
    for (size_t j = blo; j < bhi; ++j) {
      size_t k = 0;
      while (i + k < ahi && j + k < bhi && a[i + k] == b[j + k] && popular.count(b[j + k]) == 0) ++k;
      if (k > best.size) best = {i, j, k};
    }
  }
  while (best.a > alo && best.b > blo && a[best.a - 1] == b[best.b - 1]) best = {best.a - 1, best.b - 1, best.size + 1};
  while (best.a + best.size < ahi && best.b + best.size < bhi && a[best.a + best.size] == b[best.b + best.size])
    ++best.size;
  return best;
}

size_t brute_force_matches(const std::u32string& a, const std::u32string& b, const std::set<char32_t>& popular,
                           size_t alo, size_t ahi, size_t blo, size_t bhi) {
  const MatchingBlock m = brute_force_longest(a, b, popular, alo, ahi, blo, bhi);
  if (m.size == 0) return 0;
  return m.size + brute_force_matches(a, b, popular, alo, m.a, blo, m.b) +
         brute_force_matches(a, b, popular, m.a + m.size, ahi, m.b + m.size, bhi);
}

std::set<char32_t> popular_by_count(const std::u32string& b) {
  std::set<char32_t> popular;
  if (b.size() < 200) return popular;
  for (char32_t c : b)
    if (static_cast<size_t>(std::count(b.begin(), b.end(), c)) > b.size() / 100 + 1) popular.insert(c);
  return popular;
}

std::u32string random_text(std::mt19937& rng, size_t length, std::u32string_view alphabet) {
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::u32string text;
  for (size_t k = 0; k < length; ++k) text.push_back(alphabet[pick(rng)]);
  return text;
}

}  // namespace

TEST_CASE("SequenceMatcher reproduces difflib's documented examples", "[scoring]") {
  const SequenceMatcher abxcd(U"abxcd", U"abcd");
  CHECK(abxcd.matching_blocks() == std::vector<MatchingBlock>{{0, 0, 2}, {3, 2, 2}, {5, 4, 0}});
  CHECK(abxcd.ratio() == 2.0 * 4 / 9);
  CHECK(SequenceMatcher(U" abcd", U"abcd abcd").find_longest_match(0, 5, 0, 9) == MatchingBlock{0, 4, 5});
  CHECK(SequenceMatcher(U"ab", U"c").find_longest_match(0, 2, 0, 1) == MatchingBlock{0, 0, 0});
  CHECK(SequenceMatcher(U"", U"").ratio() == 1.0);
}

TEST_CASE("SequenceMatcher equals a brute-force reference on random inputs, with and without autojunk", "[scoring]") {
  std::mt19937 rng(2024);
  std::uniform_int_distribution<size_t> short_length(0, 40), long_length(200, 320);
  for (int trial = 0; trial < 400; ++trial) {
    const bool long_b = trial % 4 == 0;  // len(b) >= 200 switches the autojunk heuristic on
    const std::u32string alphabet = trial % 2 == 0 ? U"ab" : U"abcdefghij \u00e9\u4e2d";
    const std::u32string a = random_text(rng, long_b ? long_length(rng) : short_length(rng), alphabet);
    const std::u32string b = random_text(rng, long_b ? long_length(rng) : short_length(rng), alphabet);
    const SequenceMatcher matcher(a, b);
    const std::set<char32_t> popular = popular_by_count(b);
    REQUIRE(std::set<char32_t>(matcher.popular().begin(), matcher.popular().end()) == popular);
    REQUIRE(matcher.find_longest_match(0, a.size(), 0, b.size()) ==
            brute_force_longest(a, b, popular, 0, a.size(), 0, b.size()));
    size_t matched = 0;
    const auto blocks = matcher.matching_blocks();
    for (size_t k = 0; k < blocks.size(); ++k) {
      const MatchingBlock& block = blocks[k];
      REQUIRE(a.compare(block.a, block.size, b, block.b, block.size) == 0);
      if (k > 0)
        REQUIRE((blocks[k - 1].a + blocks[k - 1].size <= block.a && blocks[k - 1].b + blocks[k - 1].size <= block.b));
      matched += block.size;
    }
    REQUIRE(blocks.back() == MatchingBlock{a.size(), b.size(), 0});
    REQUIRE(matched == brute_force_matches(a, b, popular, 0, a.size(), 0, b.size()));
  }
}

TEST_CASE("fuzz_ratio: equality, empty strings, half-even rounding, code points", "[scoring]") {
  CHECK(fuzz_ratio("", "") == 100);  // check_for_equivalence runs before check_empty_string
  CHECK(fuzz_ratio("", "x") == 0);
  CHECK(fuzz_ratio("x", "") == 0);
  CHECK(fuzz_ratio("abcd", "abxcd") == 89);         // 2*4/9 = 88.9
  CHECK(fuzz_ratio("abcdefgh", "aZZZZZZZ") == 12);  // 12.5 rounds to even
  CHECK(fuzz_ratio("abcdefgh", "abcZZZZZ") == 38);  // 37.5 rounds to even
  CHECK(fuzz_ratio("\u00e9t\u00e9", "ete") == 33);  // 1 matching code point of 3 each (bytes would differ)
}

TEST_CASE("fuzz_ratio keeps difflib's autojunk quirk for strings of 200+ characters", "[scoring]") {
  // In b = 200 x "a", "a" occurs more than 200/100 + 1 times, so it is not indexed: nothing anchors a match
  // and a = "b" + 199 x "a" matches nothing (ratio 0), although 199 characters are equal.
  CHECK(fuzz_ratio("b" + std::string(199, 'a'), std::string(200, 'a')) == 0);
  // One character shorter, b is under 200 and the heuristic is off: 2 * 198 / 399 -> 99.
  CHECK(fuzz_ratio("b" + std::string(198, 'a'), std::string(199, 'a')) == 99);
  // The extension step still recovers popular characters next to position 0: 2 * 199 / 399 -> 100.
  CHECK(fuzz_ratio(std::string(200, 'a'), std::string(199, 'a') + "b") == 100);
}
