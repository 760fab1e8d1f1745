// The values of a chat template and the text functions it applies to them, computed the way
// @huggingface/jinja computes them (JavaScript strings) and checked against what jinja2 (Python
// strings) gives: where the two differ, std::invalid_argument says why and nothing is rendered.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "jinja.h"
#include "loraplan/data/utf8.h"

namespace loraplan::data::jinja {

Value Value::none() {
  Value v;
  v.kind = Kind::kNone;
  return v;
}
Value Value::of(bool b) {
  Value v;
  v.kind = Kind::kBool;
  v.boolean = b;
  return v;
}
Value Value::of(int64_t i) {
  Value v;
  v.kind = Kind::kInt;
  v.integer = i;
  return v;
}
Value Value::of(double d) {
  Value v;
  v.kind = Kind::kFloat;
  v.real = d;
  return v;
}
Value Value::of(std::string s) {
  Value v;
  v.kind = Kind::kString;
  v.text = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::of(List l) {
  Value v;
  v.kind = Kind::kList;
  v.list = std::make_shared<const List>(std::move(l));
  return v;
}

const Value* Dict::find(const std::string& key) const {
  const auto it = index.find(key);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

void Dict::add(std::string key, Value v) {
  if (const auto it = index.find(key); it != index.end()) {
    entries[it->second].second = std::move(v);  // a repeated key keeps its first place
    return;
  }
  index.emplace(key, entries.size());
  entries.emplace_back(std::move(key), std::move(v));
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "none";
    case Kind::kBool:
      return "boolean";
    case Kind::kInt:
      return "integer";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "string";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "namespace";
    case Kind::kLoop:
      return "loop";
    case Kind::kFunction:
      return "function";
  }
  return "value";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return v.boolean;
    case Kind::kInt:
      return v.integer != 0;
    case Kind::kFloat:
      return v.real != 0 && !std::isnan(v.real);
    case Kind::kString:
      return !v.str().empty();
    case Kind::kList:
      return !v.list->empty();
    case Kind::kDict:
      return !v.dict->entries.empty();
    default:
      return true;
  }
}

bool js_space(char32_t c) {
  if (c <= 32) return c == 32 || (c >= 9 && c <= 13);
  return c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

namespace {

// Python's str.isspace().
bool py_space(char32_t c) {
  if (c >= 0x1C && c <= 0x1F) return true;
  if (c == 0x85) return true;
  return c != 0xFEFF && js_space(c);
}

struct CodePoint {
  char32_t c;
  size_t begin, end;  // bytes
};

std::vector<CodePoint> decode(const std::string& s) {
  std::vector<CodePoint> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    int len = 1;
    const char32_t c = decode_utf8(s, i, &len);
    out.push_back({c, i, i + static_cast<size_t>(len)});
    i += static_cast<size_t>(len);
  }
  return out;
}

template <class Strips>
std::string strip_where(const std::string& s, bool left, bool right, Strips strips) {
  const std::vector<CodePoint> cps = decode(s);
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strips(cps[b].c)) ++b;
  }
  if (right) {
    while (e > b && strips(cps[e - 1].c)) --e;
  }
  if (b == e) return "";
  return s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin);
}

bool has_non_bmp(const std::string& s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0xF0) return true;
  }
  return false;
}

void need_ascii(const std::string& s, const char* what) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      throw std::invalid_argument(std::string(what) +
                                  " of text that is not ASCII (JavaScript's and Python's Unicode "
                                  "case tables are not held to agree)");
    }
  }
}

bool ascii_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char to_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }
char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Shortest round-trip digits, without an exponent.
std::string fixed(double d) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  return std::string(buf, r.ptr);
}

std::string format_float(const Value& v, const char* what) {
  const double d = v.real;
  if (v.ambiguous && v.kind == Kind::kInt) {
    throw std::invalid_argument(std::string(what) +
                                " of an integer past 2^53 (JavaScript rounds it, Python does not)");
  }
  if (v.ambiguous) {
    throw std::invalid_argument(std::string(what) +
                                " of a number the data writes with a zero fraction (JavaScript "
                                "reads 2.0 as the integer 2, Python as the float 2.0)");
  }
  if (!std::isfinite(d)) throw std::invalid_argument(std::string(what) + " of an infinite float");
  const bool integral = d == std::floor(d);
  if (integral ? std::fabs(d) >= 1e16 : std::fabs(d) < 1e-4) {
    throw std::invalid_argument(std::string(what) + " of the float " + fixed(d) +
                                " (JavaScript and Python write it with different exponents)");
  }
  std::string out = fixed(d);
  if (integral) out += ".0";
  return out;
}

std::string format_number(const Value& v, const char* what) {
  if (v.kind == Kind::kInt && !v.ambiguous) return std::to_string(v.integer);
  return format_float(v, what);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// A string for an error message: quoted, escaped, its first 40 bytes.
std::string excerpt(const std::string& s) {
  std::string head = s.substr(0, 40);
  while (!head.empty() && !is_valid_utf8(head)) head.pop_back();
  return nlohmann::json(head).dump() + (head.size() < s.size() ? "..." : "");
}

}  // namespace

std::string strip(const std::string& s, const std::string* chars, bool left, bool right) {
  // @huggingface/jinja's strip/lstrip/rstrip ignore their argument and strip JavaScript's
  // whitespace; jinja2 strips the characters given, or Python's whitespace.
  const std::string js = strip_where(s, left, right, js_space);
  std::string py;
  if (chars == nullptr) {
    py = strip_where(s, left, right, py_space);
  } else {
    std::vector<char32_t> set;
    for (const CodePoint& cp : decode(*chars)) set.push_back(cp.c);
    py = strip_where(s, left, right,
                     [&](char32_t c) { return std::find(set.begin(), set.end(), c) != set.end(); });
  }
  if (js != py) {
    throw std::invalid_argument(
        "stripping gives " + excerpt(py) + " in jinja2 but " + excerpt(js) +
        " in @huggingface/jinja" +
        (chars ? " (which ignores the characters given and strips whitespace)"
               : " (their whitespace differs: U+FEFF, U+001C..U+001F, U+0085)"));
  }
  return js;
}

std::vector<std::string> split(const std::string& s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep == nullptr) {
    const std::vector<CodePoint> cps = decode(s);
    for (const CodePoint& cp : cps) {
      if (js_space(cp.c) != py_space(cp.c)) {
        throw std::invalid_argument(
            "split() on whitespace of a string with U+FEFF, U+001C..U+001F or U+0085: "
            "JavaScript's and Python's whitespace differ there");
      }
    }
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && js_space(cps[i].c)) ++i;
      if (i == cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        out.push_back(s.substr(cps[i].begin));
        break;
      }
      const size_t start = i;
      while (i < cps.size() && !js_space(cps[i].c)) ++i;
      out.push_back(s.substr(cps[start].begin, cps[i - 1].end - cps[start].begin));
    }
    return out;
  }
  if (sep->empty()) throw std::invalid_argument("split() with an empty separator");
  size_t from = 0;
  for (;;) {
    const size_t at = maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit
                          ? std::string::npos
                          : s.find(*sep, from);
    if (at == std::string::npos) {
      out.push_back(s.substr(from));
      return out;
    }
    out.push_back(s.substr(from, at - from));
    from = at + sep->size();
  }
}

std::string replace(const std::string& s, const std::string& old_text, const std::string& new_text,
                    int64_t count) {
  if (count == 0) return s;
  std::string out;
  int64_t done = 0;
  const auto more = [&] { return count < 0 || done < count; };
  if (old_text.empty()) {  // between every two code points and at both ends
    for (const CodePoint& cp : decode(s)) {
      if (more()) {
        out += new_text;
        ++done;
      }
      out.append(s, cp.begin, cp.end - cp.begin);
    }
    if (more()) out += new_text;
    return out;
  }
  size_t from = 0;
  for (size_t at; more() && (at = s.find(old_text, from)) != std::string::npos; ++done) {
    out.append(s, from, at - from);
    out += new_text;
    from = at + old_text.size();
  }
  out.append(s, from, std::string::npos);
  return out;
}

std::string upper(const std::string& s) {
  need_ascii(s, "upper()");
  std::string out = s;
  for (char& c : out) c = to_upper(c);
  return out;
}

std::string lower(const std::string& s) {
  need_ascii(s, "lower()");
  std::string out = s;
  for (char& c : out) c = to_lower(c);
  return out;
}

std::string title(const std::string& s) {
  need_ascii(s, "title()");
  // JavaScript: /\b\w/g upper-cased; Python: a letter after a letter lower-cased, else upper.
  std::string js = s, py = s;
  for (size_t i = 0; i < s.size(); ++i) {
    if (ascii_word(s[i]) && (i == 0 || !ascii_word(s[i - 1]))) js[i] = to_upper(s[i]);
    if (ascii_letter(s[i])) {
      py[i] = i > 0 && ascii_letter(s[i - 1]) ? to_lower(s[i]) : to_upper(s[i]);
    }
  }
  if (js != py) {
    throw std::invalid_argument("title() of '" + s + "': @huggingface/jinja gives '" + js +
                                "', jinja2 '" + py + "'");
  }
  return js;
}

std::string capitalize(const std::string& s) {
  need_ascii(s, "capitalize()");
  std::string js = s, py = lower(s);
  if (!s.empty()) js[0] = py[0] = to_upper(s[0]);
  if (js != py) {
    throw std::invalid_argument("capitalize() of '" + s + "': @huggingface/jinja keeps the case " +
                                "of the rest, jinja2 lowers it");
  }
  return js;
}

int64_t length(const std::string& s) {
  if (has_non_bmp(s)) {
    throw std::invalid_argument(
        "the length of a string with characters beyond U+FFFF (JavaScript counts UTF-16 units, "
        "Python code points)");
  }
  return static_cast<int64_t>(decode(s).size());
}

bool char_at(const std::string& s, int64_t i, std::string& out) {
  if (has_non_bmp(s)) {
    throw std::invalid_argument(
        "indexing a string with characters beyond U+FFFF (JavaScript counts UTF-16 units, "
        "Python code points)");
  }
  const std::vector<CodePoint> cps = decode(s);
  const int64_t n = static_cast<int64_t>(cps.size());
  if (i < 0) i += n;
  if (i < 0 || i >= n) return false;
  const CodePoint& cp = cps[static_cast<size_t>(i)];
  out = s.substr(cp.begin, cp.end - cp.begin);
  return true;
}

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (const CodePoint& cp : decode(s)) out.push_back(s.substr(cp.begin, cp.end - cp.begin));
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  if (needle.size() <= 16) return haystack.find(needle) != std::string_view::npos;
  // Knuth-Morris-Pratt: linear whatever the text (find() is quadratic on some inputs).
  std::vector<size_t> fail(needle.size() + 1, 0);
  for (size_t i = 1, k = 0; i < needle.size(); ++i) {
    while (k > 0 && needle[i] != needle[k]) k = fail[k];
    if (needle[i] == needle[k]) ++k;
    fail[i + 1] = k;
  }
  for (size_t i = 0, k = 0; i < haystack.size(); ++i) {
    while (k > 0 && haystack[i] != needle[k]) k = fail[k];
    if (haystack[i] == needle[k]) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

std::string to_text(const Value& v) {
  switch (v.kind) {
    case Kind::kString:
      return v.str();
    case Kind::kUndefined:
      return "";
    case Kind::kInt:
    case Kind::kFloat:
      return format_number(v, "writing");
    case Kind::kNone:
      throw std::invalid_argument(
          "writing none (jinja2 writes 'None', @huggingface/jinja nothing)");
    case Kind::kBool:
      throw std::invalid_argument(
          "writing a boolean (jinja2 writes 'True', @huggingface/jinja 'true')");
    default:
      throw std::invalid_argument(std::string("writing a ") + kind_name(v.kind) +
                                  " as text (jinja2 writes Python's repr, @huggingface/jinja "
                                  "JSON); use | tojson");
  }
}

std::string to_json(const Value& v, int indent, int depth) {
  if (depth > 256) throw std::invalid_argument("tojson of a value nested past 256 levels");
  const std::string pad = indent > 0 ? "\n" + std::string(size_t(indent) * size_t(depth), ' ') : "";
  const std::string child_pad = indent > 0 ? pad + std::string(size_t(indent), ' ') : "";
  const std::string sep = indent > 0 ? "," : ", ";
  switch (v.kind) {
    case Kind::kNone:
      return "null";
    case Kind::kBool:
      return v.boolean ? "true" : "false";
    case Kind::kInt:
      return format_number(v, "tojson");
    case Kind::kString:
      return json_string(v.str());
    case Kind::kFloat:
      if (v.real == std::floor(v.real)) {
        throw std::invalid_argument(
            "tojson of a float with no fraction (JSON.stringify writes 2.0 as 2, json.dumps as "
            "2.0)");
      }
      return format_float(v, "tojson");
    case Kind::kList: {
      if (v.list->empty()) return "[]";
      std::string out = "[";
      for (size_t i = 0; i < v.list->size(); ++i) {
        out += (i ? sep : "") + child_pad + to_json((*v.list)[i], indent, depth + 1);
      }
      return out + pad + "]";
    }
    case Kind::kDict: {
      if (v.dict->entries.empty()) return "{}";
      if (v.dict->order_lost && v.dict->entries.size() > 1) {
        throw std::invalid_argument(
            "tojson of an object whose key order is not known (rows of a JSON array file are read "
            "with sorted keys, and JavaScript moves keys like \"2\" first)");
      }
      std::string out = "{";
      for (size_t i = 0; i < v.dict->entries.size(); ++i) {
        const auto& [key, value] = v.dict->entries[i];
        out += (i ? sep : "") + child_pad + json_string(key) + ": " +
               to_json(value, indent, depth + 1);
      }
      return out + pad + "}";
    }
    case Kind::kUndefined:
      throw std::invalid_argument(
          "tojson of an undefined value (jinja2 fails, @huggingface/jinja writes null)");
    default:
      throw std::invalid_argument(std::string("tojson of a ") + kind_name(v.kind));
  }
}

}  // namespace loraplan::data::jinja
