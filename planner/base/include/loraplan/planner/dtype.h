#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace loraplan::planner {

// Element types of stored tensors. Sub-byte formats (nf4, fp4) are not storage dtypes here:
// the quantized layouts are described by the simulator, these are what files hold.
enum class DType {
  kF64,
  kF32,
  kF16,
  kBF16,
  kF8E4M3,
  kF8E5M2,
  kI64,
  kI32,
  kI16,
  kI8,
  kU64,
  kU32,
  kU16,
  kU8,
  kBool,
};

int64_t dtype_bytes(DType t);                      // bytes per element
std::string_view dtype_name(DType t);              // "bf16", "fp32", ... (as users write them)
std::string_view safetensors_dtype_name(DType t);  // "BF16", "F32", ...

// Parses the names used by safetensors ("BF16"), PyTorch/HF configs ("bfloat16",
// "torch.bfloat16") and users ("bf16"). nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view name);
std::optional<DType> parse_safetensors_dtype(std::string_view name);

}  // namespace loraplan::planner
