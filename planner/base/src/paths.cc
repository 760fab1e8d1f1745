#include "loraplan/planner/paths.h"

namespace loraplan::planner {

std::optional<std::filesystem::path> path_inside(const std::filesystem::path& dir,
                                                 const std::string& entry) {
  const std::filesystem::path relative = std::filesystem::path(entry).lexically_normal();
  if (entry.empty() || entry.find('\0') != std::string::npos || relative.has_root_path())
    return std::nullopt;
  const auto first = relative.begin();
  if (first == relative.end() || *first == ".." || *first == ".") return std::nullopt;
  return dir / relative;
}

}  // namespace loraplan::planner
