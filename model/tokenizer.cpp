#include "model/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <stdexcept>
#include <unordered_map>

#include "model/unicode.h"

namespace ctxbench::model {

using Json = nlohmann::json;

// ---- ByteTokenizer ---------------------------------------------------------------------------------

ByteTokenizer::ByteTokenizer(int vocab_size) : vocab_size_(vocab_size) {
  if (vocab_size < 256) {
    throw std::invalid_argument(
        fmt::format("a byte-level tokenizer needs vocab_size >= 256 (the bytes), got {}", vocab_size));
  }
}

std::vector<int> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int> out(text.size());
  std::transform(text.begin(), text.end(), out.begin(), [](char c) { return static_cast<unsigned char>(c); });
  return out;
}

std::string ByteTokenizer::decode(const std::vector<int>& tokens) const {
  std::string out;
  for (const int t : tokens) {
    if (t < 0 || t >= vocab_size_) {
      throw std::invalid_argument(fmt::format("token id {} is outside the vocabulary [0, {})", t, vocab_size_));
    }
    if (t < 256) out.push_back(static_cast<char>(t));
  }
  return out;
}

// ---- BpeTokenizer ----------------------------------------------------------------------------------

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for 256, 257, ...
std::array<char32_t, 256> byte_to_symbol() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

const std::array<char32_t, 256>& symbols() {
  static const auto map = byte_to_symbol();
  return map;
}

std::string symbol_string(unsigned char byte) {
  std::string s;
  append_utf8(s, symbols()[byte]);
  return s;
}

// Inverse of byte_to_symbol over code points, -1 for code points that stand for no byte.
int symbol_byte(char32_t c) {
  static const auto inverse = [] {
    std::vector<int> inv(512, -1);
    for (int b = 0; b < 256; ++b) inv[symbols()[b]] = b;
    return inv;
  }();
  return c < inverse.size() ? inverse[c] : -1;
}

[[noreturn]] void fail(const std::string& path, const std::string& field, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}: {}", path, field, what));
}

std::string type_of(const Json& j) {
  const auto type = j.is_object() ? j.find("type") : j.end();
  return type != j.end() && type->is_string() ? type->get<std::string>() : std::string();
}

// An optional boolean field (`where` names the object in messages).
bool flag(const std::string& path, const Json& object, const std::string& where, const char* key, bool fallback) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(path, where + key, "true or false, got " + it->dump());
  return it->get<bool>();
}

// Ids index tables of this size: far above any real vocabulary (a few hundred thousand), small enough to allocate.
constexpr long long kMaxTokenId = (1 << 22) - 1;

bool valid_id(const Json& id) {
  return id.is_number_integer() && id.get<long long>() >= 0 && id.get<long long>() <= kMaxTokenId;
}

// The steps of a Sequence normalizer or decoder (`list` names its array), or the one step that stands alone.
std::vector<Json> steps_of(const std::string& path, const Json& j, const std::string& field, const char* list) {
  if (j.is_null()) return {};
  if (type_of(j) != "Sequence") return {j};
  if (!j.contains(list) || !j[list].is_array()) fail(path, field + "." + list, "an array");
  return j[list].get<std::vector<Json>>();
}

std::string string_field(const std::string& path, const Json& object, const std::string& where, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) fail(path, where + "." + key, "a string");
  return it->get<std::string>();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// The byte of a "<0xXX>" token (SentencePiece byte fallback), or -1.
int fallback_byte(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  const auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  if (!hex(token[3]) || !hex(token[4])) return -1;
  return std::stoi(token.substr(3, 2), nullptr, 16);
}

// HF's ByteFallback decoder: bytes that form valid UTF-8 as they are, otherwise one U+FFFD per byte.
std::string bytes_as_text(const std::string& bytes) {
  for (std::size_t at = 0; at < bytes.size();) {
    const CodePoint c = decode_utf8(bytes, at);
    if (c.bytes == 1 && c.value >= 0xDC00 && c.value <= 0xDCFF) {
      std::string replaced;
      for (std::size_t i = 0; i < bytes.size(); ++i) replaced += "\xEF\xBF\xBD";
      return replaced;
    }
    at += c.bytes;
  }
  return bytes;
}

std::uint64_t pair_key(int left, int right) {
  return (static_cast<std::uint64_t>(left) << 32) | static_cast<std::uint32_t>(right);
}

}  // namespace

BpeTokenizer BpeTokenizer::from_file(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  if (!in) fail(path, "file", "cannot be read");
  Json doc;
  try {
    doc = Json::parse(in);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    fail(path, "file", std::string("is not valid JSON: ") + e.what());
  }
  BpeTokenizer tok;
  tok.path_ = path;
  tok.name_ = name;

  const Json& model = doc.contains("model") ? doc["model"] : Json();
  if (!model.is_object()) fail(path, "model", "an object (the BPE model)");
  if (model.contains("type") && model["type"] != "BPE") {
    fail(path, "model.type", "\"BPE\" (only byte-level BPE tokenizers are supported), got " + model["type"].dump());
  }
  tok.sentencepiece_ = flag(path, model, "model.", "byte_fallback", false);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "") {
      fail(path, std::string("model.") + key, "null or empty (word affixes are not supported)");
    }
  }
  tok.ignore_merges_ = flag(path, model, "model.", "ignore_merges", false);

  // Vocabulary and added tokens.
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(path, "model.vocab", "an object token -> id");
  int max_id = -1;
  std::unordered_map<int, std::string> token_of;  // two tokens on one id could not both be decoded
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!valid_id(id)) fail(path, "model.vocab." + token, fmt::format("an id in [0, {}]", kMaxTokenId));
    if (const auto [other, added] = token_of.emplace(id.get<int>(), token); !added) {
      fail(path, "model.vocab." + token,
           fmt::format("an id of its own (id {} is also \"{}\")", id.get<int>(), other->second));
    }
    tok.vocab_[token] = id.get<int>();
    max_id = std::max(max_id, id.get<int>());
  }
  const Json added = doc.value("added_tokens", Json::array());
  if (!added.is_array()) fail(path, "added_tokens", "an array");
  for (std::size_t i = 0; i < added.size(); ++i) {
    const Json& a = added[i];
    const std::string where = fmt::format("added_tokens[{}]", i);
    if (!a.is_object() || !a.contains("id") || !valid_id(a["id"]) || !a.contains("content") ||
        !a["content"].is_string() || a["content"].get<std::string>().empty()) {
      fail(path, where, fmt::format("an object with an \"id\" in [0, {}] and a non-empty \"content\"", kMaxTokenId));
    }
    tok.added_.push_back({a["id"].get<int>(), a["content"].get<std::string>(),
                          flag(path, a, where + ".", "special", false), flag(path, a, where + ".", "lstrip", false),
                          flag(path, a, where + ".", "rstrip", false)});
    max_id = std::max(max_id, a["id"].get<int>());
  }
  std::stable_sort(tok.added_.begin(), tok.added_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  tok.id_to_token_.assign(max_id + 1, std::string());
  tok.is_added_.assign(max_id + 1, false);
  tok.is_special_.assign(max_id + 1, false);
  for (const auto& [token, id] : tok.vocab_) tok.id_to_token_[id] = token;
  for (const AddedToken& a : tok.added_) {
    tok.starts_added_[static_cast<unsigned char>(a.content[0])] = true;
    tok.id_to_token_[a.id] = a.content;
    tok.is_added_[a.id] = true;
    tok.is_special_[a.id] = a.special;
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = tok.vocab_.find(symbol_string(static_cast<unsigned char>(b)));
    tok.byte_token_[b] = it == tok.vocab_.end() ? -1 : it->second;
  }

  // Merges: "left right" strings or [left, right] pairs; rank = position.
  const Json merges = model.value("merges", Json::array());
  if (!merges.is_array()) fail(path, "model.merges", "an array");
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& m = merges[rank];
    const std::string where = fmt::format("model.merges[{}]", rank);
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const auto space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        fail(path, where, "\"left right\" (two tokens separated by one space), got " + m.dump());
      }
      left = s.substr(0, space), right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      fail(path, where, "a \"left right\" string or a [left, right] pair, got " + m.dump());
    }
    const auto l = tok.vocab_.find(left), r = tok.vocab_.find(right), lr = tok.vocab_.find(left + right);
    if (l == tok.vocab_.end() || r == tok.vocab_.end() || lr == tok.vocab_.end()) {
      fail(path, where,
           fmt::format("\"{}\", \"{}\" and their merge \"{}\" must all be in model.vocab", left, right, left + right));
    }
    tok.merges_.emplace(pair_key(l->second, r->second), Merge{static_cast<int>(rank), lr->second});
  }

  if (tok.sentencepiece_) {
    parse_sentencepiece(path, doc, tok);
  } else {
    parse_byte_level(path, doc, tok);
  }
  return tok;
}

void BpeTokenizer::parse_byte_level(const std::string& path, const Json& doc, BpeTokenizer& tok) {
  // Normalizer: none, or NFC.
  const Json normalizer = doc.value("normalizer", Json());
  if (!normalizer.is_null() && type_of(normalizer) != "NFC") {
    fail(path, "normalizer", "null or NFC, got " + normalizer.dump());
  }
  tok.nfc_ = !normalizer.is_null();

  // Pre-tokenizer: ByteLevel with its own GPT-2 regex, or Sequence[Split(regex, Isolated), ByteLevel(no regex)].
  const Json pre = doc.value("pre_tokenizer", Json());
  const std::string pre_type = type_of(pre);
  const Json* byte_level = nullptr;
  if (pre_type == "ByteLevel") {
    if (!flag(path, pre, "pre_tokenizer.", "use_regex", true))
      fail(path, "pre_tokenizer.use_regex", "true when ByteLevel stands alone");
    byte_level = &pre;
    tok.pattern_ = SplitPattern::gpt2;
  } else if (pre_type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array() &&
             pre["pretokenizers"].size() == 2 && type_of(pre["pretokenizers"][0]) == "Split" &&
             type_of(pre["pretokenizers"][1]) == "ByteLevel") {
    const Json& split = pre["pretokenizers"][0];
    const std::string regex =
        split.contains("pattern") && split["pattern"].contains("Regex") && split["pattern"]["Regex"].is_string()
            ? split["pattern"]["Regex"].get<std::string>()
            : std::string();
    const auto pattern = recognize_split_pattern(regex);
    if (!pattern) {
      fail(path, "pre_tokenizer.pretokenizers[0].pattern.Regex",
           "the GPT-2, Llama 3 or Qwen2 split regex, got " + Json(regex).dump());
    }
    const auto behavior = split.find("behavior");
    if (behavior == split.end() || *behavior != "Isolated" ||
        flag(path, split, "pre_tokenizer.pretokenizers[0].", "invert", false)) {
      fail(path, "pre_tokenizer.pretokenizers[0]", "behavior \"Isolated\" and invert false");
    }
    byte_level = &pre["pretokenizers"][1];
    if (flag(path, *byte_level, "pre_tokenizer.pretokenizers[1].", "use_regex", true)) {
      fail(path, "pre_tokenizer.pretokenizers[1].use_regex", "false after a Split (one regex only)");
    }
    tok.pattern_ = *pattern;
  } else {
    fail(path, "pre_tokenizer",
         "ByteLevel, or Sequence [Split (regex), ByteLevel] (only byte-level BPE is supported), got " + pre.dump());
  }
  tok.add_prefix_space_ = flag(path, *byte_level, "pre_tokenizer.", "add_prefix_space", false);

  const Json decoder = doc.value("decoder", Json());
  if (!decoder.is_null() && type_of(decoder) != "ByteLevel") {
    fail(path, "decoder", "ByteLevel or null, got " + decoder.dump());
  }
}

void BpeTokenizer::parse_sentencepiece(const std::string& path, const Json& doc, BpeTokenizer& tok) {
  const std::string why = " (a SentencePiece-style tokenizer: model.byte_fallback is true)";
  const Json pre = doc.value("pre_tokenizer", Json());
  if (!pre.is_null()) fail(path, "pre_tokenizer", "null" + why + ", got " + pre.dump());
  const auto steps = steps_of(path, doc.value("normalizer", Json()), "normalizer", "normalizers");
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::string where = fmt::format("normalizer.normalizers[{}]", i);
    const std::string type = type_of(steps[i]);
    if (type == "Prepend") {
      tok.normalizer_.push_back({true, "", string_field(path, steps[i], where, "prepend")});
    } else if (type == "Replace" && steps[i].contains("pattern") && steps[i]["pattern"].contains("String")) {
      tok.normalizer_.push_back({false, string_field(path, steps[i]["pattern"], where + ".pattern", "String"),
                                 string_field(path, steps[i], where, "content")});
    } else {
      fail(path, where, "Prepend, or Replace of a String pattern" + why + ", got " + steps[i].dump());
    }
  }
  const auto decoders = steps_of(path, doc.value("decoder", Json()), "decoder", "decoders");
  bool byte_fallback = false, fused = false;
  for (std::size_t i = 0; i < decoders.size(); ++i) {
    const std::string where = fmt::format("decoder.decoders[{}]", i);
    const Json& d = decoders[i];
    const std::string type = type_of(d);
    if (type == "Replace" && d.contains("pattern") && d["pattern"].contains("String")) {
      tok.decode_replacements_.push_back({false, string_field(path, d["pattern"], where + ".pattern", "String"),
                                          string_field(path, d, where, "content")});
    } else if (type == "Strip") {
      if (!fused) fail(path, where, "Strip after a Fuse step (it strips the whole text)" + why);
      tok.strip_content_ = string_field(path, d, where, "content");
      tok.strip_start_ = d.value("start", 0), tok.strip_stop_ = d.value("stop", 0);
    } else if (type == "ByteFallback" || type == "Fuse") {
      byte_fallback = byte_fallback || type == "ByteFallback";
      fused = fused || type == "Fuse";
    } else {
      fail(path, where, "Replace (a String pattern), ByteFallback, Fuse or Strip" + why + ", got " + d.dump());
    }
  }
  if (!byte_fallback) fail(path, "decoder", "a ByteFallback step" + why);
  const Json& model = doc["model"];
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto it = tok.vocab_.find(model["unk_token"].get<std::string>());
    if (it == tok.vocab_.end()) fail(path, "model.unk_token", "a token of model.vocab");
    tok.unk_id_ = it->second;
  }
  tok.fuse_unk_ = flag(path, model, "model.", "fuse_unk", false);
  for (int b = 0; b < 256; ++b) {
    const auto it = tok.vocab_.find(fmt::format("<0x{:02X}>", b));
    tok.fallback_token_[b] = it == tok.vocab_.end() ? -1 : it->second;
  }
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int>& out) const {
  if (ignore_merges_) {
    std::string word;
    for (const char c : piece) append_utf8(word, symbols()[static_cast<unsigned char>(c)]);
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int> ids(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i) {
    const auto byte = static_cast<unsigned char>(piece[i]);
    if (byte_token_[byte] < 0) {
      throw std::runtime_error(fmt::format("{}: model.vocab has no token for byte 0x{:02X} (symbol \"{}\")", path_,
                                           byte, symbol_string(byte)));
    }
    ids[i] = byte_token_[byte];
  }
  merge(std::move(ids), out);
}

void BpeTokenizer::encode_sentencepiece(std::string_view text, std::vector<int>& out) const {
  if (text.empty()) return;
  std::string normalized(text);
  for (const TextStep& step : normalizer_) {
    normalized = step.prepend ? step.text + normalized : replace_all(std::move(normalized), step.from, step.text);
  }
  std::vector<int> ids;
  const auto push_unknown = [&](std::string_view what) {
    if (unk_id_ < 0) {
      throw std::runtime_error(
          fmt::format("{}: \"{}\" has no token, no <0xXX> byte tokens and no unk_token", path_, std::string(what)));
    }
    if (!fuse_unk_ || ids.empty() || ids.back() != unk_id_) ids.push_back(unk_id_);
  };
  for (std::size_t at = 0; at < normalized.size();) {
    const CodePoint c = decode_utf8(normalized, at);
    const std::string symbol = normalized.substr(at, c.bytes);
    at += c.bytes;
    if (const auto it = vocab_.find(symbol); it != vocab_.end()) {
      ids.push_back(it->second);
      continue;
    }
    const bool all_bytes = std::all_of(symbol.begin(), symbol.end(),
                                       [&](char b) { return fallback_token_[static_cast<unsigned char>(b)] >= 0; });
    if (!all_bytes) {
      push_unknown(symbol);
      continue;
    }
    for (const char b : symbol) ids.push_back(fallback_token_[static_cast<unsigned char>(b)]);
  }
  merge(std::move(ids), out);
}

void BpeTokenizer::merge(std::vector<int> ids, std::vector<int>& out) const {
  // Symbols in a linked list; a heap of candidate merges ordered by (rank, position). Entries go stale when
  // either side has merged since; they are skipped then.
  struct Symbol {
    int id;
    int next;
    int prev;
  };
  std::vector<Symbol> sym(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    sym[i] = {ids[i], i + 1 < ids.size() ? static_cast<int>(i) + 1 : -1, static_cast<int>(i) - 1};
  }
  struct Candidate {
    int rank, left, left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto consider = [&](int left) {
    if (left < 0 || sym[left].next < 0) return;
    const int right_id = sym[sym[left].next].id;
    if (const auto it = merges_.find(pair_key(sym[left].id, right_id)); it != merges_.end()) {
      heap.push({it->second.rank, left, sym[left].id, right_id});
    }
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = sym[c.left];
    if (left.id != c.left_id || left.next < 0 || sym[left.next].id != c.right_id) continue;
    const int right = left.next;
    left.id = merges_.at(pair_key(c.left_id, c.right_id)).merged;
    left.next = sym[right].next;
    if (left.next >= 0) sym[left.next].prev = c.left;
    sym[right].id = -1;
    consider(left.prev);
    consider(c.left);
  }
  for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void BpeTokenizer::encode_ordinary(std::string_view text, std::vector<int>& out) const {
  if (sentencepiece_) return encode_sentencepiece(text, out);
  const std::string normalized = nfc_ ? nfc(text) : std::string();
  for (const std::string_view piece : split_pieces(nfc_ ? normalized : text, pattern_)) encode_piece(piece, out);
}

std::vector<int> BpeTokenizer::encode(std::string_view text) const { return encode_matching(text, true); }

std::vector<int> BpeTokenizer::encode_text(std::string_view text) const { return encode_matching(text, false); }

std::optional<int> BpeTokenizer::added_token(std::string_view content) const {
  for (const AddedToken& a : added_) {
    if (a.content == content) return a.id;
  }
  return std::nullopt;
}

std::vector<int> BpeTokenizer::encode_matching(std::string_view text, bool match_special) const {
  std::string prefixed;
  if (add_prefix_space_ && !text.empty() && text.front() != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  std::vector<int> out;
  std::size_t start = 0;  // beginning of the ordinary text not yet encoded
  for (std::size_t i = 0; i < text.size();) {
    const AddedToken* match = nullptr;
    for (const AddedToken& a : added_) {
      if (!starts_added_[static_cast<unsigned char>(text[i])]) break;
      if ((match_special || !a.special) && text.compare(i, a.content.size(), a.content) == 0) {
        match = &a;
        break;
      }
    }
    if (!match) {
      ++i;
      continue;
    }
    std::size_t before = i, after = i + match->content.size();
    const auto space = [&](std::size_t at) { return text[at] == ' ' || (text[at] >= '\t' && text[at] <= '\r'); };
    if (match->lstrip) {
      while (before > start && space(before - 1)) --before;
    }
    if (match->rstrip) {
      while (after < text.size() && space(after)) ++after;
    }
    encode_ordinary(text.substr(start, before - start), out);
    out.push_back(match->id);
    start = i = after;
  }
  encode_ordinary(text.substr(start), out);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int>& tokens) const {
  for (const int t : tokens) {
    if (t < 0 || t >= static_cast<int>(id_to_token_.size()) || (id_to_token_[t].empty())) {
      throw std::invalid_argument(fmt::format("{}: token id {} is not in the vocabulary", path_, t));
    }
  }
  if (sentencepiece_) return decode_sentencepiece(tokens);
  std::string out;
  for (const int t : tokens) {
    if (is_special_[t]) continue;
    if (is_added_[t]) {
      out += id_to_token_[t];
      continue;
    }
    const std::string& token = id_to_token_[t];
    for (std::size_t at = 0; at < token.size();) {
      const CodePoint c = decode_utf8(token, at);
      const int byte = symbol_byte(c.value);
      if (byte < 0) {
        out.append(token, at, c.bytes);  // not a byte symbol: keep the text as it is
      } else {
        out.push_back(static_cast<char>(byte));
      }
      at += c.bytes;
    }
  }
  return out;
}

// The decoder chain of the SentencePiece style: Replace on each token, ByteFallback, Fuse, then Strip.
std::string BpeTokenizer::decode_sentencepiece(const std::vector<int>& tokens) const {
  std::string out, bytes;
  for (const int t : tokens) {
    if (is_special_[t]) continue;
    const int byte = is_added_[t] ? -1 : fallback_byte(id_to_token_[t]);
    if (byte >= 0) {
      bytes.push_back(static_cast<char>(byte));
      continue;
    }
    out += bytes_as_text(bytes);
    bytes.clear();
    std::string token = id_to_token_[t];
    for (const TextStep& r : decode_replacements_) token = replace_all(std::move(token), r.from, r.text);
    out += token;
  }
  out += bytes_as_text(bytes);
  const std::string& c = strip_content_;
  for (int i = 0; !c.empty() && i < strip_start_ && out.compare(0, c.size(), c) == 0; ++i) out.erase(0, c.size());
  for (int i = 0;
       !c.empty() && i < strip_stop_ && out.size() >= c.size() && out.compare(out.size() - c.size(), c.size(), c) == 0;
       ++i) {
    out.erase(out.size() - c.size());
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, int vocab_size) {
  const std::filesystem::path path = std::filesystem::path(dir) / "tokenizer.json";
  if (!std::filesystem::exists(path)) return std::make_unique<ByteTokenizer>(vocab_size);
  auto folder = std::filesystem::path(dir).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();
  const std::string name = "bpe:" + folder.filename().string();
  auto tok = std::make_unique<BpeTokenizer>(BpeTokenizer::from_file(path.string(), name));
  if (tok->vocab_size() > vocab_size) {
    throw std::runtime_error(fmt::format("{}: ids up to {} exceed the model's vocab_size {}", path.string(),
                                         tok->vocab_size() - 1, vocab_size));
  }
  return tok;
}

}  // namespace ctxbench::model
