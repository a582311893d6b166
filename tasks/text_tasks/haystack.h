// Haystacks for needle tasks: every *.txt file of a directory (the bundled public-domain books by default,
// or any user corpus), concatenated in sorted file-name order and repeated as often as a context needs, as
// gkamradt's read_context_files does. Lengths are in the caller's tokenizer's tokens.
#pragma once

#include <string>
#include <vector>

#include "core/text.h"

namespace ctxbench::tasks::text {

inline constexpr const char* kDefaultHaystack = "datasets/haystack";

// The corpus of `dir` (relative paths are from the source tree), read once and cached. Throws InputError
// when the directory is missing or holds no *.txt file.
const std::string& haystack_text(const std::string& dir);

// The first `tokens` tokens of the corpus read from character `start` on (wrapping around, so the corpus
// repeats): gkamradt's read_context_files followed by encode_and_trim.
std::vector<int> haystack_tokens(const Tokenizer& tokenizer, const std::string& dir, int tokens, std::size_t start = 0);

// Drops the last tokens while they end inside a UTF-8 character, so that a haystack cut in tokens decodes to
// whole characters: the prompt stays valid text (the originals' Python decode would put U+FFFD there instead).
void drop_partial_character(const Tokenizer& tokenizer, std::vector<int>& tokens);

// `chars` characters of the corpus from `start` on, wrapping around. Cut back to a UTF-8 boundary.
std::string haystack_slice(const std::string& dir, std::size_t start, std::size_t chars);

}  // namespace ctxbench::tasks::text
