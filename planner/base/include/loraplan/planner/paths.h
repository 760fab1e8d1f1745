#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace loraplan::planner {

// A file that a model file names (an index's shard, ONNX external data), as a path inside the
// model's folder `dir`; nullopt when `entry` is empty, absolute or climbs out of `dir` ("..").
// Symbolic links inside the folder are followed when the file is opened: the Hugging Face
// cache's snapshots/<rev>/x -> ../../blobs/<hash> links are how that cache lays files out.
std::optional<std::filesystem::path> path_inside(const std::filesystem::path& dir,
                                                 const std::string& entry);

}  // namespace loraplan::planner
