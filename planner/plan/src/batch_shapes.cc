#include "loraplan/planner/batch_shapes.h"

#include <algorithm>

namespace loraplan::planner {

TrainConfig with_shape(const TrainConfig& c, const ShapeCount& s) {
  TrainConfig t = c;
  t.table_len = c.tables();  // train builds the tables once, for the run's T
  t.micro_batch = s.micro_batch;
  t.seq_len = s.seq_len;
  return t;
}

ShapeEstimates estimate_shapes(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d,
                               const std::vector<ShapeCount>& shapes) {
  ShapeEstimates out;
  for (size_t i = 0; i < shapes.size(); ++i) {
    out.estimates.push_back(estimate(m, with_shape(c, shapes[i]), d));
    if (out.estimates[i].peak_bytes > out.estimates[out.worst].peak_bytes) out.worst = i;
  }
  return out;
}

Estimate combined(const ShapeEstimates& e) {
  Estimate out = e.estimates.at(e.worst);
  for (const Estimate& other : e.estimates) {
    for (const PhasePeak& p : other.phases) {
      const auto it = std::find_if(out.phases.begin(), out.phases.end(),
                                   [&](const PhasePeak& q) { return q.name == p.name; });
      if (it == out.phases.end()) {
        out.phases.push_back(p);
      } else if (p.peak_bytes > it->peak_bytes) {
        *it = p;
      }
    }
  }
  return out;
}

EpochCost epoch_cost(const ModelDesc& m, const TrainConfig& c, const Rates& r,
                     const std::vector<ShapeCount>& epoch) {
  EpochCost e;
  double optimizer_s = 0;
  for (const ShapeCount& s : epoch) {
    TrainConfig one = with_shape(c, s);
    one.grad_accum = 1;
    const StepCost cost = step_cost(m, one, r);
    e.epoch_s += static_cast<double>(s.count) * (cost.step_s - cost.optimizer_s);
    optimizer_s = cost.optimizer_s;  // the same for every shape: it updates the adapters
    e.micro_batches += s.count;
    e.tokens += s.tokens;
  }
  const int64_t steps = (e.micro_batches + c.grad_accum - 1) / std::max<int64_t>(c.grad_accum, 1);
  e.epoch_s += static_cast<double>(steps) * optimizer_s;
  e.tokens_per_s = e.epoch_s > 0 ? static_cast<double>(e.tokens) / e.epoch_s : 0;
  return e;
}

}  // namespace loraplan::planner
