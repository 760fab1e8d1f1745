#pragma once
// train's side of checkpoints (docs/training.md): what identifies a run, and which checkpoint
// `--resume DIR` continues from. The executor writes and reads the folders.

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace loraplan::cli {

// What must be equal for a checkpoint to continue a run: everything that changes the math of the
// steps (model, weights, configuration, schedule, seed, data and its batching). The data files
// are compared by content, not by path.
struct RunIdentity {
  nlohmann::ordered_json fields;
  std::string text() const { return fields.dump(); }
};

// The checkpoint `--resume DIR` names: DIR itself (a step-NNNNNN folder), or the newest complete
// one in DIR/checkpoints (a run's --out) or in DIR. A damaged one (a file missing, cut short or
// changed) is skipped with a warning on `warn`, naming what is wrong; its identity must equal
// `identity`, else InputError naming the first field that differs. Returns the folder.
std::string find_checkpoint(const std::string& dir, const RunIdentity& identity,
                            std::ostream& warn);

// The step a checkpoint folder holds (its trainer_state.json), for messages.
int64_t checkpoint_step(const std::string& folder);

}  // namespace loraplan::cli
