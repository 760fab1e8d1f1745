#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "loraplan/planner/batch_shapes.h"
#include "loraplan/planner/cost_model.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::planner {

// A dataset's micro-batch shapes at one micro-batch size B: the whole epoch's, and the frontier
// among them (the candidates for the peak).
struct DataShapes {
  std::vector<ShapeCount> epoch;
  std::vector<ShapeCount> frontier;
};

// What the search may change. The rest of the configuration stays as given.
struct SearchSpace {
  int64_t target_batch = 8;           // micro-batch x accumulation, exactly
  int64_t margin_bytes = 0;           // the plan's peak stays under budget - margin, where
  double margin_share = 0;            //   margin = margin_bytes + margin_share x budget
  std::vector<QuantOptions> weights;  // allowed frozen-weight formats; empty: as given
  std::vector<Optimizer> optimizers;  // allowed optimizers; empty: as given
  bool search_attention = true;       // eager as well as efficient (on cpu; on cuda it never wins)
  bool search_loss = true;            // chunked as well as full
  bool allow_offload = true;
  // With a dataset (plan --data): its shapes for each micro-batch B the search tries. A plan then
  // fits when its step fits at every frontier shape, and its speed is the epoch's, in real tokens
  // per second over every shape. Unset: every micro-batch is B x T.
  std::function<DataShapes(int64_t micro_batch)> data_shapes;
  int runner_ups = 3;   // plans kept beside the best
  bool explain = true;  // the chosen plan's full estimate and its boundaries
};

// One configuration the search looked at.
struct PlanCandidate {
  TrainConfig config;
  bool fits = false;
  int64_t peak_bytes = 0;  // simulated device peak (at its most frugal when it does not fit)
  StepCost cost;           // predicted time (of the plan as it would run when it fits)
  bool simulated = true;   // false: skipped, its best case was already beaten
  std::string reason;      // why it was not chosen; empty for the chosen plan
};

struct PlanSearch {
  bool found = false;
  int64_t limit_bytes = 0;  // budget - margin
  PlanCandidate chosen;
  Estimate estimate;                      // of the chosen plan (when the space asks to explain)
  ShapeCount worst_shape;                 // with data_shapes: the chosen plan's worst micro-batch
  std::vector<PlanCandidate> runner_ups;  // the next best plans that fit, best first (up to 3)
  std::vector<PlanCandidate> rejected;    // every other candidate, with its reason
  std::vector<std::string> boundaries;    // what stopped the next bigger choice
  int estimates = 0;                      // simulations run
};

// The margin a space leaves under a budget.
int64_t margin_for(const SearchSpace& space, int64_t budget_bytes);

// The plan with the highest predicted throughput whose simulated peak (allocator model, CUDA
// context included) stays within the device's budget minus the margin. Searches micro-batch
// (the divisors of the target batch), how many layers to checkpoint (the first k: the peak falls
// as k grows), how many to offload (the first n, once every layer is checkpointed), attention,
// loss chunking, and the allowed weight formats and optimizers. Deterministic.
PlanSearch search_plan(const ModelDesc& m, const TrainConfig& base, const DeviceModel& d,
                       const Rates& r, const SearchSpace& space);

// The best plan for each GPU (budget: its memory) and sequence length, rows GPU-major, searched
// on up to `threads` threads. The space's runner-ups and explanations are left out.
struct SweepCell {
  GpuProfile gpu;
  int64_t seq_len = 0;
  PlanSearch search;
};
std::vector<SweepCell> sweep(const ModelDesc& m, const TrainConfig& base,
                             const std::vector<GpuProfile>& gpus,
                             const std::vector<int64_t>& seq_lens, SearchSpace space, int threads);

// A short label: "B 2 x 4 | checkpoint 12/32 | offload 0 | efficient | loss full | nf4+dq | adamw".
std::string plan_label(const TrainConfig& c);

}  // namespace loraplan::planner
