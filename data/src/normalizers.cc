// Normalizers: Unicode forms (utf8proc), Lowercase, Prepend, Replace, Strip and Sequence.
#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "loraplan/data/utf8.h"
#include "parts.h"
#include "regex.h"

namespace loraplan::data {

namespace {

bool is_ascii(const std::string& s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (is_ascii(text)) return;  // every form leaves ASCII as it is
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                            static_cast<utf8proc_ssize_t>(text.size()), &out,
                                            static_cast<utf8proc_option_t>(options_));
    if (n >= 0) text.assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
};

// Rust's char::to_lowercase, one character at a time: utf8proc's simple mapping, plus the one
// character whose lowercase is two (U+0130 -> "i\u0307").
class Lowercase : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      int n = 0;
      const char32_t cp = decode_utf8(text, i, &n);
      if (cp == 0x130) {
        out += "i\xCC\x87";
      } else {
        append_utf8(out,
                    static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
      }
      i += n;
    }
    text = std::move(out);
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

}  // namespace

std::unique_ptr<Pattern> read_pattern(const nlohmann::json& j, const Where& where) {
  auto p = std::make_unique<Pattern>();
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    p->literal = j["String"].get<std::string>();
  } else if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    try {
      p->regex = std::make_unique<Regex>(j["Regex"].get<std::string>());
    } catch (const std::invalid_argument& e) {
      where.fail("pattern does not compile: " + std::string(e.what()));
    }
  } else {
    where.fail("\"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
  }
  return p;
}

std::string replace_all(std::string_view text, const Pattern& pattern, const std::string& with) {
  std::string out;
  out.reserve(text.size());
  for (const Span& s : pattern.spans(text)) {
    if (s.matched) {
      out += with;
    } else {
      out.append(text.substr(s.begin, s.end - s.begin));
    }
  }
  return out;
}

namespace {

class Replace : public Normalizer {
 public:
  Replace(std::unique_ptr<Pattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    text = replace_all(text, *pattern_, content_);
  }

 private:
  std::unique_ptr<Pattern> pattern_;
  std::string content_;
};

bool is_white(char32_t cp) {
  // Rust's char::is_whitespace (White_Space property).
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        int n = 0;
        if (!is_white(decode_utf8(text, begin, &n))) break;
        begin += n;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t k = end - 1;
        while (k > begin && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
        int n = 0;
        if (!is_white(decode_utf8(text, k, &n))) break;
        end = k;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const Where& where) {
  if (j.is_null()) return nullptr;
  if (!j.is_object()) where.fail("must be an object or null");
  const std::string& type = string_field(j, "type", where);
  if (type == "NFC") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (type == "NFKC") {
    return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(string_field(j, "prepend", where));
  if (type == "Replace") {
    return std::make_unique<Replace>(
        read_pattern(j.value("pattern", nlohmann::json()), where.at(".pattern")),
        string_field(j, "content", where));
  }
  if (type == "Strip") {
    return std::make_unique<Strip>(bool_field(j, "strip_left", true, where),
                                   bool_field(j, "strip_right", true, where));
  }
  if (type == "Sequence") {
    return std::make_unique<Sequence>(
        sequence_parts<Normalizer>(j, "normalizers", where, make_normalizer));
  }
  where.fail("unsupported normalizer \"" + type +
             "\" (loraplan reads NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip and "
             "Sequence)");
}

}  // namespace loraplan::data
