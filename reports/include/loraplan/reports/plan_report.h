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
// plan --format html: the chosen plan, the runner-ups and the candidates over the limit as bars of
// peak (against the budget and the limit) and of tokens/s, what stopped a bigger choice, and the
// chosen plan's predicted timeline.
std::string plan_html(const planner::PlanInputs& p, const std::string& command);

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
// sweep --format html: a heatmap of GPU x sequence length (does it fit; the best plan's tokens/s,
// micro-batch and peak in each cell), the table below it.
std::string sweep_html(const std::string& model, const std::vector<SweepRow>& rows,
                       const std::string& command);

}  // namespace loraplan::reports
