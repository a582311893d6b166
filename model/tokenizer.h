// Tokenizers of the model runtime: byte-level (token id = byte value, for the bundled model) and HF
// tokenizer.json byte-level BPE (GPT-2, Llama 3, Qwen2 style). load_tokenizer picks one from a model
// directory: tokenizer.json present -> BPE, else byte-level.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/text.h"
#include "model/pretokenizer.h"

namespace ctxbench::model {

// Ids 0-255 are the bytes; ids from 256 up to vocab_size are special tokens (BOS, EOS, ...), which encode
// never produces and decode leaves out.
class ByteTokenizer final : public Tokenizer {
 public:
  explicit ByteTokenizer(int vocab_size);
  std::string name() const override { return "bytes"; }
  std::vector<int> encode(std::string_view text) const override;
  std::string decode(const std::vector<int>& tokens) const override;

 private:
  int vocab_size_;
};

// BPE from a tokenizer.json, in one of two styles, as HF tokenizers runs them. Added tokens are matched first
// (longest at the earliest position); merges apply lowest rank first (leftmost on ties); decode leaves out
// added tokens marked special.
// - byte-level (GPT-2, Llama 3, Qwen): the rest is split by the pre-tokenizer regex and its bytes are mapped
//   to GPT-2's printable alphabet, after the NFC normalizer when the file has one (Qwen).
// - SentencePiece (Llama 2, Mistral v1: model.byte_fallback true, no pre-tokenizer): each stretch between
//   added tokens is normalized (Prepend "▁", Replace " " -> "▁"), its code points are the initial symbols,
//   and a code point outside the vocabulary becomes its UTF-8 bytes as <0xXX> tokens. decode runs the
//   decoder chain: Replace, ByteFallback (bytes that are not UTF-8 become U+FFFD each), Fuse, Strip.
class BpeTokenizer final : public Tokenizer {
 public:
  // Throws std::runtime_error naming the file and the field when the file is not a byte-level BPE tokenizer.
  static BpeTokenizer from_file(const std::string& path, const std::string& name);

  std::string name() const override { return name_; }
  std::vector<int> encode(std::string_view text) const override;
  // As HF tokenizers with split_special_tokens: added tokens marked special are not matched, the others are.
  std::vector<int> encode_text(std::string_view text) const override;
  std::optional<int> added_token(std::string_view content) const override;
  std::string decode(const std::vector<int>& tokens) const override;
  int vocab_size() const { return static_cast<int>(id_to_token_.size()); }

  struct AddedToken {
    int id = 0;
    std::string content;
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
  };

 private:
  struct Merge {
    int rank;
    int merged;
  };
  struct PairHash {
    std::size_t operator()(std::uint64_t key) const { return std::hash<std::uint64_t>()(key); }
  };

  // One normalizer step of the SentencePiece style: prepend `text`, or replace `from` with `text`.
  struct TextStep {
    bool prepend = false;
    std::string from;
    std::string text;
  };

  static void parse_byte_level(const std::string& path, const nlohmann::json& doc, BpeTokenizer& tok);
  static void parse_sentencepiece(const std::string& path, const nlohmann::json& doc, BpeTokenizer& tok);
  std::vector<int> encode_matching(std::string_view text, bool match_special) const;
  void encode_ordinary(std::string_view text, std::vector<int>& out) const;
  void encode_piece(std::string_view piece, std::vector<int>& out) const;
  void encode_sentencepiece(std::string_view text, std::vector<int>& out) const;
  void merge(std::vector<int> ids, std::vector<int>& out) const;
  std::string decode_sentencepiece(const std::vector<int>& tokens) const;

  std::string name_;
  std::string path_;
  SplitPattern pattern_ = SplitPattern::gpt2;
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
  bool nfc_ = false;
  std::unordered_map<std::string, int> vocab_;
  std::vector<std::string> id_to_token_;  // "" for ids without a token
  std::vector<bool> is_added_, is_special_;
  std::unordered_map<std::uint64_t, Merge, PairHash> merges_;  // (left id << 32 | right id) -> merge
  std::vector<AddedToken> added_;                              // longest content first
  std::array<bool, 256> starts_added_{};                       // first bytes of added tokens
  std::array<int, 256> byte_token_{};                          // id of each single byte's symbol, -1 if none
  // SentencePiece style
  bool sentencepiece_ = false;
  std::vector<TextStep> normalizer_;
  std::vector<TextStep> decode_replacements_;
  std::string strip_content_;  // the Strip decoder: up to strip_start_/strip_stop_ copies off each end
  int strip_start_ = 0;
  int strip_stop_ = 0;
  int unk_id_ = -1;
  bool fuse_unk_ = false;
  std::array<int, 256> fallback_token_{};  // id of <0xXX> for each byte, -1 if none
};

// tokenizer.json in `dir` -> BpeTokenizer named after the directory; otherwise a ByteTokenizer over
// `vocab_size` ids (which must cover the 256 bytes).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, int vocab_size);

}  // namespace ctxbench::model
