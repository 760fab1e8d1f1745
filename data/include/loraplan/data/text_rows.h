#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace loraplan::data {

// One row of a dataset file: where it is and its text.
struct TextRow {
  int64_t index = 0;  // 0-based, in file order
  int64_t line = 0;   // 1-based line of a JSONL file; 0 in a JSON array
  std::string_view text;
};

// Calls `row` for every row of a JSONL file (one object per line; blank lines skipped) or of a
// JSON array of objects, with the string under `field`. Streams JSONL one line at a time.
// Throws InputError "path:line: ..." for a row that is not an object or lacks a string `field`.
void for_each_text_row(const std::string& path, const std::string& field,
                       const std::function<void(const TextRow&)>& row);

}  // namespace loraplan::data
