#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace loraplan::data {

// Where a row of a dataset file is.
struct RowPlace {
  int64_t index = 0;  // 0-based, in file order (blank lines not counted)
  int64_t line = 0;   // 1-based line of a JSONL file; 0 in a JSON array
  std::string where;  // "data.jsonl:12" or "data.json: row 12", for errors
  // The row's JSON text in a JSONL file (valid while the callback runs); empty in a JSON array.
  // Readers that need the order of an object's keys (chat templates) parse it again.
  std::string_view text;
};

// Calls `row` for every row of a JSONL file (one JSON value per line, blank lines skipped,
// streamed a line at a time) or of a JSON array (read whole). Throws InputError for a file that
// cannot be read or a line that is not JSON ("data.jsonl:12: malformed JSON row: ...").
void for_each_row(const std::string& path,
                  const std::function<void(const nlohmann::json&, const RowPlace&)>& row);

// The string under `field` of a row; InputError "where: ..." when the row is not an object, lacks
// the field (naming the fields it has) or holds something else there.
const std::string& text_field(const nlohmann::json& row, const std::string& field,
                              const std::string& where);

// Rows' text, for the readers that take one field of every row (`tokenize --data`).
struct TextRow {
  int64_t index = 0;
  int64_t line = 0;
  std::string_view text;
};
void for_each_text_row(const std::string& path, const std::string& field,
                       const std::function<void(const TextRow&)>& row);

}  // namespace loraplan::data
