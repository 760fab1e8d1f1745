// The chat template's tokens, as @huggingface/jinja's lexer (src/lexer.ts) makes them with the
// options Hugging Face renders with (trim_blocks, lstrip_blocks): the same preprocessing, the same
// whitespace control and the same reading of `-` and `+` as unary or binary.
#include <algorithm>
#include <array>

#include "jinja.h"
#include "loraplan/data/utf8.h"

namespace loraplan::data::jinja {

namespace {

// Template text with the template line of every byte, so that errors after the preprocessing
// (which removes newlines) still name the line as written.
struct Source {
  std::string text;
  std::vector<int> line;

  // The text without the bytes where drop[i].
  Source without(const std::vector<bool>& drop) const {
    Source out;
    out.text.reserve(text.size());
    out.line.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      if (drop[i]) continue;
      out.text += text[i];
      out.line.push_back(line[i]);
    }
    return out;
  }
};

// Bytes of the JavaScript whitespace character at s[i]; 0 when there is none.
size_t space_at(const std::string& s, size_t i) {
  if (i >= s.size()) return 0;
  int len = 1;
  const char32_t c = decode_utf8(s, i, &len);
  return js_space(c) ? static_cast<size_t>(len) : 0;
}

bool line_start(const std::string& s, size_t i) {
  if (i == 0) return true;
  if (s[i - 1] == '\n' || s[i - 1] == '\r') return true;
  // U+2028 and U+2029 end lines too for JavaScript's multiline ^.
  return i >= 3 && s.compare(i - 3, 2, "\xE2\x80") == 0 &&
         (s[i - 1] == '\xA8' || s[i - 1] == '\xA9');
}

// lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1".
Source lstrip_blocks(const Source& src) {
  const std::string& s = src.text;
  std::vector<bool> drop(s.size(), false);
  for (size_t p = 0; p < s.size(); ++p) {
    if (!line_start(s, p)) continue;
    size_t q = p;
    while (q < s.size() && (s[q] == ' ' || s[q] == '\t')) ++q;
    if (q + 1 < s.size() && s[q] == '{' &&
        (s[q + 1] == '#' || s[q + 1] == '%' || s[q + 1] == '-')) {
      for (size_t i = p; i < q; ++i) drop[i] = true;
    }
  }
  return src.without(drop);
}

// trim_blocks: /([#%-]})\n/g -> "$1".
Source trim_blocks(const Source& src) {
  const std::string& s = src.text;
  std::vector<bool> drop(s.size(), false);
  for (size_t i = 0; i + 2 < s.size();) {
    const char c = s[i];
    if ((c == '#' || c == '%' || c == '-') && s[i + 1] == '}' && s[i + 2] == '\n') {
      drop[i + 2] = true;
      i += 3;
    } else {
      ++i;
    }
  }
  return src.without(drop);
}

size_t skip_spaces(const std::string& s, size_t i) {
  while (size_t n = space_at(s, i)) i += n;
  return i;
}

// transformers' {% generation %} / {% endgeneration %} tags (assistant masks) render nothing:
// /{%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/g, honouring - on either side.
Source drop_generation_tags(const Source& src) {
  const std::string& s = src.text;
  std::vector<bool> drop(s.size(), false);
  size_t last = 0;  // where the previous match ended
  for (size_t i = s.find("{%"); i != std::string::npos; i = s.find("{%", i)) {
    size_t j = i + 2;
    const bool lstrip = j < s.size() && s[j] == '-';
    if (lstrip) ++j;
    j = skip_spaces(s, j);
    if (s.compare(j, 13, "endgeneration") == 0) {
      j += 13;
    } else if (s.compare(j, 10, "generation") == 0) {
      j += 10;
    } else {
      i += 2;
      continue;
    }
    j = skip_spaces(s, j);
    const bool rstrip = j < s.size() && s[j] == '-';
    if (rstrip) ++j;
    if (s.compare(j, 2, "%}") != 0) {
      i += 2;
      continue;
    }
    const size_t tag_end = j + 2, match_end = skip_spaces(s, tag_end);
    size_t begin = i;
    while (lstrip && begin > last) {
      // Step back over one whitespace character (JavaScript checks UTF-16 units; the whitespace
      // characters are whole code points either way).
      size_t k = begin - 1;
      while (k > last && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
      if (space_at(s, k) != begin - k) break;
      begin = k;
    }
    for (size_t k = begin; k < (rstrip ? match_end : tag_end); ++k) drop[k] = true;
    last = i = match_end;
  }
  return src.without(drop);
}

Source preprocess(const std::string& template_text) {
  Source src;
  src.text = template_text;
  src.line.resize(template_text.size());
  int line = 1;
  for (size_t i = 0; i < template_text.size(); ++i) {
    src.line[i] = line;
    if (template_text[i] == '\n') ++line;
  }
  if (!src.text.empty() && src.text.back() == '\n') {  // keep_trailing_newline=False
    src.text.pop_back();
    src.line.pop_back();
  }
  return drop_generation_tags(trim_blocks(lstrip_blocks(src)));
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
}
int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The fixed tokens in @huggingface/jinja's order (a longer one before its prefix).
struct Fixed {
  const char* text;
  Tok type;
};
constexpr std::array<Fixed, 29> kFixed = {{
    {"{%", Tok::kOpenStatement},  {"%}", Tok::kCloseStatement},
    {"{{", Tok::kOpenExpression}, {"}}", Tok::kCloseExpression},
    {"(", Tok::kLParen},          {")", Tok::kRParen},
    {"{", Tok::kLBrace},          {"}", Tok::kRBrace},
    {"[", Tok::kLBracket},        {"]", Tok::kRBracket},
    {",", Tok::kComma},           {".", Tok::kDot},
    {":", Tok::kColon},           {"|", Tok::kPipe},
    {"<=", Tok::kOperator},       {">=", Tok::kOperator},
    {"==", Tok::kOperator},       {"!=", Tok::kOperator},
    {"<", Tok::kOperator},        {">", Tok::kOperator},
    {"+", Tok::kOperator},        {"-", Tok::kOperator},
    {"~", Tok::kOperator},        {"**", Tok::kOperator},
    {"*", Tok::kOperator},        {"//", Tok::kOperator},
    {"/", Tok::kOperator},        {"%", Tok::kOperator},
    {"=", Tok::kEquals},
}};

class Lexer {
 public:
  Lexer(Source src, const std::string& where)
      : src_(std::move(src)), s_(src_.text), where_(where) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) step();
    return std::move(tokens_);
  }

 private:
  int line(size_t i) const {
    if (src_.line.empty()) return 1;
    return src_.line[std::min(i, src_.line.size() - 1)];
  }
  [[noreturn]] void error(const std::string& message) const { fail(where_, line(pos_), message); }
  Tok last() const { return tokens_.empty() ? Tok::kText : tokens_.back().type; }
  void push(Tok type, std::string value, size_t at) {
    tokens_.push_back({type, std::move(value), line(at)});
  }

  // {%- and {{- : the text before loses its trailing whitespace (and goes when nothing is left).
  void strip_trailing_whitespace() {
    if (tokens_.empty() || tokens_.back().type != Tok::kText) return;
    std::string& t = tokens_.back().value;
    size_t keep = 0;
    for (size_t i = 0; i < t.size();) {
      const size_t n = space_at(t, i);
      if (n == 0) {
        i += static_cast<size_t>(utf8_sequence_length(static_cast<unsigned char>(t[i])));
        keep = i;
      } else {
        i += n;
      }
    }
    t.resize(keep);
    if (t.empty()) tokens_.pop_back();
  }

  // Text up to the next {%, {{ or {#; true when some was read.
  bool text() {
    const Tok l = last();
    if (!(tokens_.empty() || l == Tok::kCloseStatement || l == Tok::kCloseExpression ||
          l == Tok::kComment)) {
      return false;
    }
    size_t end = pos_;
    for (;;) {
      end = s_.find('{', end);
      if (end == std::string::npos) {
        end = s_.size();
        break;
      }
      const char next = end + 1 < s_.size() ? s_[end + 1] : '\0';
      if (next == '%' || next == '{' || next == '#') break;
      ++end;
    }
    if (end == pos_) return false;
    push(Tok::kText, s_.substr(pos_, end - pos_), pos_);
    pos_ = end;
    return true;
  }

  void comment() {
    const size_t start = pos_;
    pos_ += 2;
    const bool strip_before = pos_ < s_.size() && s_[pos_] == '-';
    if (strip_before) ++pos_;
    const size_t end = s_.find("#}", pos_);
    if (end == std::string::npos) error("a {# comment is never closed with #}");
    std::string body = s_.substr(pos_, end - pos_);
    const bool strip_after = !body.empty() && body.back() == '-';
    if (strip_after) body.pop_back();
    if (strip_before) strip_trailing_whitespace();
    push(Tok::kComment, std::move(body), start);
    pos_ = end + 2;
    if (strip_after) pos_ = skip_spaces(s_, pos_);
  }

  std::string string_literal(char quote) {
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) error("a string literal is never closed");
      const char c = s_[pos_++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) error("a string literal is never closed");
      const char e = s_[pos_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case 'x':
        case 'u':
          append_utf8(out, hex_escape(e == 'x' ? 2 : 4));
          break;
        default:
          error(std::string("unsupported escape \\") + e +
                " in a string literal (jinja2 keeps it, @huggingface/jinja refuses it)");
      }
    }
  }

  // \xHH or \uHHHH (a surrogate pair as two \u escapes).
  char32_t hex_escape(int digits) {
    const auto read = [&] {
      char32_t v = 0;
      for (int i = 0; i < digits; ++i) {
        const int h = pos_ < s_.size() ? hex_value(s_[pos_]) : -1;
        if (h < 0) error("a \\x or \\u escape needs " + std::to_string(digits) + " hex digits");
        v = v * 16 + static_cast<char32_t>(h);
        ++pos_;
      }
      return v;
    };
    const char32_t v = read();
    if (v >= 0xD800 && v <= 0xDBFF && s_.compare(pos_, 2, "\\u") == 0) {
      pos_ += 2;
      const char32_t low = read();
      if (low >= 0xDC00 && low <= 0xDFFF) return 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00);
    }
    if (v >= 0xD800 && v <= 0xDFFF) error("a \\u escape names half of a surrogate pair");
    return v;
  }

  std::string digits() {
    const size_t start = pos_;
    while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  // A number after a unary sign, or the sign alone.
  void signed_number(char sign) {
    const size_t start = pos_++;
    std::string num = digits();
    if (!num.empty() && pos_ + 1 < s_.size() && s_[pos_] == '.' && is_digit(s_[pos_ + 1])) {
      ++pos_;
      num += "." + digits();
    }
    push(num.empty() ? Tok::kUnary : Tok::kNumber, std::string(1, sign) + num, start);
  }

  void step() {
    if (text()) return;
    if (s_[pos_] == '{') {
      const char next = pos_ + 1 < s_.size() ? s_[pos_ + 1] : '\0';
      if (next == '#') return comment();
      if (pos_ + 2 < s_.size() && s_[pos_ + 2] == '-' && (next == '%' || next == '{')) {
        strip_trailing_whitespace();
        push(next == '%' ? Tok::kOpenStatement : Tok::kOpenExpression, next == '%' ? "{%" : "{{",
             pos_);
        if (next == '{') curly_depth_ = 0;
        pos_ += 3;
        return;
      }
    }
    pos_ = skip_spaces(s_, pos_);
    if (pos_ >= s_.size()) error("the template ends inside a {% %} or {{ }} tag");
    const char c = s_[pos_];
    if (c == '-' && pos_ + 2 < s_.size() && s_[pos_ + 2] == '}' &&
        (s_[pos_ + 1] == '%' || s_[pos_ + 1] == '}')) {
      push(s_[pos_ + 1] == '%' ? Tok::kCloseStatement : Tok::kCloseExpression,
           s_[pos_ + 1] == '%' ? "%}" : "}}", pos_);
      pos_ = skip_spaces(s_, pos_ + 3);
      return;
    }
    if (c == '-' || c == '+') {
      const Tok l = last();
      if (tokens_.empty() || l == Tok::kText) error(std::string("unexpected '") + c + "'");
      if (l != Tok::kName && l != Tok::kNumber && l != Tok::kString && l != Tok::kRParen &&
          l != Tok::kRBracket) {
        return signed_number(c);
      }
    }
    for (const Fixed& f : kFixed) {
      const std::string_view t = f.text;
      if (t == "}}" && curly_depth_ > 0) continue;  // the end of a dict literal, not of {{ }}
      if (s_.compare(pos_, t.size(), t) != 0) continue;
      push(f.type, std::string(t), pos_);
      if (f.type == Tok::kOpenExpression) curly_depth_ = 0;
      if (f.type == Tok::kLBrace) ++curly_depth_;
      if (f.type == Tok::kRBrace) --curly_depth_;
      pos_ += t.size();
      return;
    }
    const size_t start = pos_;
    if (c == '\'' || c == '"') {
      ++pos_;
      std::string value = string_literal(c);
      return push(Tok::kString, std::move(value), start);
    }
    if (is_digit(c)) {
      std::string num = digits();
      if (last() != Tok::kDot && pos_ + 1 < s_.size() && s_[pos_] == '.' &&
          is_digit(s_[pos_ + 1])) {
        ++pos_;
        num += "." + digits();
      }
      return push(Tok::kNumber, std::move(num), start);
    }
    if (is_word(c)) {
      while (pos_ < s_.size() && is_word(s_[pos_])) ++pos_;
      return push(Tok::kName, s_.substr(start, pos_ - start), start);
    }
    error("unexpected character '" +
          s_.substr(pos_, utf8_sequence_length(static_cast<unsigned char>(c))) + "' in a tag");
  }

  Source src_;
  const std::string& s_;
  const std::string& where_;
  size_t pos_ = 0;
  int curly_depth_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const std::string& where) {
  if (!is_valid_utf8(source)) fail(where, 1, "the template is not UTF-8");
  // jinja2 turns \r\n and \r into \n in the template; @huggingface/jinja keeps them.
  if (const size_t cr = source.find('\r'); cr != std::string::npos) {
    fail(where, 1 + static_cast<int>(std::count(source.begin(), source.begin() + cr, '\n')),
         "a carriage return in the template (jinja2 reads it as a newline, @huggingface/jinja "
         "keeps it)");
  }
  return Lexer(preprocess(source), where).run();
}

}  // namespace loraplan::data::jinja
