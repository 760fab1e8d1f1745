#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "loraplan/planner/cost_model.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/plan_search.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::planner {

// plan.json, version 1 (docs/plan-schema.md).
constexpr int kPlanVersion = 1;

struct PlanInputs {
  std::string model_reference;  // what --model named: a profile or a path
  const ModelDesc& model;
  const DeviceModel& device;
  const Rates& rates;
  const SearchSpace& space;
  const PlanSearch& search;  // found
};

// The whole plan; the same inputs give the same text byte for byte.
nlohmann::ordered_json plan_json(const PlanInputs& p);

// The configuration read back from a plan, every field checked.
struct PlanFile {
  std::string model_reference;
  ModelDesc model;  // loaded from the reference and checked against the plan's description
  TrainConfig config;
  Device device = Device::kCuda;
  std::string gpu;           // GPU profile or size; empty on cpu
  int64_t budget_bytes = 0;  // 0: none
  int64_t predicted_peak_bytes = 0;
  nlohmann::json prediction;  // as written
};

// Reads and validates plan.json; errors name the file, the line and the field:
// `plan.json:14: "micro_batch" must be a positive integer, got 0`.
PlanFile read_plan(const std::string& path);

// The configuration as plan.json spells it ("config").
nlohmann::ordered_json plan_config_json(const TrainConfig& c);

}  // namespace loraplan::planner
