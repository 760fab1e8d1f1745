#pragma once

#include <cstdint>
#include <string>

#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::planner {

// The rates a step's time is predicted from, after efficiencies.
struct Rates {
  double matmul_flops = 0;   // FLOP/s of large matrix products in the compute dtype
  double memory_bw = 0;      // bytes/s of device memory for memory-bound operations
  double host_link_bw = 0;   // bytes/s from host memory to the device (offload staging)
  double op_overhead_s = 0;  // fixed cost of one operation (kernel launch, dispatch)
  double unpack_4bit_s = 0;  // seconds per element to expand NF4/FP4 codes; 0: memory-bound
  std::string source;        // where the rates come from, for reports
};

// The device's rates: a GPU profile's dense peaks times the efficiencies PyTorch training
// reaches in practice (docs/plan-schema.md, "Cost model"). A GPU given only as a size
// ("--gpu 6GB") has no rates; a generic card's are used and `source` says so.
Rates gpu_rates(const GpuProfile& gpu, DType compute);
// The CPU executor (LibTorch 1.13, OpenBLAS, one thread per `threads`).
Rates cpu_rates(int threads = 1);

// Predicted time of one optimizer step, by part. Seconds.
struct StepCost {
  double frozen_s = 0;       // frozen base: forward and input gradients (no weight gradients)
  double lora_s = 0;         // adapters: forward, input and weight gradients
  double attention_s = 0;    // scores and weighted sums, forward and backward
  double recompute_s = 0;    // forward of checkpointed layers again in backward
  double dequant_s = 0;      // quantized weights expanded before each product
  double elementwise_s = 0;  // norms, rotary, activations, residuals, loss
  double head_s = 0;         // output head and cross-entropy (recompute of chunks included)
  double offload_s = 0;      // offloaded layers staged over the host link
  double optimizer_s = 0;    // one update of the adapters
  double overhead_s = 0;     // per-operation fixed costs

  double step_s = 0;        // all of the above, for grad_accum micro-batches
  double tokens_per_s = 0;  // B T grad_accum / step_s
  double flops = 0;         // FLOPs of one step (products only)
};

StepCost step_cost(const ModelDesc& m, const TrainConfig& c, const Rates& r);

}  // namespace loraplan::planner
