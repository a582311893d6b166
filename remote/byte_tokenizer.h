// One token per byte: how the remote engine measures lengths, since a server's tokenizer is not available
// locally. Context lengths of remote cells are therefore bytes (about 4 per token for English BPE
// tokenizers); the server's own counts are stored next to them when it reports usage.
#pragma once

#include "core/text.h"

namespace ctxbench::remote {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "bytes"; }
  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> out;
    out.reserve(text.size());
    for (const char c : text) out.push_back(static_cast<unsigned char>(c));
    return out;
  }
  std::string decode(const std::vector<int>& tokens) const override {
    std::string out;
    out.reserve(tokens.size());
    for (const int t : tokens) out += static_cast<char>(t);
    return out;
  }
};

}  // namespace ctxbench::remote
