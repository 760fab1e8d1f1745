#include "regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

namespace loraplan::data {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_data* match = nullptr;
  ~Impl() {
    pcre2_match_data_free(match);
    pcre2_code_free(code);
  }
};

Regex::Regex(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw std::invalid_argument(std::string(reinterpret_cast<char*>(message)) + " at offset " +
                                std::to_string(offset));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter
  impl_->match = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<Span> Regex::spans(std::string_view text) const {
  std::vector<Span> out;
  if (text.empty()) return {Span{}};
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0, prev = 0;
  while (at <= text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK,
                               impl_->match, nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH (or a resource limit: the rest stays unmatched)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(impl_->match);
    const size_t begin = ov[0], end = ov[1];
    if (end == begin) {  // an empty match: step over one character
      if (begin >= text.size()) break;
      at = begin + 1;
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
      continue;
    }
    if (begin > prev) out.push_back({prev, begin, false});
    out.push_back({begin, end, true});
    prev = at = end;
  }
  if (prev < text.size()) out.push_back({prev, text.size(), false});
  return out;
}

bool Regex::matches_at_start(std::string_view text) const {
  const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, impl_->match, nullptr);
  return rc >= 0;
}

std::vector<Span> literal_spans(std::string_view text, std::string_view literal) {
  std::vector<Span> out;
  if (text.empty()) return {Span{}};
  size_t prev = 0;
  for (size_t at = text.find(literal); at != std::string_view::npos;
       at = text.find(literal, at + literal.size())) {
    if (at > prev) out.push_back({prev, at, false});
    out.push_back({at, at + literal.size(), true});
    prev = at + literal.size();
  }
  if (prev < text.size()) out.push_back({prev, text.size(), false});
  return out;
}

}  // namespace loraplan::data
