// bitsandbytes' blockwise 8-bit AdamW: the dynamic maps, the state round trip, and training with
// it against fp32 AdamW.
#include "adam8bit.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/simulator.h"
#include "optimizer.h"
#include "tiny_config.h"
#include "trainer.h"

namespace loraplan::executor {
namespace {

TEST(Adam8bit, DynamicMapsAsBitsandbytesMakesThem) {
  const adam8bit::Map& s = adam8bit::signed_map();
  const adam8bit::Map& u = adam8bit::unsigned_map();
  EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  EXPECT_TRUE(std::is_sorted(u.begin(), u.end()));
  // Signed: 127 negative, 0, 127 positive, 1 (no -1); unsigned: 0, 254 positive, 1.
  EXPECT_EQ(s[127], 0.0f);
  EXPECT_EQ(s[255], 1.0f);
  EXPECT_NEAR(s[0], -0.992969f, 1e-6);
  EXPECT_NEAR(s[128], 5.5e-7f, 1e-8);  // the smallest |x|: 1e-6 x (0.1 + 1) / 2
  EXPECT_EQ(u[0], 0.0f);
  EXPECT_EQ(u[255], 1.0f);
  EXPECT_NEAR(u[254], 0.996484f, 1e-6);
  EXPECT_NEAR(u[1], 3.25e-7f, 1e-9);
  EXPECT_EQ(std::count_if(s.begin(), s.end(), [](float v) { return v < 0; }), 127);
}

TEST(Adam8bit, RoundTripIsWithinTheMapsResolution) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0, 1);
  const int64_t n = 1000;  // four blocks, the last one partial
  std::vector<float> x(n), back(n);
  for (float& v : x) v = normal(rng) * 1e-3f;
  std::vector<uint8_t> codes(n);
  std::vector<float> absmax(4);
  adam8bit::quantize_blockwise(adam8bit::signed_map(), x.data(), n, codes.data(), absmax.data());
  adam8bit::dequantize_blockwise(adam8bit::signed_map(), codes.data(), absmax.data(), n,
                                 back.data());
  const adam8bit::Map& map = adam8bit::signed_map();
  for (int64_t i = 0; i < n; ++i) {
    const float a = absmax[i / 256];
    // The nearest code: the error is at most half the gap to the neighbouring code.
    const int c = codes[i];
    const float gap =
        std::max(c > 0 ? map[c] - map[c - 1] : 0.0f, c < 255 ? map[c + 1] - map[c] : 0.0f);
    EXPECT_LE(std::fabs(back[i] - x[i]), a * gap / 2 * (1 + 1e-5f)) << i;  // fp32 rounding
  }
  for (int b = 0; b < 4; ++b) {
    float top = 0;
    for (int64_t i = b * 256; i < std::min<int64_t>(n, (b + 1) * 256); ++i)
      top = std::max(top, std::fabs(x[i]));
    EXPECT_EQ(absmax[b], top);
  }
}

TEST(Adam8bit, TrainsLikeFp32AdamW) {
  // Rank 64: most LoRA tensors of tiny-llama have 4096 elements or more (8-bit state); k and v's
  // B [32, 64] keep fp32 state.
  TrainRequest r;
  r.model = planner::load_model("tiny-llama");
  r.config = tiny_config(r.model);
  r.config.lora_rank = 64;
  r.config.lora_dropout = 0;
  r.steps = 100;
  r.config.micro_batch = 4;
  r.lr = 3e-3;
  const RunReport fp32 = run_training(r);
  r.config.optimizer = planner::Optimizer::kAdamW8bit;
  const RunReport eight = run_training(r);
  r.config.optimizer = planner::Optimizer::kPagedAdamW8bit;
  const RunReport paged = run_training(r);
  const double first = fp32.steps.front().loss, a = fp32.steps.back().loss,
               b = eight.steps.back().loss;
  EXPECT_LT(a, first - 0.3) << "first " << first << ", fp32 " << a << ", 8-bit "
                            << b;  // it learned
  EXPECT_NEAR(b, a, 0.03 * a) << "fp32 " << a << ", 8-bit " << b;
  EXPECT_EQ(paged.steps.back().loss, b);  // paging moves the state, not the arithmetic
  EXPECT_NE(b, a);                        // and the 8-bit state is really 8-bit
}

TEST(Adam8bit, StateBytesAreThePlannersFormula) {
  TrainRequest r;
  r.model = planner::load_model("tiny-llama");
  r.config = tiny_config(r.model);
  r.config.lora_rank = 64;
  r.steps = 1;
  int64_t expected = 0;
  for (const planner::TensorSpec& t : planner::inventory(r.model)) {
    if (!t.is_linear_weight() || !r.config.lora_targets.contains(t.module)) continue;
    for (int64_t n : {r.config.lora_rank * t.shape[1], t.shape[0] * r.config.lora_rank}) {
      expected += planner::optimizer_info(planner::Optimizer::kPagedAdamW8bit).state_bytes(n);
    }
  }
  r.config.optimizer = planner::Optimizer::kPagedAdamW8bit;
  EXPECT_EQ(run_training(r).host_bytes, expected);  // paged: all of it in host memory
  const planner::Estimate e = planner::estimate(r.model, r.config, planner::cpu_device(0));
  EXPECT_EQ(e.host_bytes, expected);
  // Not paged: the same bytes on the device, so the resident bytes differ by exactly the state.
  r.config.optimizer = planner::Optimizer::kAdamW8bit;
  const RunReport on_device = run_training(r);
  r.config.optimizer = planner::Optimizer::kSgd;
  const RunReport stateless = run_training(r);
  EXPECT_EQ(on_device.resident_bytes - stateless.resident_bytes, expected);
}

// One norm over every gradient, as torch.nn.utils.clip_grad_norm_ computes it: sqrt(9 + 16 + 144)
// = 13, each gradient scaled by max / (13 + 1e-6); a norm under the limit changes nothing.
TEST(Optimizer, ClipsToOneNormOverAllGradients) {
  std::vector<torch::Tensor> params = {torch::zeros({2}).requires_grad_(true),
                                       torch::zeros({1}).requires_grad_(true)};
  params[0].mutable_grad() = torch::tensor({3.0f, 4.0f});
  params[1].mutable_grad() = torch::tensor({12.0f});
  Optimizer opt(planner::Optimizer::kSgd, params);
  EXPECT_NEAR(opt.clip(1.0), 13.0, 1e-5);
  const double scale = 1.0 / (13.0 + 1e-6);
  EXPECT_NEAR(params[0].grad()[0].item<double>(), 3 * scale, 1e-6);
  EXPECT_NEAR(params[1].grad()[0].item<double>(), 12 * scale, 1e-6);
  EXPECT_NEAR(opt.clip(5.0), 1.0, 1e-5);  // already within: unchanged
  EXPECT_NEAR(params[1].grad()[0].item<double>(), 12 * scale, 1e-6);
  EXPECT_EQ(opt.clip(0), 0);  // off
}

}  // namespace
}  // namespace loraplan::executor
