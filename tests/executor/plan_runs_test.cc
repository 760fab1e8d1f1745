// Plans chosen by the search, run by the executor under the same budget: none runs out of memory.
#include <gtest/gtest.h>

#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_search.h"
#include "trainer.h"

namespace loraplan::executor {
namespace {

struct Case {
  const char* model;
  const char* budget;
  int64_t seq_len;
};

class ChosenPlan : public ::testing::TestWithParam<Case> {};

TEST_P(ChosenPlan, RunsWithinItsBudget) {
  const Case& k = GetParam();
  TrainRequest r;
  r.model = planner::load_model(k.model);
  planner::TrainConfig base;
  base.seq_len = k.seq_len;
  base.compute = planner::DType::kF32;
  base.device = planner::Device::kCpu;
  base.lora_targets = planner::parse_lora_targets("all-linear", r.model, "--lora-targets");
  base.checkpointed.assign(r.model.layers, false);
  base.offloaded.assign(r.model.layers, false);
  const planner::DeviceModel d = planner::cpu_device(planner::parse_size(k.budget, "budget"));
  planner::SearchSpace space;
  space.margin_share = 0.05;
  const planner::PlanSearch s =
      planner::search_plan(r.model, base, d, planner::cpu_rates(1), space);
  ASSERT_TRUE(s.found) << k.model << " " << k.budget;
  r.config = s.chosen.config;
  r.steps = 2;
  r.budget_bytes = d.budget_bytes;
  const RunReport rep = run_training(r);
  EXPECT_FALSE(rep.out_of_memory) << planner::plan_label(r.config) << ": " << rep.error;
  EXPECT_LE(rep.peak_bytes, d.budget_bytes);
  // The search had to give something up: the budget is below the unconstrained plan's peak.
  EXPECT_GT(s.rejected.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Tiny, ChosenPlan,
                         ::testing::Values(Case{"tiny-llama", "2MiB", 64},
                                           Case{"tiny-llama", "3MiB", 64},
                                           Case{"tiny-llama", "4MiB", 128},
                                           Case{"tiny-phi3", "4MiB", 64},
                                           Case{"tiny-gemma2", "6MiB", 64}),
                         [](const auto& info) {
                           std::string name = std::string(info.param.model) + "_" +
                                              info.param.budget + "_T" +
                                              std::to_string(info.param.seq_len);
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace loraplan::executor
