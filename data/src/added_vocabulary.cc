#include "added_vocabulary.h"

#include <utf8proc.h>

#include <algorithm>

#include "loraplan/data/utf8.h"

namespace loraplan::data {

namespace {

// Rust regex's \w: letters, marks, decimal digits, connector punctuation.
bool is_word_char(char32_t cp) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return cp == 0x200C || cp == 0x200D;
  }
}

bool is_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

size_t previous_char(std::string_view text, size_t end) {
  size_t k = end - 1;
  while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
  return k;
}

bool ends_with_word(std::string_view text) {
  if (text.empty()) return false;
  int n = 0;
  return is_word_char(decode_utf8(text, previous_char(text, text.size()), &n));
}

bool starts_with_word(std::string_view text) {
  if (text.empty()) return false;
  int n = 0;
  return is_word_char(decode_utf8(text, 0, &n));
}

// Where the whitespace that ends `text[0, end)` begins.
size_t trailing_space_begin(std::string_view text, size_t end) {
  while (end > 0) {
    const size_t k = previous_char(text, end);
    int n = 0;
    if (!is_space(decode_utf8(text, k, &n))) break;
    end = k;
  }
  return end;
}

// Where the whitespace that starts at `begin` ends.
size_t leading_space_end(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    int n = 0;
    if (!is_space(decode_utf8(text, begin, &n))) break;
    begin += n;
  }
  return begin;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<const AddedToken*>& tokens,
                                     const std::vector<std::string>& patterns)
    : tokens_(tokens), nodes_(1) {
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::string& p = patterns[t];
    if (p.empty()) continue;
    first_byte_[static_cast<unsigned char>(p[0])] = true;
    int32_t node = 0;
    for (const char c : p) {
      const auto byte = static_cast<unsigned char>(c);
      int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& kids = nodes_[node].children;
        kids.insert(std::lower_bound(kids.begin(), kids.end(), std::make_pair(byte, int32_t{0})),
                    {byte, next});
      }
      node = next;
    }
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int32_t>(t);
  }
}

int32_t AddedTokenMatcher::child(int32_t node, unsigned char byte) const {
  const auto& kids = nodes_[node].children;
  const auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(byte, int32_t{0}));
  return it != kids.end() && it->first == byte ? it->second : -1;
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, size_t at, size_t* end) const {
  int32_t found = -1;
  int32_t node = 0;
  for (size_t i = at; i < text.size(); ++i) {
    node = child(node, static_cast<unsigned char>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) {
      found = nodes_[node].token;
      *end = i + 1;
    }
  }
  return found;
}

void AddedTokenMatcher::split(std::vector<Piece>& pieces) const {
  if (empty()) return;
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& p : pieces) {
    if (p.id >= 0) {
      out.push_back(std::move(p));
    } else {
      split_one(std::move(p), out);
    }
  }
  pieces = std::move(out);
}

void AddedTokenMatcher::split_one(Piece piece, std::vector<Piece>& out) const {
  const std::string_view text = piece.text;
  const auto emit_text = [&](size_t begin, size_t end) {
    if (end > begin) {
      out.push_back(
          {std::string(text.substr(begin, end - begin)), piece.at_origin && begin == 0, -1});
    }
  };
  size_t done = 0;  // text before this is emitted
  for (size_t at = 0; at < text.size();) {
    size_t stop = 0;
    const int32_t t =
        first_byte_[static_cast<unsigned char>(text[at])] ? longest_at(text, at, &stop) : -1;
    if (t < 0) {
      ++at;
      continue;
    }
    const AddedToken& token = *tokens_[t];
    size_t start = at;
    at = stop;  // the search goes on after this match even when it is discarded
    if (token.single_word && ((start > 0 && ends_with_word(text.substr(0, start))) ||
                              (stop < text.size() && starts_with_word(text.substr(stop))))) {
      continue;
    }
    if (token.lstrip) start = std::max(trailing_space_begin(text, start), done);
    if (token.rstrip) stop = leading_space_end(text, stop);
    emit_text(done, start);
    out.push_back(
        {std::string(text.substr(start, stop - start)), piece.at_origin && start == 0, token.id});
    done = at = stop;
  }
  emit_text(done, text.size());
}

}  // namespace loraplan::data
