#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace loraplan::planner {

// "a,b,,c" split at ',' -> {"a", "b", "c"}: the pieces between separators, empty ones dropped.
std::vector<std::string> split_nonempty(std::string_view text, char separator);

// {"a", "b"} joined by ", " -> "a, b".
std::string join(const std::vector<std::string>& items, std::string_view separator);

// The `name` of each row of a knob table (optimizers, weight formats, export targets) joined by
// `separator`: "adamw|adamw-8bit|...", a flag's choices as its help says them.
template <typename Rows>
std::string join_names(const Rows& rows, std::string_view separator) {
  std::string out;
  for (const auto& r : rows)
    out += (out.empty() ? "" : std::string(separator)) + std::string(r.name);
  return out;
}

}  // namespace loraplan::planner
