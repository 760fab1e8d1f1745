#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loraplan/planner/plan_file.h"

namespace loraplan::reports {

// loraplan plan: the chosen plan, the runner-ups, what stopped the next bigger choice.
std::string plan_text(const planner::PlanInputs& p);
std::string plan_markdown(const planner::PlanInputs& p);
// When nothing fits: the most frugal candidate and what it needs.
std::string no_plan_text(const planner::PlanInputs& p);

// loraplan sweep: one row per GPU and sequence length.
struct SweepRow {
  std::string gpu;
  int64_t memory_bytes = 0;
  int64_t seq_len = 0;
  planner::PlanSearch search;
};
std::string sweep_text(const std::string& model, const std::vector<SweepRow>& rows);
std::string sweep_markdown(const std::string& model, const std::vector<SweepRow>& rows);
nlohmann::json sweep_json(const std::string& model, const std::vector<SweepRow>& rows);

}  // namespace loraplan::reports
