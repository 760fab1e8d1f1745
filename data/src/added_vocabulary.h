#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "parts.h"

namespace loraplan::data {

// One entry of tokenizer.json's "added_tokens".
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;  // matched only between non-word characters
  bool lstrip = false;       // swallows the whitespace before it
  bool rstrip = false;       // swallows the whitespace after it
  bool normalized = false;   // matched in the normalized text, not the raw text
  bool special = false;      // skipped by decode(skip_special_tokens)
};

// Finds added tokens in text as Hugging Face's AddedVocabulary does: leftmost-longest matches
// over all tokens of one kind (raw or normalized), then single_word, lstrip and rstrip.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is what to look for; a match reports ids[i].
  AddedTokenMatcher(const std::vector<const AddedToken*>& tokens,
                    const std::vector<std::string>& patterns);

  bool empty() const { return tokens_.empty(); }
  // Cuts each unfinished piece around the tokens found in it.
  void split(std::vector<Piece>& pieces) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                       // index into tokens_
  };
  int32_t child(int32_t node, unsigned char byte) const;
  // The longest token starting at `at`: its index and end, or -1.
  int32_t longest_at(std::string_view text, size_t at, size_t* end) const;
  void split_one(Piece piece, std::vector<Piece>& out) const;

  std::vector<const AddedToken*> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace loraplan::data
