#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace loraplan::planner {

// "a,b,,c" split at ',' -> {"a", "b", "c"}: the pieces between separators, empty ones dropped.
std::vector<std::string> split_nonempty(std::string_view text, char separator);

}  // namespace loraplan::planner
