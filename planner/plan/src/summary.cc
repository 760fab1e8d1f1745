#include "loraplan/planner/summary.h"

namespace loraplan::planner {

int64_t base_weight_bytes(const std::vector<TensorSpec>& tensors, const QuantOptions& q,
                          int64_t other_bytes) {
  int64_t bytes = 0;
  for (const TensorSpec& t : tensors) {
    const bool quantized = t.is_linear_weight() && t.module != Module::kLmHead;
    bytes += quantized ? linear_weight_bytes(t.shape[0], t.shape[1], q) : t.numel() * other_bytes;
  }
  return bytes;
}

ModelSummary summarize(const ModelDesc& m, const std::vector<TensorSpec>& tensors,
                       const SummaryOptions& options) {
  ModelSummary s;
  s.tensors = static_cast<int64_t>(tensors.size());
  for (const TensorSpec& t : tensors) {
    s.total_params += t.numel();
    s.params_by_role[t.role] += t.numel();
    s.params_by_dtype[t.dtype] += t.numel();
    s.stored_bytes += t.bytes();
  }
  s.bf16_bytes = base_weight_bytes(tensors, {.format = WeightFormat::kBf16}, 2);
  s.nf4_bytes = base_weight_bytes(tensors, {.format = WeightFormat::kNf4, .double_quant = true}, 2);
  if (options.lora_rank > 0) {
    s.lora_rank = options.lora_rank;
    s.lora_targets = parse_lora_targets(options.lora_targets, m, "--lora-targets");
    s.lora_params = lora_params(tensors, s.lora_targets, options.lora_rank);
  }
  return s;
}

}  // namespace loraplan::planner
