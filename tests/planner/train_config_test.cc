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
}

}  // namespace
}  // namespace loraplan::planner
