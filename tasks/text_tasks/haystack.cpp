#include "tasks/text_tasks/haystack.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/params.h"
#include "tasks/text_tasks/common.h"

namespace ctxbench::tasks::text {

namespace {

std::string read_corpus(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) throw InputError(fmt::format("haystack {}: not a directory", dir.string()));
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".txt") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::string text;
  for (const auto& file : files) text += read_text_file(file);
  if (text.empty()) throw InputError(fmt::format("haystack {}: no non-empty *.txt file", dir.string()));
  return text;
}

// Back off to the start of a UTF-8 sequence so that a cut never splits a character.
std::size_t utf8_boundary(const std::string& text, std::size_t at) {
  while (at > 0 && at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  return at;
}

// Whether `text` ends with the first bytes of a UTF-8 character whose last bytes are missing.
bool ends_inside_character(const std::string& text) {
  for (std::size_t back = 1; back <= std::min<std::size_t>(4, text.size()); ++back) {
    const auto byte = static_cast<unsigned char>(text[text.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: the character started further back
    const std::size_t length = (byte & 0xE0) == 0xC0 ? 2 : (byte & 0xF0) == 0xE0 ? 3 : (byte & 0xF8) == 0xF0 ? 4 : 1;
    return length > back;
  }
  return false;
}

}  // namespace

void drop_partial_character(const Tokenizer& tokenizer, std::vector<int>& tokens) {
  constexpr std::size_t kTail = 4;  // tokens enough to hold the end of any character
  while (!tokens.empty()) {
    const std::vector<int> tail(tokens.end() - static_cast<std::ptrdiff_t>(std::min(kTail, tokens.size())),
                                tokens.end());
    if (!ends_inside_character(tokenizer.decode(tail))) return;
    tokens.pop_back();
  }
}

const std::string& haystack_text(const std::string& dir) {
  static std::mutex mutex;
  static std::map<std::string, std::string> cache;
  const std::string key = from_source_tree(dir).lexically_normal().string();
  std::lock_guard lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, read_corpus(key)).first;
  return it->second;
}

std::string haystack_slice(const std::string& dir, std::size_t start, std::size_t chars) {
  const std::string& corpus = haystack_text(dir);
  std::string out;
  out.reserve(chars);
  std::size_t at = utf8_boundary(corpus, start % corpus.size());
  while (out.size() < chars) {
    const std::size_t take = std::min(chars - out.size(), corpus.size() - at);
    out.append(corpus, at, take);
    at = (at + take) % corpus.size();
  }
  out.resize(utf8_boundary(out, out.size()));
  return out;
}

std::vector<int> haystack_tokens(const Tokenizer& tokenizer, const std::string& dir, int tokens, std::size_t start) {
  // Encoding a character prefix gives the same leading tokens as encoding the whole corpus; grow the prefix
  // until it has enough tokens (no tokenizer makes fewer tokens than bytes / 16).
  std::size_t chars = 2 * static_cast<std::size_t>(std::max(tokens, 0)) + 256;
  for (;;) {
    auto encoded = tokenizer.encode(haystack_slice(dir, start, chars));
    if (static_cast<int>(encoded.size()) > tokens) {
      encoded.resize(static_cast<std::size_t>(tokens));
      return encoded;
    }
    if (chars > 32 * (static_cast<std::size_t>(tokens) + 1) + 256)
      throw std::runtime_error(fmt::format("tokenizer {} makes too few tokens of the haystack", tokenizer.name()));
    chars *= 2;
  }
}

}  // namespace ctxbench::tasks::text
