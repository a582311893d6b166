// Tokenizers and a sample-making shortcut for the text task tests.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/params.h"
#include "core/source_tree.h"
#include "tasks/task.h"

namespace ctxbench::testing {

// One token per byte, like the bundled byte-level model.
class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "test-bytes"; }
  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> out;
    for (const unsigned char c : text) out.push_back(c);
    return out;
  }
  std::string decode(const std::vector<int>& tokens) const override {
    std::string out;
    for (const int t : tokens) out += static_cast<char>(t);
    return out;
  }
};

// Word-level: a run of letters or digits is one token, every other byte is a token of its own. Round trips
// exactly and makes several bytes per token, so code that assumes tokens = bytes fails with it.
class WordTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "test-words"; }
  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> out;
    std::size_t i = 0;
    while (i < text.size()) {
      std::size_t j = i + 1;
      if (std::isalnum(static_cast<unsigned char>(text[i]))) {
        while (j < text.size() && std::isalnum(static_cast<unsigned char>(text[j]))) ++j;
      }
      out.push_back(id(std::string(text.substr(i, j - i))));
      i = j;
    }
    return out;
  }
  std::string decode(const std::vector<int>& tokens) const override {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const int t : tokens) out += pieces_.at(static_cast<std::size_t>(t));
    return out;
  }

 private:
  int id(const std::string& piece) const {
    std::lock_guard lock(mutex_);
    const auto [it, added] = ids_.emplace(piece, static_cast<int>(pieces_.size()));
    if (added) pieces_.push_back(piece);
    return it->second;
  }
  mutable std::mutex mutex_;
  mutable std::map<std::string, int> ids_;
  mutable std::vector<std::string> pieces_;
};

inline const tasks::TaskInfo& task(const std::string& name) {
  return tasks::TaskRegistry::instance().get(name, "test");
}

inline std::vector<TextSample> make_samples(const std::string& name, const Json& given, int length,
                                            const Tokenizer& tokenizer, double depth = 50, std::uint64_t seed = 1) {
  const auto& info = task(name);
  const Json params = resolve_params(info.params, given, "test");
  return info.make_text_samples({params, length, depth, seed}, tokenizer);
}

inline std::string fixture(const std::string& name) {
  return source_tree().string() + "/tests/fixtures/text_tasks/" + name;
}

}  // namespace ctxbench::testing
