#pragma once

#include "loraplan/planner/model.h"
#include "loraplan/planner/train_config.h"
#include "loraplan/planner/weights.h"

namespace loraplan::executor {

// The executor tests' configuration: T 32, B 2, one micro-batch, fp32 compute on the CPU, LoRA r8
// on every linear without dropout, nothing checkpointed or offloaded.
inline planner::TrainConfig tiny_config(const planner::ModelDesc& m) {
  planner::TrainConfig c;
  c.seq_len = 32;
  c.micro_batch = 2;
  c.grad_accum = 1;
  c.compute = planner::DType::kF32;
  c.lora_rank = 8;
  c.lora_dropout = 0;
  c.lora_targets = planner::parse_lora_targets("all-linear", m, "--lora-targets");
  c.checkpointed.assign(m.layers, false);
  c.offloaded.assign(m.layers, false);
  c.device = planner::Device::kCpu;
  return c;
}

}  // namespace loraplan::executor
