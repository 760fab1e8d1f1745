#include "loraplan/planner/dtype.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace loraplan::planner {
namespace {

struct DTypeRow {
  DType type;
  int64_t bytes;                 // per element
  std::string_view user;         // how users and reports write it
  std::string_view safetensors;  // safetensors header spelling
  std::string_view torch;        // config.json torch_dtype spelling
};

constexpr std::array<DTypeRow, 15> kDTypes = {{
    {DType::kF64, 8, "fp64", "F64", "float64"},
    {DType::kF32, 4, "fp32", "F32", "float32"},
    {DType::kF16, 2, "fp16", "F16", "float16"},
    {DType::kBF16, 2, "bf16", "BF16", "bfloat16"},
    {DType::kF8E4M3, 1, "fp8-e4m3", "F8_E4M3", "float8_e4m3fn"},
    {DType::kF8E5M2, 1, "fp8-e5m2", "F8_E5M2", "float8_e5m2"},
    {DType::kI64, 8, "int64", "I64", "int64"},
    {DType::kI32, 4, "int32", "I32", "int32"},
    {DType::kI16, 2, "int16", "I16", "int16"},
    {DType::kI8, 1, "int8", "I8", "int8"},
    {DType::kU64, 8, "uint64", "U64", "uint64"},
    {DType::kU32, 4, "uint32", "U32", "uint32"},
    {DType::kU16, 2, "uint16", "U16", "uint16"},
    {DType::kU8, 1, "uint8", "U8", "uint8"},
    {DType::kBool, 1, "bool", "BOOL", "bool"},
}};

const DTypeRow& row(DType t) {
  return *std::find_if(kDTypes.begin(), kDTypes.end(),
                       [t](const DTypeRow& r) { return r.type == t; });
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

int64_t dtype_bytes(DType t) { return row(t).bytes; }
std::string_view dtype_name(DType t) { return row(t).user; }
std::string_view safetensors_dtype_name(DType t) { return row(t).safetensors; }

std::optional<DType> parse_safetensors_dtype(std::string_view name) {
  for (const DTypeRow& r : kDTypes) {
    if (r.safetensors == name) return r.type;
  }
  return std::nullopt;
}

std::optional<DType> parse_dtype(std::string_view name) {
  std::string n = lower(name);
  if (n.starts_with("torch.")) n = n.substr(6);
  for (const DTypeRow& r : kDTypes) {
    if (n == r.user || n == lower(r.safetensors) || n == r.torch) return r.type;
  }
  if (n == "float" || n == "f32") return DType::kF32;
  if (n == "half" || n == "f16") return DType::kF16;
  if (n == "double") return DType::kF64;
  return std::nullopt;
}

}  // namespace loraplan::planner
