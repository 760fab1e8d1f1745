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

// How a format lays out a weight (shared/reference formats.md 1.5 and 2).
enum class WeightLayout {
  kBlockwise4bit,  // nf4/fp4: bitsandbytes' Params4bit, packed codes and an absmax per block
  kRowwise8bit,    // int8: LLM.int8()'s codes and an fp32 scale per output row
  kPlain,          // 16/32-bit elements, used as they are (or cast to the compute dtype)
};

// One row per weight format. The flags' choices and help, plan.json's validation, the schedule,
// the cost model and the executor's quantizer ask this table which kind of format they hold.
struct WeightFormatInfo {
  WeightFormat format;
  std::string_view name;  // as flags and plan.json spell it
  WeightLayout layout = WeightLayout::kPlain;
  DType dtype = DType::kF32;  // plain formats: the element type; quantized ones: kU8 (their codes)
  int bits = 32;              // bits per element, scales aside
  std::string_view summary;   // one line for --help and docs

  bool quantized() const { return layout != WeightLayout::kPlain; }  // dequantized per product
  bool four_bit() const { return layout == WeightLayout::kBlockwise4bit; }
};

const std::vector<WeightFormatInfo>& weight_formats();  // every row, in the order help lists them
const WeightFormatInfo& weight_format_info(WeightFormat f);
std::string_view weight_format_name(WeightFormat f);  // "nf4", "int8", "bf16", ...
std::optional<WeightFormat> parse_weight_format(std::string_view name);
std::string weight_format_choices(std::string_view separator);  // "nf4|fp4|..."

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

// "nf4+dq" (double quantization on), "nf4", "int8", ...: the format as summaries print it.
std::string weights_text(const QuantOptions& q);

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
