#include "loraplan/data/text_rows.h"

#include <cctype>
#include <filesystem>
#include <fstream>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"

namespace loraplan::data {

void for_each_row(const std::string& path,
                  const std::function<void(const nlohmann::json&, const RowPlace&)>& row) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw InputError(path + ": is a folder, not a data file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open");
  char first = 0;
  while (in.get(first) && std::isspace(static_cast<unsigned char>(first))) {
  }
  in.clear();
  in.seekg(0);
  if (first == '[') {  // a JSON array, read whole
    const nlohmann::json rows = planner::parse_json(planner::read_text_file(path), path, "JSON");
    if (!rows.is_array()) throw InputError(path + ": expected a JSON array of rows");
    for (size_t i = 0; i < rows.size(); ++i) {
      row(rows[i],
          RowPlace{static_cast<int64_t>(i), 0, path + ": row " + std::to_string(i + 1), {}});
    }
    return;
  }
  std::string text;
  int64_t line = 0, index = 0;
  while (std::getline(in, text)) {
    ++line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    RowPlace place{index++, line, path + ":" + std::to_string(line), text};
    nlohmann::json parsed;
    try {
      parsed = planner::parse_json(text, place.where, "JSON row");
    } catch (const InputError& e) {
      // parse_json counts lines within the row (always 1); the file's line is in `where`.
      std::string message = e.what();
      const std::string inner = place.where + ":1:";
      if (message.rfind(inner, 0) == 0) message = place.where + ":" + message.substr(inner.size());
      throw InputError(message);
    }
    row(parsed, place);
  }
}

const std::string& text_field(const nlohmann::json& row, const std::string& field,
                              const std::string& where) {
  if (!row.is_object()) {
    throw InputError(where + ": a row must be a JSON object, got " + planner::json_excerpt(row));
  }
  const auto it = row.find(field);
  if (it == row.end()) {
    std::string names;
    int shown = 0;
    for (auto f = row.begin(); f != row.end() && shown < 6; ++f, ++shown) {
      names += (shown ? ", \"" : "\"") + f.key() + "\"";
    }
    if (row.size() > 6) names += ", ...";
    throw InputError(
        where + ": no \"" + field + "\" field (" +
        (names.empty() ? std::string("the row is an empty object") : "the row has " + names) +
        "; --field names the text field)");
  }
  if (!it->is_string()) {
    throw InputError(where + ": \"" + field + "\" must be a string, got " +
                     planner::json_excerpt(*it));
  }
  return it->get_ref<const std::string&>();
}

void for_each_text_row(const std::string& path, const std::string& field,
                       const std::function<void(const TextRow&)>& row) {
  for_each_row(path, [&](const nlohmann::json& j, const RowPlace& place) {
    row(TextRow{place.index, place.line, text_field(j, field, place.where)});
  });
}

}  // namespace loraplan::data
