// The step simulator on schedules small enough to follow by hand.
#include "loraplan/planner/simulator.h"

#include <gtest/gtest.h>

#include "loraplan/planner/model_loader.h"

namespace loraplan::planner {
namespace {

TEST(Replay, HandWrittenSchedule) {
  Schedule s;
  s.phases = {"setup", "fwd L0", "optim"};
  s.buffers = {{"w", -1, -1, 1000, Category::kWeights},
               {"a", 0, 0, 300, Category::kActivations},
               {"b", 0, 0, 200, Category::kActivations},
               {"g", 0, -1, 50, Category::kGradients}};
  s.events = {{true, 0, 0},    // +1000 -> 1000
              {true, 1, 1},    // +300  -> 1300
              {true, 2, 1},    // +200  -> 1500 peak
              {false, 1, 1},   // -300  -> 1200
              {true, 3, 2},    // +50   -> 1250
              {false, 2, 2},   // -200  -> 1050
              {false, 3, 2}};  // -50   -> 1000 resident
  const Replay r = replay(s);
  EXPECT_EQ(r.peak_bytes, 1500);
  EXPECT_EQ(r.peak_event, 2);
  EXPECT_EQ(r.peak_phase, 1);
  EXPECT_EQ(r.at_peak[static_cast<int>(Category::kWeights)], 1000);
  EXPECT_EQ(r.at_peak[static_cast<int>(Category::kActivations)], 500);
  EXPECT_EQ(r.at_peak[static_cast<int>(Category::kGradients)], 0);
  EXPECT_EQ(r.resident_bytes, 1000);
  EXPECT_EQ(r.phase_peak, (std::vector<int64_t>{1000, 1500, 1250}));
}

// tiny-llama: V 256, C 64, I 176, L 2, H 4, Hkv 2, D 16.
TrainConfig tiny_config(const ModelDesc& m) {
  TrainConfig c;
  c.seq_len = 16;
  c.micro_batch = 1;
  c.grad_accum = 2;
  c.weights = {.format = WeightFormat::kBf16};
  c.compute = DType::kF32;
  c.lora_rank = 8;
  c.lora_dropout = 0;
  c.lora_targets = parse_lora_targets("all-linear", m, "--lora-targets");
  c.checkpointed.assign(m.layers, false);
  c.offloaded.assign(m.layers, false);
  c.device = Device::kCpu;
  return c;
}

// Net bytes allocated minus freed by the events of one phase (summed over micro-batches).
int64_t net_bytes_of_phase(const Schedule& s, const std::string& phase) {
  int64_t live = 0;
  for (const Event& e : s.events) {
    if (s.phases[e.phase] == phase)
      live += e.alloc ? s.buffers[e.buffer].bytes : -s.buffers[e.buffer].bytes;
  }
  return live;
}

TEST(Schedule, ResidentStateByHand) {
  const ModelDesc m = load_model("tiny-llama");
  const Schedule s = build_schedule(m, tiny_config(m));
  // embed and lm_head 2 x 16,384 x 4 B, norms (2 x 2 x 64 + 64) x 4 B, in the compute dtype (fp32)
  const int64_t other = 2 * 16384 * 4 + (2 * 2 * 64 + 64) * 4;
  // linears in bf16: 2 layers x (q 4096 + k 2048 + v 2048 + o 4096 + 3 x 11,264) x 2 B
  const int64_t linears = 2 * 46080 * 2;
  // LoRA r8: 2 layers x 8 x 1,168 parameters x 4 B; AdamW twice that
  const int64_t adapters = 2 * 8 * 1168 * 4;
  // cos and sin tables [T 16, rotary dim / 2 = 8] fp32
  const int64_t rope = 2 * 16 * 8 * 4;
  EXPECT_EQ(net_bytes_of_phase(s, "setup"), other + linears + 3 * adapters + rope);
  // The step ends where it started: every activation, gradient and transient is freed.
  EXPECT_EQ(replay(s).resident_bytes, other + linears + 3 * adapters + rope);
  EXPECT_EQ(s.simulated_micro_batches, 2);
}

TEST(Schedule, EveryBufferFreedOnceAndPhasesInOrder) {
  const ModelDesc m = load_model("tiny-phi3");
  TrainConfig c = tiny_config(m);
  c.lora_targets = parse_lora_targets("all-linear", m, "--lora-targets");
  c.checkpointed = {true, false, true};
  c.offloaded = {false, true, false};
  c.lora_dropout = 0.1;
  c.weights = {.format = WeightFormat::kNf4};
  c.compute = DType::kBF16;
  c.attention = Attention::kEager;
  const Schedule s = build_schedule(m, c);
  std::vector<int> allocs(s.buffers.size()), frees(s.buffers.size());
  for (const Event& e : s.events) (e.alloc ? allocs : frees)[e.buffer]++;
  for (size_t b = 0; b < s.buffers.size(); ++b) {
    EXPECT_EQ(allocs[b], 1) << s.buffers[b].name();
    const bool resident = s.buffers[b].micro_batch < 0 &&
                          s.buffers[b].category != Category::kGradients &&
                          s.buffers[b].category != Category::kOffloadStaging &&
                          s.buffers[b].category != Category::kWorkspace;
    EXPECT_EQ(frees[b], resident && std::string(s.buffers[b].tag) != "grad:lora" ? 0 : 1)
        << s.buffers[b].name();
  }
  const std::vector<std::string> expected_start = {"setup",  "batch", "embed",  "fwd L0", "fwd L1",
                                                   "fwd L2", "loss",  "bwd L2", "bwd L1", "bwd L0"};
  EXPECT_EQ(std::vector<std::string>(s.phases.begin(), s.phases.begin() + 10), expected_start);
  EXPECT_EQ(s.phases.back(), "optim");
  // Offloaded layer 1: its linears live in host memory, nf4 + double quant, and are staged in.
  EXPECT_GT(s.host_bytes, 0);
}

TEST(Schedule, CheckpointingKeepsOnlyLayerInputs) {
  const ModelDesc m = load_model("tiny-llama");
  TrainConfig plain = tiny_config(m), ckpt = tiny_config(m);
  ckpt.checkpointed.assign(m.layers, true);
  const Estimate a = estimate(m, plain, cpu_device(0)), b = estimate(m, ckpt, cpu_device(0));
  auto phase = [](const Estimate& e, const std::string& name) {
    for (const PhasePeak& p : e.phases) {
      if (p.name == name) return p.peak_bytes;
    }
    return int64_t{-1};
  };
  // With every layer checkpointed, the forward holds one [N, C] fp32 input per layer.
  const int64_t N = 16, C = 64;
  EXPECT_LT(phase(b, "fwd L1"), phase(a, "fwd L1"));
  // Net bytes each checkpointed forward leaves behind: its output [N, C] (its input stays held by
  // the checkpoint); two layers, two simulated micro-batches.
  EXPECT_EQ(net_bytes_of_phase(b.schedule, "fwd L0"), 2 * N * C * 4);
  EXPECT_EQ(net_bytes_of_phase(b.schedule, "fwd L0") + net_bytes_of_phase(b.schedule, "fwd L1"),
            2 * 2 * N * C * 4);
  EXPECT_EQ(a.lower_bound.resident_bytes, b.lower_bound.resident_bytes);
}

TEST(Schedule, EagerAttentionHoldsAWindowMaskOnlyWhenSomeLayerNeedsIt) {
  // tiny-gemma2 slides on even layers. At 64 tokens a 32-token window needs its own [T, T] bool
  // mask beside the causal one; a 64-token window is the causal mask itself.
  ModelDesc m = load_model("tiny-gemma2");
  TrainConfig c = tiny_config(m);
  c.seq_len = 64;
  c.attention = Attention::kEager;
  m.sliding_window = 32;
  const Estimate windowed = estimate(m, c, cpu_device(0));
  m.sliding_window = 64;
  const Estimate causal = estimate(m, c, cpu_device(0));
  EXPECT_EQ(windowed.peak_bytes - causal.peak_bytes, 64 * 64);
  c.attention = Attention::kEfficient;  // masks per query chunk, not kept
  const int64_t efficient_causal = estimate(m, c, cpu_device(0)).peak_bytes;
  m.sliding_window = 32;
  EXPECT_EQ(estimate(m, c, cpu_device(0)).peak_bytes, efficient_causal);
}

TEST(Estimate, CpuIsExactBytesAndCudaAddsContextAndRounding) {
  const ModelDesc m = load_model("tiny-llama");
  TrainConfig c = tiny_config(m);
  const Estimate cpu = estimate(m, c, cpu_device(0));
  EXPECT_EQ(cpu.peak_bytes, cpu.lower_bound.peak_bytes);
  EXPECT_EQ(cpu.context_bytes, 0);
  EXPECT_TRUE(cpu.fits);
  c.device = Device::kCuda;
  c.compute = DType::kBF16;
  const Estimate cuda = estimate(m, c, cuda_device(resolve_gpu("6GB"), 0));
  EXPECT_EQ(cuda.context_bytes, 314572800);
  EXPECT_GE(cuda.allocated_peak, cuda.lower_bound.peak_bytes);
  EXPECT_GE(cuda.reserved_peak, cuda.allocated_peak);
  EXPECT_EQ(cuda.peak_bytes, cuda.reserved_peak + cuda.context_bytes);
  EXPECT_EQ(cuda.budget_bytes, 6442450944);
  EXPECT_TRUE(cuda.fits);
}

TEST(Estimate, BudgetDecidesFitAndSuggestionsFit) {
  const ModelDesc m = load_model("tiny-llama-256");
  TrainConfig c = tiny_config(m);
  c.seq_len = 256;
  c.micro_batch = 4;
  const Estimate unlimited = estimate(m, c, cpu_device(0));
  const int64_t budget = unlimited.peak_bytes - 1;
  const Estimate tight = estimate(m, c, cpu_device(budget));
  EXPECT_FALSE(tight.fits);
  EXPECT_EQ(tight.peak_bytes, unlimited.peak_bytes);
  EXPECT_TRUE(estimate(m, c, cpu_device(unlimited.peak_bytes)).fits);
  const std::vector<Suggestion> fixes = suggest_fixes(m, c, cpu_device(budget));
  ASSERT_FALSE(fixes.empty());
  for (const Suggestion& s : fixes) EXPECT_LE(s.peak_bytes, budget) << s.change;
}

}  // namespace
}  // namespace loraplan::planner
