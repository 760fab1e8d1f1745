#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace loraplan::planner {

// The whole file as text. Throws InputError "path: cannot open: <reason>".
std::string read_text_file(const std::string& path);

// How deep arrays and objects may nest in any JSON loraplan reads. Real files nest 4 or 5
// levels; the limit keeps every recursive walk (nlohmann's dump, comparisons) shallow.
constexpr int kMaxJsonDepth = 64;

// Parses JSON; throws InputError "where: malformed <what>: parse error at line L, column C: ..."
// or "where:L: <what> nests deeper than 64 levels" (checked before anything is built).
nlohmann::json parse_json(const std::string& text, const std::string& where,
                          const std::string& what = "JSON");

// A value as an error message quotes it: numbers, booleans and short strings as JSON, longer
// strings cut to 40 characters, objects and arrays by kind and size ("an object of 3 fields").
std::string json_excerpt(const nlohmann::json& value);

// Typed access to the fields of one JSON object. Every error names the file, the line that holds
// the field and the field: `config.json:6: "num_hidden_layers" must be a positive integer, got
// "32"`; a field of a nested object by its path ("rope_scaling.factor"). JSON null reads as absent.
// Holds references: the object, text and name must outlive it.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, const std::string& text, const std::string& where)
      : object_(object), text_(text), where_(where) {}

  bool has(const char* key) const;      // present and not null
  bool is_null(const char* key) const;  // present as null: transformers reads None, not the default
  [[noreturn]] void fail(const char* key, const std::string& requirement) const;

  int64_t integer(const char* key, int64_t min, const char* requirement) const;  // required
  int64_t positive_int(const char* key) const;                                   // required
  int64_t positive_int_or(const char* key, int64_t fallback) const;
  int64_t positive_int_up_to(const char* key, int64_t max) const;  // required, in 1..max
  double number(const char* key, double min) const;                // required, finite, >= min
  double number_or(const char* key, double fallback) const;        // finite when present
  bool boolean(const char* key) const;                             // required
  bool bool_or(const char* key, bool fallback) const;
  std::string string(const char* key) const;  // required, non-empty
  std::string string_or(const char* key, const std::string& fallback) const;
  JsonFields object(const char* key) const;  // required nested object; errors name "key.field"
  const nlohmann::json& array(const char* key) const;  // required array
  // Element `index` of the required array `key`, which must be an object; errors name
  // "key[index]" and its fields "key[index].field", at the element's line.
  JsonFields element(const char* key, size_t index) const;

 private:
  const nlohmann::json* find(const char* key) const;

  const nlohmann::json& object_;
  const std::string& text_;
  const std::string& where_;
  std::string path_;  // "outer.inner." for a nested object
  size_t from_ = 0;   // where the nested object's key is in text_: its fields are searched after it
};

}  // namespace loraplan::planner
