#include "checkpoints.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "loraplan/data/token_cache.h"
#include "loraplan/planner/content_hash.h"
#include "loraplan/planner/errors.h"
#include "loraplan/reports/table.h"

namespace loraplan::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "loraplan-checkpoint-1";

nlohmann::json read_state(const fs::path& folder) {
  std::ifstream in(folder / "trainer_state.json");
  if (!in) return nlohmann::json();
  return nlohmann::json::parse(in, nullptr, false);
}

// Empty when the folder is a complete checkpoint, else what is wrong with it.
std::string damage(const fs::path& folder) {
  const nlohmann::json s = read_state(folder);
  if (s.is_discarded() || !s.is_object())
    return "trainer_state.json is missing or not JSON (a checkpoint cut short?)";
  if (!s.contains("format") || s["format"] != kFormat)
    return "trainer_state.json is not a " + std::string(kFormat);
  if (!s.contains("files") || !s["files"].is_object() || !s.contains("step") ||
      !s.contains("identity")) {
    return "trainer_state.json lacks files, step or identity";
  }
  for (const auto& [name, want] : s["files"].items()) {
    const fs::path f = folder / name;
    std::error_code ec;
    const auto bytes = fs::file_size(f, ec);
    if (ec) return name + " is missing";
    if (!want.contains("bytes") || !want["bytes"].is_number_integer()) {
      return "trainer_state.json gives no size for " + name;
    }
    if (want["bytes"] != bytes) {
      return name + " has " + reports::with_commas(static_cast<int64_t>(bytes)) +
             " bytes, trainer_state.json says " +
             reports::with_commas(want["bytes"].get<int64_t>());
    }
    if (!want.contains("xxh3_128") || want["xxh3_128"] != planner::file_hash(f.string()))
      return name + " has changed since it was written (its content hash differs)";
  }
  return "";
}

// The first field (a.b.c) whose values differ, with both values; empty when equal.
std::string first_difference(const nlohmann::json& made, const nlohmann::json& now,
                             const std::string& path) {
  if (made.is_object() && now.is_object()) {
    for (const auto& [k, v] : now.items()) {
      const std::string p = path.empty() ? k : path + "." + k;
      if (!made.contains(k)) return p + " is not in the checkpoint; this run has " + v.dump();
      if (std::string d = first_difference(made[k], v, p); !d.empty()) return d;
    }
    for (const auto& [k, v] : made.items()) {
      if (!now.contains(k)) {
        return (path.empty() ? k : path + "." + k) + " is " + v.dump() +
               " in the checkpoint and absent from this run";
      }
    }
    return "";
  }
  if (made == now) return "";
  return path + " is " + made.dump() + " in the checkpoint; this run has " + now.dump();
}

}  // namespace

int64_t checkpoint_step(const std::string& folder) {
  const nlohmann::json s = read_state(folder);
  return s.is_object() && s.contains("step") && s["step"].is_number_integer()
             ? s["step"].get<int64_t>()
             : 0;
}

std::string find_checkpoint(const std::string& dir, const RunIdentity& identity,
                            std::ostream& warn) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError("--resume: " + dir + " is not a folder");
  std::vector<fs::path> candidates;
  if (fs::exists(fs::path(dir) / "trainer_state.json")) {
    candidates.push_back(dir);
  } else {
    const fs::path root = fs::is_directory(fs::path(dir) / "checkpoints")
                              ? fs::path(dir) / "checkpoints"
                              : fs::path(dir);
    for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
      const std::string n = e.path().filename().string();
      if (e.is_directory() && n.rfind("step-", 0) == 0) candidates.push_back(e.path());
    }
    std::sort(candidates.rbegin(), candidates.rend());  // newest first
  }
  if (candidates.empty()) {
    throw InputError("--resume: " + dir +
                     " holds no checkpoint (train writes them with --save-every N, and when "
                     "interrupted, under --out/checkpoints)");
  }
  for (const fs::path& c : candidates) {
    if (const std::string d = damage(c); !d.empty()) {
      warn << "loraplan: warning: --resume: skipping " << c.string() << ": " << d << "\n";
      continue;
    }
    const nlohmann::json made = read_state(c)["identity"];
    if (const std::string d = first_difference(made, identity.fields, ""); !d.empty()) {
      throw InputError("--resume: " + c.string() + " continues another run: " + d);
    }
    return c.string();
  }
  throw InputError("--resume: " + dir + ": every checkpoint is damaged (see the warnings)");
}

}  // namespace loraplan::cli
