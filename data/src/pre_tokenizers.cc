// Pre-tokenizers: Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Sequence.
#include <utf8proc.h>

#include <algorithm>
#include <functional>

#include "loraplan/data/utf8.h"
#include "parts.h"
#include "regex.h"

namespace loraplan::data {

namespace {

// What Split does with the delimiters it finds (Hugging Face's SplitDelimiterBehavior).
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Range {
  size_t begin, end;
};

// The pieces a behaviour keeps from `spans`, as HF's NormalizedString::split computes them.
std::vector<Range> pieces_of(const std::vector<Span>& spans, Behavior behavior) {
  std::vector<Range> out;
  bool previous = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.matched) out.push_back({s.begin, s.end});
      }
      return out;
    case Behavior::kIsolated:
      for (const Span& s : spans) out.push_back({s.begin, s.end});
      return out;
    case Behavior::kContiguous:
      for (const Span& s : spans) {
        if (!out.empty() && s.matched == previous) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end});
        }
        previous = s.matched;
      }
      return out;
    case Behavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.matched && !previous && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end});
        }
        previous = s.matched;
      }
      return out;
    case Behavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->matched && !previous && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back({it->begin, it->end});
        }
        previous = it->matched;
      }
      std::reverse(out.begin(), out.end());
      return out;
  }
  return out;
}

// Replaces each unfinished piece by the non-empty sub-pieces `split` cuts it into.
void split_pieces(std::vector<Piece>& pieces,
                  const std::function<std::vector<Range>(const std::string&)>& split) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (Piece& p : pieces) {
    if (p.id >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    for (const Range& r : split(p.text)) {
      if (r.end <= r.begin) continue;
      out.push_back({p.text.substr(r.begin, r.end - r.begin), p.at_origin && r.begin == 0, -1});
    }
  }
  pieces = std::move(out);
}

// Spans of the characters for which `is_delimiter` holds, one character each.
std::vector<Span> char_spans(const std::string& text,
                             const std::function<bool(char32_t)>& is_delimiter) {
  std::vector<Span> out;
  size_t prev = 0;
  for (size_t i = 0; i < text.size();) {
    int n = 0;
    const char32_t cp = decode_utf8(text, i, &n);
    if (is_delimiter(cp)) {
      if (i > prev) out.push_back({prev, i, false});
      out.push_back({i, i + n, true});
      prev = i + n;
    }
    i += n;
  }
  if (prev < text.size()) out.push_back({prev, text.size(), false});
  return out;
}

bool is_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool is_numeric(char32_t cp) {  // Rust's char::is_numeric: Nd, Nl, No
  const utf8proc_category_t c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

Behavior read_behavior(const nlohmann::json& j, const Where& where) {
  const std::string& b = string_field(j, "behavior", where);
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  where.fail("unknown split behavior \"" + b + "\"");
}

class Split : public PreTokenizer {
 public:
  Split(std::unique_ptr<Pattern> pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [this](const std::string& text) {
      std::vector<Span> spans = pattern_->spans(text);
      if (invert_) {
        for (Span& s : spans) s.matched = !s.matched;
      }
      return pieces_of(spans, behavior_);
    });
  }

 private:
  std::unique_ptr<Pattern> pattern_;
  Behavior behavior_;
  bool invert_;
};

// GPT-2's pre-tokenizer pattern, used by ByteLevel with use_regex.
const Regex& gpt2_pattern() {
  static const Regex re(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  return re;
}

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (Piece& p : pieces) {
        if (p.id < 0 && !p.text.empty() && p.text[0] != ' ') p.text.insert(0, " ");
      }
    }
    if (use_regex_) {
      split_pieces(pieces, [](const std::string& text) {
        return pieces_of(gpt2_pattern().spans(text), Behavior::kIsolated);
      });
    }
    const std::vector<std::string>& chars = byte_chars();
    for (Piece& p : pieces) {
      if (p.id >= 0) continue;
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (const char c : p.text) mapped += chars[static_cast<unsigned char>(c)];
      p.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_, use_regex_;
};

enum class Prepend { kAlways, kFirst, kNever };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (Piece& p : pieces) {
      if (p.id >= 0) continue;
      std::string replaced;
      replaced.reserve(p.text.size() + 8);
      for (const char c : p.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced.push_back(c);
        }
      }
      const bool starts = replaced.compare(0, replacement_.size(), replacement_) == 0;
      // HF prepends only to a non-empty piece.
      const bool prepend =
          !replaced.empty() && !starts &&
          (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_origin));
      if (prepend) replaced.insert(0, replacement_);
      p.text = std::move(replaced);
    }
    if (split_) {
      split_pieces(pieces, [this](const std::string& text) {
        return pieces_of(literal_spans(text, replacement_), Behavior::kMergedWithNext);
      });
    }
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class CharSplit : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> is_delimiter, Behavior behavior)
      : is_delimiter_(std::move(is_delimiter)), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [this](const std::string& text) {
      return pieces_of(char_spans(text, is_delimiter_), behavior_);
    });
  }

 private:
  std::function<bool(char32_t)> is_delimiter_;
  Behavior behavior_;
};

// HF's Whitespace: the matches of \w+|[^\w\s]+, everything else removed.
class Whitespace : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    static const Regex re(R"(\w+|[^\w\s]+)");
    split_pieces(pieces, [](const std::string& text) {
      std::vector<Span> spans = re.spans(text);
      for (Span& s : spans) s.matched = !s.matched;
      return pieces_of(spans, Behavior::kRemoved);
    });
  }
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

Prepend read_prepend_scheme(const nlohmann::json& j, const Where& where) {
  Prepend scheme = Prepend::kAlways;
  if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
    const std::string& s = string_field(j, "prepend_scheme", where);
    if (s == "always") {
      scheme = Prepend::kAlways;
    } else if (s == "first") {
      scheme = Prepend::kFirst;
    } else if (s == "never") {
      scheme = Prepend::kNever;
    } else {
      where.fail("\"prepend_scheme\" must be always, first or never, got \"" + s + "\"");
    }
  }
  // Older files say add_prefix_space instead; false means never.
  if (!bool_field(j, "add_prefix_space", true, where)) scheme = Prepend::kNever;
  return scheme;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const Where& where) {
  if (j.is_null()) return nullptr;
  if (!j.is_object()) where.fail("must be an object or null");
  const std::string& type = string_field(j, "type", where);
  if (type == "Split") {
    return std::make_unique<Split>(
        read_pattern(j.value("pattern", nlohmann::json()), where.at(".pattern")),
        read_behavior(j, where), bool_field(j, "invert", false, where));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(bool_field(j, "add_prefix_space", true, where),
                                       bool_field(j, "use_regex", true, where));
  }
  if (type == "Metaspace") {
    return std::make_unique<Metaspace>(char_field(j, "replacement", where),
                                       read_prepend_scheme(j, where),
                                       bool_field(j, "split", true, where));
  }
  if (type == "Digits") {
    const bool individual = bool_field(j, "individual_digits", false, where);
    return std::make_unique<CharSplit>(is_numeric,
                                       individual ? Behavior::kIsolated : Behavior::kContiguous);
  }
  if (type == "WhitespaceSplit")
    return std::make_unique<CharSplit>(is_whitespace, Behavior::kRemoved);
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "Sequence") {
    return std::make_unique<Sequence>(
        sequence_parts<PreTokenizer>(j, "pretokenizers", where, make_pre_tokenizer));
  }
  where.fail("unsupported pre-tokenizer \"" + type +
             "\" (loraplan reads Split, ByteLevel, Metaspace, Digits, Whitespace, "
             "WhitespaceSplit and Sequence)");
}

}  // namespace loraplan::data
