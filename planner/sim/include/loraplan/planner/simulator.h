#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/schedule.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::planner {

struct PhasePeak {
  std::string name;             // "fwd L3", "loss", "bwd L3", "optim"
  int64_t peak_bytes = 0;       // live tensor bytes (no allocator rounding)
  int64_t allocated_bytes = 0;  // device allocator's allocated bytes (rounded blocks)
};

// Replaying a schedule without an allocator: the no-fragmentation lower bound.
struct Replay {
  int64_t peak_bytes = 0;           // most live bytes at any event
  int32_t peak_event = 0;           // index of the event that reached it (first, if several)
  int32_t peak_phase = 0;           // index into Schedule::phases
  CategoryBytes at_peak{};          // live bytes per category at that event
  int64_t resident_bytes = 0;       // live bytes when the step ends (held between steps)
  std::vector<int64_t> phase_peak;  // [phases] most live bytes within each phase, from its start
};
Replay replay(const Schedule& s);

// The device the step runs on, as the simulator models it.
struct DeviceModel {
  Device device = Device::kCuda;
  int64_t budget_bytes = 0;          // memory the run may use; 0 = no budget (cpu)
  int64_t cuda_context_bytes = 0;    // outside the caching allocator
  int64_t gemm_workspace_bytes = 0;  // cuBLAS workspace, inside it
  std::string name;                  // "rtx-3060-laptop-6gb", "6GB", "cpu"
};

// --gpu/--budget/--device resolved into a DeviceModel. `budget` (bytes, 0 = none) overrides the
// GPU's memory.
DeviceModel cuda_device(const GpuProfile& gpu, int64_t budget);
DeviceModel cpu_device(int64_t budget);

struct Estimate {
  Schedule schedule;
  Replay lower_bound;
  int64_t allocated_peak = 0;  // allocator model: rounded blocks (= lower bound on cpu)
  int64_t reserved_peak = 0;   // allocator model: segments (= lower bound on cpu)
  int64_t context_bytes = 0;   // CUDA context (0 on cpu)
  int64_t peak_bytes = 0;      // what the device needs: reserved peak + context
  int64_t budget_bytes = 0;    // 0 = no budget
  bool fits = true;
  int64_t fragmentation_bytes() const { return reserved_peak - lower_bound.peak_bytes; }
  int64_t headroom_bytes() const { return budget_bytes - peak_bytes; }
  std::vector<PhasePeak> phases;  // in order of first occurrence
  std::string peak_phase;
  int64_t host_bytes = 0;  // offloaded weights + paged optimizer state in host memory
};

Estimate estimate(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d);

// Whether a configuration fits, for searches: estimate()'s answer at a fraction of its cost (the
// allocator model runs only when the tensors alone fit, and only once). peak_bytes is estimate()'s
// peak when it fits; when it does not, a lower bound of it.
struct FitCheck {
  bool fits = false;
  int64_t peak_bytes = 0;
  int64_t tensor_bytes = 0;  // the tensors' peak without allocator rounding, context included
};
FitCheck check_fit(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d);

// Loss chunk: the most tokens (a power of two, 64 or more) whose logits stay within 256 MiB.
int64_t suggested_loss_chunk(const ModelDesc& m, const TrainConfig& c);

// A change to the configuration that makes it fit, with its estimated peak.
struct Suggestion {
  std::string change;  // "--checkpoint all", "--micro-batch 1 --grad-accum 16"
  std::string why;     // "recompute activations in backward"
  int64_t peak_bytes = 0;
};

// Single changes, cheapest first, that bring a configuration that does not fit under the budget.
std::vector<Suggestion> suggest_fixes(const ModelDesc& m, const TrainConfig& c,
                                      const DeviceModel& d, size_t max_count = 4);

}  // namespace loraplan::planner
