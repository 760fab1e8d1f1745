#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace loraplan::data {

// Bytes of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
inline int utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view text);

// `text` with every ill-formed subsequence replaced by U+FFFD, one per maximal subpart (the
// WHATWG and Unicode "substitution of maximal subparts" rule, as Rust's from_utf8_lossy and
// JavaScript's TextDecoder do): what Hugging Face tokenizers see of the same bytes.
std::string to_valid_utf8(std::string_view text);

// Appends code point `cp` as UTF-8.
void append_utf8(std::string& out, char32_t cp);

// The code point at `text[i]` (valid UTF-8) and its byte length.
char32_t decode_utf8(std::string_view text, size_t i, int* length);

}  // namespace loraplan::data
