#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loraplan/planner/model.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::reports {

struct EstimateView {
  const planner::ModelDesc& model;
  const planner::TrainConfig& config;
  const planner::DeviceModel& device;
  const planner::Estimate& estimate;
  const std::vector<planner::Suggestion>& suggestions;  // empty when it fits
};

// Every knob of the configuration, as plan.json and run reports spell it.
nlohmann::json config_json(const planner::TrainConfig& c);
// One line: "T 1024 x B 1 x accum 8 | nf4+dq | fp16 | LoRA r16 ... ".
std::string config_line(const planner::TrainConfig& c);

std::string estimate_text(const EstimateView& v);
std::string estimate_markdown(const EstimateView& v);
// Keys: peak_bytes, budget_bytes (null without a budget), fits, headroom_bytes, breakdown
// (category -> bytes at the peak, summing to peak_bytes), phases [{name, peak_bytes,
// allocated_bytes}], and the configuration.
nlohmann::json estimate_json(const EstimateView& v);
// One self-contained page: the verdict, the breakdown at the peak as a bar and a table, the
// predicted timeline over the step (stacked by kind, phases labelled, the peak marked, the budget
// drawn) and the phase peaks; `command` goes in the footer.
// `extra`: more of the page (HTML), after the phases: estimate --data's dataset section.
std::string estimate_html(const EstimateView& v, const std::string& command,
                          const std::string& extra = "");

}  // namespace loraplan::reports
