#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loraplan/planner/inventory.h"

namespace loraplan::planner {

// How frozen linear weights are held on the device.
enum class WeightFormat { kNf4, kFp4, kInt8, kBf16, kFp16, kFp32 };

std::string_view weight_format_name(WeightFormat f);  // "nf4", "int8", "bf16", ...
std::optional<WeightFormat> parse_weight_format(std::string_view name);

struct QuantOptions {
  WeightFormat format = WeightFormat::kNf4;
  bool double_quant = true;  // NF4/FP4: absmax re-quantized to 8 bits in blocks of 256
  int64_t block = 64;        // NF4/FP4 elements per absmax block
};

// Device bytes of one linear weight [out, in] in the given format, every buffer included
// (bitsandbytes layout, shared/reference formats.md 1.5 and 2):
//   nf4/fp4: packed codes (n+1)/2 + absmax fp32 per block (or uint8 per block + fp32 per 256
//            blocks + the 256-entry map and offset with double quant) + the 16-entry code map
//   int8:    n + fp32 scale per output row
//   16/32-bit: n * element bytes
int64_t linear_weight_bytes(int64_t out, int64_t in, const QuantOptions& q);

// Which projections carry LoRA adapters. Names as users write them: q, k, v, o, gate, up, down;
// on fused layouts q/k/v select qkv_proj and gate/up select gate_up_proj.
struct LoraTargets {
  std::vector<Module> modules;  // sorted, unique

  bool contains(Module m) const;
};

// Parses "q,k,v,o", "all-linear" (every projection but lm_head, as PEFT does) or HF module names
// ("q_proj,v_proj"). Throws InputError naming `flag` and the bad entry.
LoraTargets parse_lora_targets(std::string_view text, const ModelDesc& m, std::string_view flag);

std::string lora_targets_text(const LoraTargets& t);  // "q_proj,k_proj,..."

// Trainable LoRA parameters: r * (in + out) for every targeted linear weight.
int64_t lora_params(const std::vector<TensorSpec>& tensors, const LoraTargets& t, int64_t rank);

}  // namespace loraplan::planner
