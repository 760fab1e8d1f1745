#include "loraplan/planner/token_lines.h"

#include <nlohmann/json.hpp>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"

namespace loraplan::planner {

std::vector<std::vector<int64_t>> parse_token_lines(const std::string& text,
                                                    const std::string& where, int64_t vocab) {
  std::vector<std::vector<int64_t>> out;
  size_t start = 0;
  for (int number = 1; start < text.size(); ++number) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto fail = [&](const std::string& msg) { throw InputError(located(where, number, msg)); };
    nlohmann::json j;
    try {
      j = parse_json(line, where, "line");
    } catch (const InputError&) {
      fail("not a JSON object (expected {\"input_ids\": [...]})");
    }
    if (!j.is_object() || !j.contains("input_ids") || !j["input_ids"].is_array())
      fail("expected {\"input_ids\": [...]}");
    std::vector<int64_t> tokens;
    for (const nlohmann::json& t : j["input_ids"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab) {
        fail("token " + json_excerpt(t) + " is not in [0, " + std::to_string(vocab) + ")");
      }
      tokens.push_back(t.get<int64_t>());
    }
    if (tokens.size() < 2) fail("a sequence needs at least 2 tokens");
    out.push_back(std::move(tokens));
  }
  if (out.empty()) throw InputError(located(where, 0, "no sequences"));
  return out;
}

std::vector<std::vector<int64_t>> read_token_lines(const std::string& path, int64_t vocab) {
  return parse_token_lines(read_text_file(path), path, vocab);
}

}  // namespace loraplan::planner
