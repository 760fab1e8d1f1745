#include "loraplan/planner/train_config.h"

#include <gtest/gtest.h>

#include "loraplan/planner/errors.h"

namespace loraplan::planner {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LayerSets, Checkpoint) {
  EXPECT_EQ(parse_checkpoint("none", 4, "--checkpoint"), std::vector<bool>(4, false));
  EXPECT_EQ(parse_checkpoint("all", 4, "--checkpoint"), std::vector<bool>(4, true));
  EXPECT_EQ(parse_checkpoint("every:2", 5, "--checkpoint"),
            (std::vector<bool>{true, false, true, false, true}));
  EXPECT_EQ(parse_checkpoint("layers:3,0", 4, "--checkpoint"),
            (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(error_of([] { parse_checkpoint("every:0", 4, "--checkpoint"); }),
            "--checkpoint: \"every:0\": K in every:K must be positive");
  EXPECT_EQ(error_of([] { parse_checkpoint("layers:1,4", 4, "--checkpoint"); }),
            "--checkpoint: layer 4 does not exist (the model has layers 0..3)");
  EXPECT_EQ(error_of([] { parse_checkpoint("layers:1,x", 4, "--checkpoint"); }),
            "--checkpoint: \"layers:1,x\": \"x\" is not an integer");
  EXPECT_EQ(
      error_of([] { parse_checkpoint("some", 4, "--checkpoint"); }),
      "--checkpoint: \"some\" is not none, all, every:K or layers:0,3,5 (ranges: layers:0-7)");
}

TEST(LayerSets, Offload) {
  EXPECT_EQ(parse_offload("2", 4, "--offload"), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(parse_offload("0", 4, "--offload"), std::vector<bool>(4, false));
  EXPECT_EQ(parse_offload("layers:2", 4, "--offload"),
            (std::vector<bool>{false, false, true, false}));
  EXPECT_EQ(error_of([] { parse_offload("5", 4, "--offload"); }),
            "--offload: cannot offload 5 layers, the model has 4");
  EXPECT_EQ(error_of([] { parse_offload("-1", 4, "--offload"); }),
            "--offload: \"-1\" is not a layer count N, layers:0,3,5 or none");
}

TEST(LayerSets, Text) {
  EXPECT_EQ(layer_set_text({false, false}), "none");
  EXPECT_EQ(layer_set_text({true, true}), "all");
  EXPECT_EQ(layer_set_text({true, false, true}), "layers:0,2");
  EXPECT_EQ(layer_set_text({true, true, true, false, true, true, false}), "layers:0-2,4,5");
  EXPECT_EQ(parse_checkpoint("layers:0-2,4,5", 7, "--checkpoint"),
            (std::vector<bool>{true, true, true, false, true, true, false}));
  EXPECT_EQ(error_of([] { parse_checkpoint("layers:3-1", 4, "--checkpoint"); }),
            "--checkpoint: \"layers:3-1\": the range 3-1 runs backwards");
}

TEST(Loss, Parse) {
  EXPECT_EQ(parse_loss("full", "--loss"), 0);
  EXPECT_EQ(parse_loss("chunked:1024", "--loss"), 1024);
  EXPECT_EQ(error_of([] { parse_loss("chunked:0", "--loss"); }),
            "--loss: \"chunked:0\": the chunk must be at least one token");
  EXPECT_EQ(error_of([] { parse_loss("partial", "--loss"); }),
            "--loss: \"partial\" is not full or chunked:TOKENS");
}

TEST(Optimizers, Names) {
  for (Optimizer o : {Optimizer::kAdamW, Optimizer::kAdamW8bit, Optimizer::kPagedAdamW8bit,
                      Optimizer::kSgd, Optimizer::kSgdMomentum}) {
    EXPECT_EQ(parse_optimizer(optimizer_name(o)), o);
  }
  EXPECT_EQ(parse_optimizer("lion"), std::nullopt);
  EXPECT_EQ(optimizer_choices("|"), "adamw|adamw-8bit|paged-adamw-8bit|sgd|sgd-momentum");
  EXPECT_EQ(optimizers().size(), 5u);
}

// bitsandbytes' layout (formats.md section 3): uint8 codes and an fp32 absmax per 256 elements
// for each state from 4096 elements on; fp32 state below.
TEST(Optimizers, StateBytesFollowTheTable) {
  const OptimizerInfo& adamw = optimizer_info(Optimizer::kAdamW);
  const OptimizerInfo& adamw8 = optimizer_info(Optimizer::kAdamW8bit);
  const OptimizerInfo& paged = optimizer_info(Optimizer::kPagedAdamW8bit);
  EXPECT_EQ(adamw.state_bytes(1000), 8000);
  EXPECT_EQ(adamw8.state_bytes(4095), 8 * 4095);  // below the minimum: fp32
  EXPECT_EQ(adamw8.state_bytes(4096), 2 * 4096 + 2 * 4 * 16);
  EXPECT_EQ(adamw8.state_bytes(4097), 2 * 4097 + 2 * 4 * 17);  // a partial last block
  EXPECT_EQ(paged.state_bytes(65536), adamw8.state_bytes(65536));
  EXPECT_EQ(optimizer_info(Optimizer::kSgd).state_bytes(1000), 0);
  EXPECT_EQ(optimizer_info(Optimizer::kSgdMomentum).state_bytes(1000), 4000);
  EXPECT_TRUE(paged.paged);
  EXPECT_FALSE(adamw8.paged);
  EXPECT_TRUE(adamw.adam && adamw8.adam && !optimizer_info(Optimizer::kSgd).adam);
  // The executor's 8-bit update is CPU code: the table says so, and train refuses it on CUDA.
  EXPECT_FALSE(adamw8.runs_on(Device::kCuda));
  EXPECT_TRUE(adamw8.runs_on(Device::kCpu));
  EXPECT_TRUE(adamw.runs_on(Device::kCuda));
}

TEST(WeightFormats, TableDrivesNamesAndBytes) {
  EXPECT_EQ(weight_format_choices("|"), "nf4|fp4|int8|bf16|fp16|fp32");
  for (const WeightFormatInfo& f : weight_formats()) {
    SCOPED_TRACE(f.name);
    EXPECT_EQ(parse_weight_format(f.name), f.format);
    EXPECT_EQ(&weight_format_info(f.format), &f);
    if (!f.quantized()) {
      EXPECT_EQ(linear_weight_bytes(96, 64, {.format = f.format}), 96 * 64 * f.bits / 8);
    }
  }
  EXPECT_EQ(parse_weight_format("q4_k"), std::nullopt);
  // nf4 with double quant, [96, 64]: codes 3072, absmax u8 96, absmax2 4, maps 64 + 1028.
  EXPECT_EQ(linear_weight_bytes(96, 64, {.format = WeightFormat::kNf4}), 3072 + 96 + 4 + 64 + 1028);
  EXPECT_EQ(linear_weight_bytes(96, 64, {.format = WeightFormat::kInt8}), 96 * 64 + 4 * 96);
  EXPECT_EQ(weights_text({.format = WeightFormat::kNf4}), "nf4+dq");
  EXPECT_EQ(weights_text({.format = WeightFormat::kNf4, .double_quant = false}), "nf4");
  EXPECT_EQ(weights_text({.format = WeightFormat::kInt8}), "int8");
}

}  // namespace
}  // namespace loraplan::planner
