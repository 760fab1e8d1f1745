#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/summary.h"

namespace loraplan::reports {

struct InspectView {
  const planner::ModelDesc& model;
  const std::vector<planner::TensorSpec>& tensors;
  const planner::ModelSummary& summary;
  bool list_tensors = false;  // one row per tensor after the summary
};

std::string inspect_text(const InspectView& v);
std::string inspect_markdown(const InspectView& v);
// One object; "total_params" is the exact integer count.
nlohmann::json inspect_json(const InspectView& v);

}  // namespace loraplan::reports
