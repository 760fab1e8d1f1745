#include "loraplan/planner/errors.h"

#include <algorithm>

namespace loraplan {

std::string located(const std::string& path, int line, const std::string& message) {
  if (line > 0) return path + ":" + std::to_string(line) + ": " + message;
  return path + ": " + message;
}

size_t json_key_offset(const std::string& text, const std::string& key, size_t from) {
  const std::string quoted = "\"" + key + "\"";
  for (size_t pos = text.find(quoted, from); pos != std::string::npos;
       pos = text.find(quoted, pos + 1)) {
    // A key is followed by a colon; the same text as a value is not.
    size_t after = text.find_first_not_of(" \t\r\n", pos + quoted.size());
    if (after != std::string::npos && text[after] == ':') return pos;
  }
  return std::string::npos;
}

int json_key_line(const std::string& text, const std::string& key, size_t from) {
  const size_t pos = json_key_offset(text, key, from);
  if (pos == std::string::npos) return 0;
  return 1 + static_cast<int>(
                 std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

}  // namespace loraplan
