#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {

// What `loraplan inspect` reports about a model: counts and sizes derived from its inventory.
struct ModelSummary {
  int64_t total_params = 0;
  int64_t tensors = 0;                       // parameter tensors in the inventory
  std::map<Role, int64_t> params_by_role;    // parameters
  std::map<DType, int64_t> params_by_dtype;  // parameters, as stored
  int64_t stored_bytes = 0;                  // bytes in the stored dtype(s)
  int64_t bf16_bytes = 0;                    // every tensor at 2 bytes
  int64_t nf4_bytes = 0;                     // linear weights NF4 + double quant, rest bf16
  int64_t lora_rank = 0;                     // 0 when no LoRA was asked for
  LoraTargets lora_targets;
  int64_t lora_params = 0;  // trainable parameters at lora_rank
};

struct SummaryOptions {
  int64_t lora_rank = 0;  // 0: no LoRA figures
  std::string lora_targets = "all-linear";
};

ModelSummary summarize(const ModelDesc& m, const std::vector<TensorSpec>& tensors,
                       const SummaryOptions& options);

// Bytes of the frozen base with linear weights in `q` and everything else (embeddings, norms,
// biases, and lm_head, which bitsandbytes never quantizes) at `other_bytes` per element.
int64_t base_weight_bytes(const std::vector<TensorSpec>& tensors, const QuantOptions& q,
                          int64_t other_bytes);

}  // namespace loraplan::planner
