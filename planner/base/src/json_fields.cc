#include "loraplan/planner/json_fields.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "loraplan/planner/errors.h"

namespace loraplan::planner {

using nlohmann::json;

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(st) && !std::filesystem::is_regular_file(st)) {
    throw InputError(located(
        path, 0,
        std::filesystem::is_directory(st) ? "is a folder, not a file" : "is not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(located(path, 0, std::string("cannot open: ") + std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

// Where the nesting of `text` first goes past kMaxJsonDepth (brackets outside strings), or npos.
size_t too_deep_at(const std::string& text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string::npos;
}

}  // namespace

json parse_json(const std::string& text, const std::string& where, const std::string& what) {
  if (const size_t at = too_deep_at(text); at != std::string::npos) {
    const int line = 1 + static_cast<int>(std::count(
                             text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
    throw InputError(located(
        where, line, what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"));
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep line and column.
    const std::string msg = e.what();
    const size_t tag_end = msg.find("] ");
    throw InputError(located(where, 0,
                             "malformed " + what + ": " +
                                 (tag_end == std::string::npos ? msg : msg.substr(tag_end + 2))));
  }
}

std::string json_excerpt(const json& value) {
  constexpr size_t kLongest = 40;
  auto count = [](size_t n, const char* one) {
    return std::to_string(n) + " " + one + (n == 1 ? "" : "s");
  };
  switch (value.type()) {
    case json::value_t::object:
      return "an object of " + count(value.size(), "field");
    case json::value_t::array: {
      // A short list of scalars reads best as itself: [1, "x"]; anything else by its size.
      const bool flat =
          value.size() <= 8 && std::all_of(value.begin(), value.end(), [&](const json& v) {
            return v.is_primitive() &&
                   (!v.is_string() || v.get_ref<const std::string&>().size() <= kLongest);
          });
      return flat ? value.dump(-1, ' ', false, json::error_handler_t::replace)
                  : "an array of " + count(value.size(), "item");
    }
    case json::value_t::string: {
      const std::string& s = value.get_ref<const std::string&>();
      if (s.size() <= kLongest) return value.dump(-1, ' ', false, json::error_handler_t::replace);
      size_t cut = kLongest;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
        --cut;  // whole UTF-8 characters
      return json(s.substr(0, cut)).dump(-1, ' ', false, json::error_handler_t::replace) + "... (" +
             std::to_string(s.size()) + " bytes)";
    }
    case json::value_t::number_float:
      return std::isfinite(value.get<double>()) ? value.dump()
                                                : "a number beyond 64-bit floating point";
    default:
      return value.dump();
  }
}

const json* JsonFields::find(const char* key) const {
  auto it = object_.find(key);
  return it == object_.end() || it->is_null() ? nullptr : &*it;
}

bool JsonFields::has(const char* key) const { return find(key) != nullptr; }

bool JsonFields::is_null(const char* key) const {
  auto it = object_.find(key);
  return it != object_.end() && it->is_null();
}

void JsonFields::fail(const char* key, const std::string& requirement) const {
  const json* v = find(key);
  const std::string message =
      "\"" + path_ + key + "\" " +
      (v ? requirement + ", got " + json_excerpt(*v) : "is missing (" + requirement + ")");
  throw InputError(located(where_, v ? json_key_line(text_, key, from_) : 0, message));
}

int64_t JsonFields::integer(const char* key, int64_t min, const char* requirement) const {
  const json* v = find(key);
  if (!v || !v->is_number_integer() || v->get<int64_t>() < min) fail(key, requirement);
  return v->get<int64_t>();
}

int64_t JsonFields::positive_int(const char* key) const {
  return integer(key, 1, "must be a positive integer");
}

int64_t JsonFields::positive_int_up_to(const char* key, int64_t max) const {
  const std::string requirement = "must be a positive integer up to " + std::to_string(max);
  const int64_t v = integer(key, 1, requirement.c_str());
  if (v > max) fail(key, requirement);
  return v;
}

int64_t JsonFields::positive_int_or(const char* key, int64_t fallback) const {
  return has(key) ? positive_int(key) : fallback;
}

double JsonFields::number(const char* key, double min) const {
  const json* v = find(key);
  if (!v || !v->is_number() || !std::isfinite(v->get<double>()) || v->get<double>() < min) {
    fail(key,
         min == 0 ? "must be a non-negative number" : "must be a number >= " + std::to_string(min));
  }
  return v->get<double>();
}

double JsonFields::number_or(const char* key, double fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number() || !std::isfinite(v->get<double>())) fail(key, "must be a finite number");
  return v->get<double>();
}

bool JsonFields::boolean(const char* key) const {
  const json* v = find(key);
  if (!v || !v->is_boolean()) fail(key, "must be true or false");
  return v->get<bool>();
}

bool JsonFields::bool_or(const char* key, bool fallback) const {
  return has(key) ? boolean(key) : fallback;
}

std::string JsonFields::string(const char* key) const {
  const json* v = find(key);
  if (!v || !v->is_string() || v->get<std::string>().empty())
    fail(key, "must be a non-empty string");
  return v->get<std::string>();
}

std::string JsonFields::string_or(const char* key, const std::string& fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_string()) fail(key, "must be a string");
  return v->get<std::string>();
}

JsonFields JsonFields::object(const char* key) const {
  const json* v = find(key);
  if (!v || !v->is_object()) fail(key, "must be an object");
  JsonFields nested(*v, text_, where_);
  nested.path_ = path_ + key + ".";
  const size_t at = json_key_offset(text_, key, from_);
  nested.from_ = at == std::string::npos ? from_ : at;
  return nested;
}

const json& JsonFields::array(const char* key) const {
  const json* v = find(key);
  if (!v || !v->is_array()) fail(key, "must be an array");
  return *v;
}

namespace {

// Where element `index` of the array that opens after `from` (just past its key) begins in
// `text`; npos when not found. One pass over strings and brackets, no recursion.
size_t array_element_offset(const std::string& text, size_t from, size_t index) {
  const size_t open = text.find_first_not_of(" \t\r\n:", from);
  if (open == std::string::npos || text[open] != '[') return std::string::npos;
  size_t depth = 0, element = 0;
  bool at_start = true;
  for (size_t i = open + 1; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (depth == 0 && at_start) {
      if (c == ']') return std::string::npos;
      if (element == index) return i;
      at_start = false;
    }
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (depth == 0) return std::string::npos;
      --depth;
    } else if (c == ',' && depth == 0) {
      ++element;
      at_start = true;
    }
  }
  return std::string::npos;
}

}  // namespace

JsonFields JsonFields::element(const char* key, size_t index) const {
  const json& list = array(key);
  const size_t key_at = json_key_offset(text_, key, from_);
  const size_t at = key_at == std::string::npos
                        ? std::string::npos
                        : array_element_offset(text_, key_at + std::strlen(key) + 2, index);
  const std::string name = path_ + key + "[" + std::to_string(index) + "]";
  if (index >= list.size() || !list[index].is_object()) {
    const int line =
        at == std::string::npos
            ? 0
            : 1 + static_cast<int>(std::count(
                      text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
    throw InputError(
        located(where_, line,
                "\"" + name + "\" must be an object" +
                    (index < list.size() ? ", got " + json_excerpt(list[index]) : "")));
  }
  JsonFields nested(list[index], text_, where_);
  nested.path_ = name + ".";
  nested.from_ = at == std::string::npos ? from_ : at;
  return nested;
}

}  // namespace loraplan::planner
