#include "loraplan/planner/json_fields.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "loraplan/planner/errors.h"

namespace loraplan::planner {

using nlohmann::json;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(located(path, 0, std::string("cannot open: ") + std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json parse_json(const std::string& text, const std::string& where, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep line and column.
    const std::string msg = e.what();
    const size_t at = msg.find("parse error");
    throw InputError(located(where, 0, "malformed " + what + ": " + msg.substr(at == std::string::npos ? 0 : at)));
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
  const std::string message = "\"" + path_ + key + "\" " +
                              (v ? requirement + ", got " + v->dump() : "is missing (" + requirement + ")");
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

int64_t JsonFields::positive_int_or(const char* key, int64_t fallback) const {
  return has(key) ? positive_int(key) : fallback;
}

double JsonFields::number(const char* key, double min) const {
  const json* v = find(key);
  if (!v || !v->is_number() || v->get<double>() < min) {
    fail(key, min == 0 ? "must be a non-negative number" : "must be a number >= " + std::to_string(min));
  }
  return v->get<double>();
}

double JsonFields::number_or(const char* key, double fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) fail(key, "must be a number");
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
  if (!v || !v->is_string() || v->get<std::string>().empty()) fail(key, "must be a non-empty string");
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

}  // namespace loraplan::planner
