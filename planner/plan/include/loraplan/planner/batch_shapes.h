#pragma once

#include <cstdint>
#include <vector>

#include "loraplan/planner/cost_model.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::planner {

// A micro-batch shape a dataset's epoch has: B sequences of T (padded) tokens, `count` times.
struct ShapeCount {
  int64_t micro_batch = 0;  // B
  int64_t seq_len = 0;      // T
  int64_t count = 0;        // micro-batches of this shape in the epoch
  int64_t tokens = 0;       // real (unpadded) tokens over those micro-batches
};

// The configuration `c` with one shape's B and T (everything else as it is; the rotary tables and
// masks stay those of c's T, which covers every shape).
TrainConfig with_shape(const TrainConfig& c, const ShapeCount& s);

// The estimate of every shape (the frontier of a dataset's shapes: the candidates for the peak)
// and which one peaks highest; ties go to the first.
struct ShapeEstimates {
  std::vector<Estimate> estimates;  // one per shape, in order
  size_t worst = 0;
};
ShapeEstimates estimate_shapes(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d,
                               const std::vector<ShapeCount>& shapes);

// What a run over all these shapes peaks at: each phase's peak is its highest over the shapes, and
// the peak the highest shape's (the rest of the estimate is the worst shape's).
Estimate combined(const ShapeEstimates& e);

// Predicted time of an epoch of these shapes (every shape's micro-batches, the optimizer once per
// grad_accum of them) and its throughput in real tokens per second.
struct EpochCost {
  double epoch_s = 0;
  double tokens_per_s = 0;  // real tokens / epoch_s
  int64_t micro_batches = 0;
  int64_t tokens = 0;
};
EpochCost epoch_cost(const ModelDesc& m, const TrainConfig& c, const Rates& r,
                     const std::vector<ShapeCount>& epoch);

}  // namespace loraplan::planner
