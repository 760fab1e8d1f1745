#include "loraplan/data/text_rows.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"

namespace loraplan::data {

namespace {

// "the row has "prompt", "completion"" for the error of a missing field.
std::string fields_of(const nlohmann::json& row) {
  std::string names;
  int shown = 0;
  for (auto it = row.begin(); it != row.end() && shown < 6; ++it, ++shown) {
    names += (shown ? ", \"" : "\"") + it.key() + "\"";
  }
  if (row.size() > 6) names += ", ...";
  return names.empty() ? "the row is an empty object" : "the row has " + names;
}

// `where` is "data.jsonl:12" (JSONL) or "data.json: row 12" (a JSON array).
void emit(const nlohmann::json& row, const std::string& where, const std::string& field,
          int64_t index, int64_t line, const std::function<void(const TextRow&)>& callback) {
  if (!row.is_object()) {
    throw InputError(where + ": a row must be a JSON object, got " + planner::json_excerpt(row));
  }
  const auto it = row.find(field);
  if (it == row.end()) {
    throw InputError(where + ": no \"" + field + "\" field (" + fields_of(row) +
                     "; --field names the text field)");
  }
  if (!it->is_string()) {
    throw InputError(where + ": \"" + field + "\" must be a string, got " +
                     planner::json_excerpt(*it));
  }
  callback(TextRow{index, line, it->get_ref<const std::string&>()});
}

}  // namespace

void for_each_text_row(const std::string& path, const std::string& field,
                       const std::function<void(const TextRow&)>& row) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(path + ": is a folder, not a data file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open");
  // A JSON array is read whole; JSONL a line at a time.
  char first = 0;
  while (in.get(first) && std::isspace(static_cast<unsigned char>(first))) {
  }
  in.clear();
  in.seekg(0);
  if (first == '[') {
    const std::string text = planner::read_text_file(path);
    const nlohmann::json rows = planner::parse_json(text, path, "JSON");
    if (!rows.is_array()) throw InputError(path + ": expected a JSON array of rows");
    for (size_t i = 0; i < rows.size(); ++i) {
      emit(rows[i], path + ": row " + std::to_string(i + 1), field, static_cast<int64_t>(i), 0,
           row);
    }
    return;
  }
  std::string text;
  int64_t line = 0, index = 0;
  while (std::getline(in, text)) {
    ++line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line);
    emit(planner::parse_json(text, where, "JSON row"), where, field, index++, line, row);
  }
}

}  // namespace loraplan::data
