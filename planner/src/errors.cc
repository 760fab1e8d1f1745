#include "loraplan/planner/errors.h"

#include <algorithm>

namespace loraplan {

std::string located(const std::string& path, int line, const std::string& message) {
  if (line > 0) return path + ":" + std::to_string(line) + ": " + message;
  return path + ": " + message;
}

int json_key_line(const std::string& text, const std::string& key) {
  const std::string quoted = "\"" + key + "\"";
  for (size_t pos = text.find(quoted); pos != std::string::npos;
       pos = text.find(quoted, pos + 1)) {
    // A key is followed by a colon; the same text as a value is not.
    size_t after = text.find_first_not_of(" \t\r\n", pos + quoted.size());
    if (after != std::string::npos && text[after] == ':') {
      return 1 + static_cast<int>(std::count(text.begin(), text.begin() + pos, '\n'));
    }
  }
  return 0;
}

}  // namespace loraplan
