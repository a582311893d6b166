// Tokenizers: byte-level; the hand-written GPT-2 / Llama 3 / Qwen2 pre-tokenizer splits; byte-level BPE from
// tokenizer.json files written here (merges by rank against a naive reference, added tokens, decoding,
// errors); the choice between them from a model directory, and the tokenizer-only loader.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/random.h"
#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/backend.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"
#include "model/unicode.h"
#include "tests/helpers.h"

using namespace ctxbench;
using namespace ctxbench::model;
using Catch::Contains;
using nlohmann::json;

TEST_CASE("byte tokenizer: ids are bytes, special ids decode to nothing", "[tokenizer]") {
  const ByteTokenizer tok(258);
  const std::string text("h\xc3\xa9llo\n\x00\xff", 9);
  const auto ids = tok.encode(text);
  REQUIRE(ids.size() == 9);
  CHECK(ids[1] == 0xC3);
  CHECK(ids[8] == 0xFF);
  CHECK(tok.decode(ids) == text);
  CHECK(tok.decode({256, 'a', 257, 'b'}) == "ab");
  CHECK_THROWS_WITH(tok.decode({258}), Contains("258"));
  CHECK_THROWS_WITH(ByteTokenizer(100), Contains("256"));
  CHECK(tok.name() == "bytes");
}

namespace {

std::vector<std::string> pieces(const std::string& text, SplitPattern pattern) {
  std::vector<std::string> out;
  for (const auto p : split_pieces(text, pattern)) out.emplace_back(p);
  return out;
}

using Pieces = std::vector<std::string>;

}  // namespace

// Expected splits were produced by Python's `re` running the same patterns with \p{L}, \p{N} and \s spelled
// out as explicit character classes (and agree with it on 60,000 random strings).
TEST_CASE("pre-tokenizer: GPT-2, Llama 3 and Qwen2 splits", "[tokenizer]") {
  using enum SplitPattern;
  const std::string a = "Hello world's  3.14 don't\n\n  x";
  CHECK(pieces(a, gpt2) == Pieces{"Hello", " world", "'s", " ", " 3", ".", "14", " don", "'t", "\n\n ", " x"});
  CHECK(pieces(a, llama3) ==
        Pieces{"Hello", " world", "'s", " ", " ", "3", ".", "14", " don", "'t", "\n\n", " ", " x"});
  CHECK(pieces(a, qwen2) ==
        Pieces{"Hello", " world", "'s", " ", " ", "3", ".", "1", "4", " don", "'t", "\n\n", " ", " x"});

  const std::string b = "I'M here:  12345678 apples!!\r\n\tok ";
  CHECK(pieces(b, gpt2) ==
        Pieces{"I", "'", "M", " here", ":", " ", " 12345678", " apples", "!!", "\r\n", "\t", "ok", " "});
  CHECK(pieces(b, llama3) ==
        Pieces{"I", "'M", " here", ":", " ", " ", "123", "456", "78", " apples", "!!\r\n", "\tok", " "});

  const std::string c = "  (h\u00e9llo) \u65e5\u672c\u8a9e \u0661\u0662\u0663 \u00bdx";
  CHECK(pieces(c, gpt2) ==
        Pieces{" ", " (", "h\u00e9llo", ")", " \u65e5\u672c\u8a9e", " \u0661\u0662\u0663", " \u00bd", "x"});
  CHECK(pieces(c, llama3) ==
        Pieces{" ", " (", "h\u00e9llo", ")", " \u65e5\u672c\u8a9e", " ", "\u0661\u0662\u0663", " ", "\u00bd", "x"});

  const std::string d = "a\n \n b?\n\nc";
  CHECK(pieces(d, gpt2) == Pieces{"a", "\n \n", " b", "?", "\n", "\n", "c"});
  CHECK(pieces(d, llama3) == Pieces{"a", "\n \n", " b", "?\n\n", "c"});
  CHECK(pieces("it's  'S fine", llama3) == Pieces{"it", "'s", " ", " '", "S", " fine"});

  // Invalid UTF-8 bytes are kept, each its own non-letter character.
  const std::string bad = "ab\xff\xfe cd";
  CHECK(pieces(bad, gpt2) == Pieces{"ab", "\xff\xfe", " cd"});
  CHECK(pieces("", gpt2).empty());
}

TEST_CASE("pre-tokenizer: the three regexes are recognised by their exact text", "[tokenizer]") {
  CHECK(recognize_split_pattern(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)") ==
        SplitPattern::gpt2);
  CHECK(
      recognize_split_pattern(
          R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)") ==
      SplitPattern::llama3);
  CHECK(
      recognize_split_pattern(
          R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)") ==
      SplitPattern::qwen2);
  CHECK_FALSE(recognize_split_pattern(R"(\w+|\s+)"));
}

namespace {

// GPT-2's printable stand-in for a byte, as UTF-8.
std::string byte_symbol(int b) {
  int code = b;
  if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
    int n = 0;
    for (int x = 0; x < b; ++x) n += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
    code = 256 + n;
  }
  std::string s;
  if (code < 0x80) {
    s.push_back(static_cast<char>(code));
  } else {
    s.push_back(static_cast<char>(0xC0 | (code >> 6)));
    s.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
  return s;
}

std::string symbols(const std::string& bytes) {
  std::string out;
  for (const char c : bytes) out += byte_symbol(static_cast<unsigned char>(c));
  return out;
}

// A tokenizer.json: the 256 byte symbols (ids = byte values), then one token per merge result in order.
struct TokenizerFile {
  json vocab = json::object();
  json merges = json::array();
  json added = json::array();
  json pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  bool ignore_merges = false;

  TokenizerFile() {
    for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = b;
  }
  // Adds the merge of two byte strings; returns the id of the result.
  int merge(const std::string& left, const std::string& right) {
    const std::string merged = symbols(left + right);
    if (!vocab.contains(merged)) vocab[merged] = static_cast<int>(vocab.size());
    merges.push_back(symbols(left) + " " + symbols(right));
    return vocab[merged].get<int>();
  }
  int id(const std::string& bytes) const { return vocab.at(symbols(bytes)).get<int>(); }
  std::string write(const std::string& path) const {
    json doc = {{"version", "1.0"},
                {"added_tokens", added},
                {"normalizer", nullptr},
                {"pre_tokenizer", pre_tokenizer},
                {"post_processor", nullptr},
                {"decoder", {{"type", "ByteLevel"}}},
                {"model",
                 {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"byte_fallback", false},
                  {"ignore_merges", ignore_merges},
                  {"vocab", vocab},
                  {"merges", merges}}}};
    std::ofstream(path) << doc.dump();
    return path;
  }
};

// Obviously-correct BPE on one piece: merge the lowest-ranked adjacent pair (leftmost on ties) until none.
std::vector<std::string> naive_bpe(const std::string& piece,
                                   const std::map<std::pair<std::string, std::string>, int>& ranks) {
  std::vector<std::string> parts;
  for (const char c : piece) parts.push_back(std::string(1, c));
  for (;;) {
    int best = -1, best_rank = 0;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      const auto it = ranks.find({parts[i], parts[i + 1]});
      if (it != ranks.end() && (best < 0 || it->second < best_rank)) best = static_cast<int>(i), best_rank = it->second;
    }
    if (best < 0) return parts;
    parts[best] += parts[best + 1];
    parts.erase(parts.begin() + best + 1);
  }
}

}  // namespace

TEST_CASE("BPE: merges apply by rank, as a naive reference does, on random merge tables", "[tokenizer]") {
  testing::TempDir dir;
  Rng rng(17);
  const std::string alphabet = "abc d\n";
  for (int table = 0; table < 4; ++table) {
    TokenizerFile file;
    std::vector<std::string> tokens;
    for (const char c : alphabet) tokens.push_back(std::string(1, c));
    std::map<std::pair<std::string, std::string>, int> ranks;
    while (ranks.size() < 120) {
      const std::string& l = tokens[rng.integer(0, tokens.size() - 1)];
      const std::string& r = tokens[rng.integer(0, tokens.size() - 1)];
      if (ranks.count({l, r}) || l.size() + r.size() > 8) continue;
      ranks[{l, r}] = static_cast<int>(ranks.size());
      file.merge(l, r);
      tokens.push_back(l + r);
    }
    const auto tok = BpeTokenizer::from_file(file.write(dir.file("tokenizer.json")), "t");
    for (int sample = 0; sample < 200; ++sample) {
      std::string text;
      for (int i = rng.integer(0, 30); i > 0; --i) text += alphabet[rng.integer(0, alphabet.size() - 1)];
      std::vector<int> expected;
      for (const auto piece : split_pieces(text, SplitPattern::gpt2)) {
        for (const auto& part : naive_bpe(std::string(piece), ranks)) expected.push_back(file.id(part));
      }
      INFO("table " << table << " text \"" << text << "\"");
      REQUIRE(tok.encode(text) == expected);
      REQUIRE(tok.decode(expected) == text);
    }
  }
}

TEST_CASE("BPE: a small GPT-2-style file: rank order, bytes, round trips", "[tokenizer]") {
  testing::TempDir dir;
  TokenizerFile file;
  const int he = file.merge("h", "e");
  const int ll = file.merge("l", "l");
  const int hell = file.merge("he", "ll");
  const int sp_t = file.merge(" ", "t");
  const int sp_the = file.merge(" t", "he");
  const auto tok = BpeTokenizer::from_file(file.write(dir.file("tokenizer.json")), "bpe:test");
  CHECK(tok.name() == "bpe:test");
  CHECK(tok.encode("hello the") == std::vector<int>{hell, 'o', sp_the});
  CHECK(tok.encode("he  the") == std::vector<int>{he, ' ', sp_the});
  CHECK(tok.encode("tell") == std::vector<int>{'t', 'e', ll});
  CHECK(tok.encode(" t") == std::vector<int>{sp_t});
  // Every byte string survives a round trip, including invalid UTF-8 and control bytes.
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  CHECK(tok.decode(tok.encode(all)) == all);
  const std::string mixed = "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac hello\n\tthe end ";
  CHECK(tok.decode(tok.encode(mixed)) == mixed);
  CHECK(tok.encode("").empty());
  CHECK_THROWS_WITH(tok.decode({5000}), Contains("5000"));
}

TEST_CASE("BPE: a vocabulary that gives two tokens one id is refused, naming both", "[tokenizer]") {
  testing::TempDir dir;
  TokenizerFile file;  // found by the fuzzer: "he" on the id of byte 0xFF decoded "hello" as "\xffllo"
  file.merge("h", "e");
  file.vocab["he"] = 255;
  CHECK_THROWS_WITH(BpeTokenizer::from_file(file.write(dir.file("tokenizer.json")), "t"),
                    Contains("model.vocab.") && Contains(": an id of its own (id 255 is also \""));
}

TEST_CASE("BPE: the first rank wins over a later, longer merge", "[tokenizer]") {
  testing::TempDir dir;
  TokenizerFile bc_first;
  const int bc = bc_first.merge("b", "c");
  bc_first.merge("a", "b");
  bc_first.merge("ab", "c");
  CHECK(BpeTokenizer::from_file(bc_first.write(dir.file("a.json")), "t").encode("abc") == std::vector<int>{'a', bc});
  TokenizerFile ab_first;
  ab_first.merge("a", "b");
  ab_first.merge("b", "c");
  const int abc = ab_first.merge("ab", "c");
  CHECK(BpeTokenizer::from_file(ab_first.write(dir.file("b.json")), "t").encode("abc") == std::vector<int>{abc});
}

TEST_CASE("BPE: added tokens are matched first, special ones are left out when decoding", "[tokenizer]") {
  testing::TempDir dir;
  TokenizerFile file;
  const int ab = file.merge("a", "b");
  file.added =
      json::array({{{"id", 300}, {"content", "<|bos|>"}, {"special", true}},
                   {{"id", 301}, {"content", "<|bos|>x"}, {"special", true}},
                   {{"id", 302}, {"content", "[sep]"}, {"special", false}, {"lstrip", true}, {"rstrip", true}}});
  const auto tok = BpeTokenizer::from_file(file.write(dir.file("tokenizer.json")), "t");
  CHECK(tok.encode("<|bos|>ab") == std::vector<int>{300, ab});
  CHECK(tok.encode("ab<|bos|>xab") == std::vector<int>{ab, 301, ab});   // longest match
  CHECK(tok.encode("ab  [sep]  ab") == std::vector<int>{ab, 302, ab});  // strips around [sep]
  CHECK(tok.encode("<|bos") == std::vector<int>{'<', '|', 'b', 'o', 's'});
  CHECK(tok.decode({300, ab, 302, ab}) == "ab[sep]ab");
  CHECK(tok.vocab_size() == 303);
}

TEST_CASE("BPE: ignore_merges takes whole words from the vocabulary, merges may be pairs", "[tokenizer]") {
  testing::TempDir dir;
  TokenizerFile file;
  file.merge("a", "b");
  file.vocab[symbols(" abc")] = 400;  // reachable only as a whole word
  file.merges = json::array({json::array({symbols("a"), symbols("b")})});
  const int ab = file.id("ab");
  CHECK(BpeTokenizer::from_file(file.write(dir.file("a.json")), "t").encode(" abc") == std::vector<int>{' ', ab, 'c'});
  file.ignore_merges = true;
  CHECK(BpeTokenizer::from_file(file.write(dir.file("b.json")), "t").encode(" abc") == std::vector<int>{400});
}

TEST_CASE("BPE: Llama 3 split regex and add_prefix_space from the pre-tokenizer", "[tokenizer]") {
  testing::TempDir dir;
  TokenizerFile file;
  const int d12 = file.merge("1", "2");
  const int d123 = file.merge("12", "3");
  const int d1234 = file.merge("123", "4");
  file.pre_tokenizer = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  const auto llama = BpeTokenizer::from_file(file.write(dir.file("l.json")), "t");
  CHECK(llama.encode("1234") == std::vector<int>{d123, '4'});  // digits in threes
  file.pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  const auto gpt2 = BpeTokenizer::from_file(file.write(dir.file("g.json")), "t");
  CHECK(gpt2.encode("1234") == std::vector<int>{' ', d1234});
  CHECK(gpt2.encode(" 12") == std::vector<int>{' ', d12});
}

TEST_CASE("BPE: files that are not byte-level BPE fail naming the file and field", "[tokenizer]") {
  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  const auto expect_error = [&](const TokenizerFile& file, const std::function<void(json&)>& edit,
                                const std::string& what) {
    file.write(path);
    std::ifstream in(path);
    json doc = json::parse(in);
    edit(doc);
    std::ofstream(path) << doc.dump();
    CHECK_THROWS_WITH(BpeTokenizer::from_file(path, "t"), Contains(path) && Contains(what));
  };
  TokenizerFile file;
  file.merge("a", "b");
  expect_error(
      file, [](json& d) { d["model"]["type"] = "Unigram"; }, "model.type");
  expect_error(
      file, [](json& d) { d["model"]["byte_fallback"] = true; }, "model.byte_fallback");
  expect_error(
      file, [](json& d) { d["model"]["merges"].push_back("a"); }, "model.merges[1]");
  expect_error(
      file, [](json& d) { d["model"]["merges"].push_back("x y"); }, "model.merges[1]");
  expect_error(
      file,
      [](json& d) {
        d["pre_tokenizer"] = {{"type", "Metaspace"}};
      },
      "pre_tokenizer");
  expect_error(
      file,
      [](json& d) {
        d["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}},
                                {{"type", "ByteLevel"}, {"use_regex", false}}}}};
      },
      "pre_tokenizer.pretokenizers[0].pattern.Regex");
  expect_error(
      file,
      [](json& d) {
        d["normalizer"] = {{"type", "Lowercase"}};
      },
      "normalizer");
  expect_error(
      file,
      [](json& d) {
        d["added_tokens"] = {{{"id", 5}}};
      },
      "added_tokens[0]");
  std::ofstream(path) << "{";
  CHECK_THROWS_WITH(BpeTokenizer::from_file(path, "t"), Contains(path) && Contains("JSON"));

  // A vocabulary without the byte a text needs.
  TokenizerFile partial;
  partial.vocab.erase(byte_symbol('z'));
  const auto tok = BpeTokenizer::from_file(partial.write(path), "t");
  CHECK_THROWS_WITH(tok.encode("az"), Contains("0x7A"));
}

TEST_CASE("load_tokenizer: tokenizer.json means BPE, otherwise bytes", "[tokenizer]") {
  testing::TempDir dir;
  const auto bytes = load_tokenizer(dir.file(""), 258);
  CHECK(bytes->name() == "bytes");
  CHECK(bytes->encode("ab") == std::vector<int>{'a', 'b'});
  TokenizerFile file;
  const int ab = file.merge("a", "b");
  file.write(dir.file("tokenizer.json"));
  const auto bpe = load_tokenizer(dir.file(""), 1000);
  CHECK(bpe->encode("ab") == std::vector<int>{ab});
  CHECK(bpe->name().rfind("bpe:", 0) == 0);
  CHECK_THROWS_WITH(load_tokenizer(dir.file(""), 200), Contains("vocab_size"));
}

TEST_CASE("open_tokenizer: config.json alone gives the tokenizer and the BOS the runtime adds", "[tokenizer]") {
  testing::TempDir dir;
  json config = json::parse(std::ifstream(source_tree() / kBundledModel / "config.json"));
  std::ofstream(dir.file("config.json")) << config.dump();
  const json params = {{"model", dir.file("")}, {"rope_scaling", json::object()}};
  const PromptTokenizer with_bos = open_tokenizer(params);
  CHECK(with_bos.tokenizer->name() == "bytes");
  CHECK(with_bos.prompt_ids("abc") == std::vector<int>{256, 97, 98, 99});

  config.erase("bos_token_id");
  std::ofstream(dir.file("config.json")) << config.dump();
  CHECK(open_tokenizer(params).prompt_ids("abc").size() == 3);

  std::filesystem::remove(dir.file("config.json"));
  CHECK_THROWS_AS(open_tokenizer(params), InputError);
}

TEST_CASE("open_tokenizer: counts a prompt as the bundled model's generator does", "[tokenizer]") {
  const json params = {{"model", kBundledModel}, {"rope_scaling", json::object()}};
  const auto generator =
      open_generator(params, std::shared_ptr<const engines::Engine>(
                                 engines::EngineRegistry::instance().get("dense", "test").make(json{{"threads", 1}})));
  TextSample sample;
  sample.prompt = "The pass key is 4821. What is the pass key?";
  sample.max_new_tokens = 1;
  CHECK(static_cast<int>(open_tokenizer(params).prompt_ids(sample.prompt).size()) ==
        generator->generate(sample).prompt_tokens);
}

namespace {

// A SentencePiece-style tokenizer.json as Llama 2 ships it: <unk>, <s>, </s>, the 256 byte tokens, a few
// pieces and the merges that build them.
json sentencepiece_file() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  int next = 259;
  for (const char* piece : {"▁", "a", "b", "c", "é", "▁a", "ab", "▁ab", "▁▁"}) vocab[piece] = next++;
  const json replace_space = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}};
  return {
      {"added_tokens",
       {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
        {{"id", 1}, {"content", "<s>"}, {"special", true}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "▁"}}, replace_space}}}},
      {"pre_tokenizer", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"byte_fallback", true},
        {"fuse_unk", true},
        {"unk_token", "<unk>"},
        {"vocab", vocab},
        {"merges", {"▁ a", "a b", "▁a b", "▁ ▁"}}}}};
}

}  // namespace

TEST_CASE("BPE: the SentencePiece style (Llama 2): prepend per stretch, byte fallback, decoder chain", "[tokenizer]") {
  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  std::ofstream(path) << sentencepiece_file().dump();
  const auto tok = BpeTokenizer::from_file(path, "sp");
  const int space = 259, a = 260, c = 262, e_acute = 263, space_a = 264, space_ab = 266, space_space = 267;
  // "▁ab" by rank (▁a, then ▁a+b); "c" is a piece; "€" is not, so it falls back to its three bytes.
  CHECK(tok.encode("ab c€") == std::vector<int>{space_ab, space, c, 3 + 0xE2, 3 + 0x82, 3 + 0xAC});
  // Each stretch between added tokens gets its own "▁"; two spaces merge into "▁▁".
  CHECK(tok.encode("<s>a</s>  é") == std::vector<int>{1, space_a, 2, space_space, space, e_acute});
  CHECK(tok.encode("") == std::vector<int>{});
  // Decoding: specials left out, "▁" back to spaces, the bytes fused into "€", one leading space stripped.
  CHECK(tok.decode({1, space_ab, space, c, 3 + 0xE2, 3 + 0x82, 3 + 0xAC, 2}) == "ab c€");
  CHECK(tok.decode({a, 3 + 0xE2, 3 + 0x82}) == "a\xEF\xBF\xBD\xEF\xBF\xBD");  // not UTF-8: U+FFFD per byte
  for (const std::string text : {"abc ab", " leading", "a  b\nc", "€ é ab"})
    CHECK(tok.decode(tok.encode(text)) == text);
}

TEST_CASE("BPE: SentencePiece-style files it cannot run fail naming the field", "[tokenizer]") {
  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  const auto expect_error = [&](const std::function<void(json&)>& edit, const std::string& what) {
    json doc = sentencepiece_file();
    edit(doc);
    std::ofstream(path) << doc.dump();
    CHECK_THROWS_WITH(BpeTokenizer::from_file(path, "t"), Contains(path) && Contains(what));
  };
  expect_error([](json& d) { d["pre_tokenizer"] = {{"type", "Metaspace"}}; }, "pre_tokenizer: null");
  expect_error(
      [](json& d) {
        d["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}};
      },
      "normalizer.normalizers[1]");
  expect_error([](json& d) { d["normalizer"] = {{"type", "NFKC"}}; }, "normalizer.normalizers[0]");
  expect_error([](json& d) { d["decoder"]["decoders"].erase(1); }, "decoder: a ByteFallback step");
  expect_error([](json& d) { std::swap(d["decoder"]["decoders"][2], d["decoder"]["decoders"][3]); },
               "decoder.decoders[2]: Strip after a Fuse step");
  expect_error([](json& d) { d["model"]["unk_token"] = "<nope>"; }, "model.unk_token");
}

TEST_CASE("NFC: equals Python's unicodedata on every decomposing or combining code point and on random mixes",
          "[tokenizer][unicode]") {
  // tests/fixtures/make_nfc_cases.py writes the cases from the Unicode version of model/unicode_tables.cpp.
  const json fixture = json::parse(std::ifstream(source_tree() / "tests/fixtures/nfc_cases.json"));
  const auto& cases = fixture.at("cases");
  REQUIRE(cases.size() > 6000);
  int changed = 0;
  for (const json& c : cases) {
    const auto text = c.at(0).get<std::string>(), expected = c.at(1).get<std::string>();
    INFO("text " << json(text).dump());
    CHECK(nfc(text) == expected);
    changed += text != expected;
  }
  CHECK(changed > 2000);  // the cases exercise decomposition, reordering and composition, not only identity
  CHECK(nfc("ok \xff\xfe e\xcc\x81") == "ok \xff\xfe \xc3\xa9");  // bytes that are not UTF-8 pass through
}
