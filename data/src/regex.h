#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loraplan::data {

// A span of a string and whether a pattern matched it; a string's spans cover it in order.
struct Span {
  size_t begin = 0;  // bytes
  size_t end = 0;    // bytes, exclusive
  bool matched = false;
};

// A compiled pattern: PCRE2 with UTF and Unicode properties (\s, \w, \p{L} as Oniguruma reads
// them in Hugging Face's tokenizers) and JIT when the platform has it. Not for concurrent use of
// one object from several threads.
class Regex {
 public:
  // Throws std::invalid_argument "<why> at offset N" when the pattern does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Matched and unmatched spans covering `text` (valid UTF-8), in order; empty matches are
  // skipped. An empty text gives one empty unmatched span. Throws InputError when PCRE2 gives up
  // (its backtracking limit), rather than split the text wrongly.
  std::vector<Span> spans(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Spans of `text` split around every occurrence of `literal` (non-empty).
std::vector<Span> literal_spans(std::string_view text, std::string_view literal);

// A pattern as tokenizer.json writes one: {"String": " "} (a literal) or {"Regex": "\\s+"}.
struct Pattern {
  std::string literal;
  std::unique_ptr<Regex> regex;  // set for a Regex pattern

  std::vector<Span> spans(std::string_view text) const {
    if (regex) return regex->spans(text);
    if (literal.empty()) return {Span{0, text.size(), false}};
    return literal_spans(text, literal);
  }
};

}  // namespace loraplan::data
