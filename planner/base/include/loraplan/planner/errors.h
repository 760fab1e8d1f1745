#pragma once

#include <stdexcept>
#include <string>

namespace loraplan {

// Bad input from the user: a file, a flag, a profile. The CLI prints what() as one line and
// exits with code 2. Messages start with the location: "path:line: ..." or "path: ...".
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "path:line: message" when line > 0, else "path: message".
std::string located(const std::string& path, int line, const std::string& message);

// 1-based line of the first occurrence of "key" (with quotes) in a JSON text, 0 if absent.
// Used to point errors about a field at the line that holds it.
int json_key_line(const std::string& text, const std::string& key, size_t from = 0);
// Where that key's opening quote is, searching from `from`; npos when absent.
size_t json_key_offset(const std::string& text, const std::string& key, size_t from = 0);

}  // namespace loraplan
