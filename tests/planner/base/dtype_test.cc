#include "loraplan/planner/dtype.h"

#include <gtest/gtest.h>

namespace loraplan::planner {
namespace {

TEST(DType, ParsesEverySpelling) {
  EXPECT_EQ(parse_dtype("bf16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("torch.bfloat16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("BF16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("float16"), DType::kF16);
  EXPECT_EQ(parse_dtype("half"), DType::kF16);
  EXPECT_EQ(parse_dtype("float32"), DType::kF32);
  EXPECT_EQ(parse_dtype("fp32"), DType::kF32);
  EXPECT_EQ(parse_dtype("float8_e4m3fn"), DType::kF8E4M3);
  EXPECT_EQ(parse_dtype("bfloat17"), std::nullopt);
}

TEST(DType, SafetensorsNamesAreExact) {
  EXPECT_EQ(parse_safetensors_dtype("F8_E5M2"), DType::kF8E5M2);
  EXPECT_EQ(parse_safetensors_dtype("BOOL"), DType::kBool);
  EXPECT_EQ(parse_safetensors_dtype("bf16"), std::nullopt);  // the header spelling is upper case
  EXPECT_EQ(safetensors_dtype_name(DType::kBF16), "BF16");
}

TEST(DType, Bytes) {
  EXPECT_EQ(dtype_bytes(DType::kF64), 8);
  EXPECT_EQ(dtype_bytes(DType::kF32), 4);
  EXPECT_EQ(dtype_bytes(DType::kBF16), 2);
  EXPECT_EQ(dtype_bytes(DType::kF8E4M3), 1);
  EXPECT_EQ(dtype_bytes(DType::kU8), 1);
}

}  // namespace
}  // namespace loraplan::planner
