#include "regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "loraplan/planner/errors.h"

namespace loraplan::data {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_data* match = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ~Impl() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(match);
    pcre2_code_free(code);
  }
  // Throws for anything but a match or no match (a limit reached): never a silent wrong split.
  int run(std::string_view text, size_t at, uint32_t options) const {
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), at,
                               options | PCRE2_NO_UTF_CHECK, match, context);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw InputError("pre-tokenizer pattern failed on a text of " + std::to_string(text.size()) +
                       " bytes: " + reinterpret_cast<char*>(message));
    }
    return rc;
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
  impl_->match = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  impl_->context = pcre2_match_context_create(nullptr);
  // Backtracking is bounded (a pathological pattern fails loudly instead of hanging); the JIT's
  // stack may grow to 8 MiB, enough for runs of whitespace in long texts.
  pcre2_set_match_limit(impl_->context, 10'000'000);
  if (pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0) {  // else the interpreter runs
    impl_->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(impl_->context, nullptr, impl_->jit_stack);
  }
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<Span> Regex::spans(std::string_view text) const {
  std::vector<Span> out;
  if (text.empty()) return {Span{}};
  size_t at = 0, prev = 0;
  while (at <= text.size()) {
    if (impl_->run(text, at, 0) < 0) break;  // no more matches
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
