#pragma once

#include <string>

#include "config_flags.h"
#include "loraplan/planner/cost_model.h"
#include "loraplan/planner/plan_search.h"

namespace CLI {
class App;
}

namespace loraplan::cli {

// Flags of plan and sweep: what the search may change and how much room it leaves.
struct SearchFlags {
  int64_t target_batch = 8;
  std::string margin = "5%";
  std::string allow_weights;     // empty: --weights only
  std::string allow_optimizers;  // empty: --optimizer only
  bool no_offload = false;
};

void add_search_flags(CLI::App& sub, SearchFlags& f);

// Throws InputError naming the flag. budget_bytes (0 = several) bounds a margin given as a size.
planner::SearchSpace resolve_search(const SearchFlags& f, const ConfigFlags& config,
                                    int64_t budget_bytes);

// The cost model's rates for the device the flags name.
planner::Rates device_rates(const ConfigFlags& f, const planner::TrainConfig& c);

}  // namespace loraplan::cli
