// The LibTorch executor: quantization, the custom autograd functions, checkpointing, the
// tracking allocator, training, the adapter files, and one prediction held against measurement.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "fixtures/model_files.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/readers.h"
#include "loraplan/planner/simulator.h"
#include "memory_meter.h"
#include "model.h"
#include "quant.h"
#include "tiny_config.h"
#include "tracking_allocator.h"
#include "trainer.h"

namespace loraplan::executor {
namespace {

using planner::QuantOptions;
using planner::WeightFormat;
using torch::Tensor;

TEST(Quant, Nf4PacksHighNibbleFirstAndRoundTripsLevels) {
  // Two elements at the extreme levels: code 15 (1.0) in the high nibble, code 0 (-1.0) low.
  const QuantizedWeight q = quantize(torch::tensor({{1.0f, -1.0f}}),
                                     {.format = WeightFormat::kNf4, .double_quant = false});
  ASSERT_EQ(q.data.numel(), 1);
  EXPECT_EQ(q.data.item<uint8_t>(), 0xF0);
  // Values exactly on NF4 levels times the block absmax come back exactly.
  const Tensor levels = nf4_code().view({1, 16}) * 3.0f;
  const QuantizedWeight l = quantize(levels, {.format = WeightFormat::kNf4, .double_quant = false});
  EXPECT_TRUE(torch::equal(l.dequantize(at::kFloat), levels));
}

TEST(Quant, Nf4ErrorBound) {
  torch::manual_seed(1);
  const Tensor w = torch::randn({64, 96});
  for (bool dq : {false, true}) {
    const QuantizedWeight q = quantize(w, {.format = WeightFormat::kNf4, .double_quant = dq});
    const Tensor err = (q.dequantize(at::kFloat) - w).abs().view({-1, 64});
    const Tensor absmax = w.abs().view({-1, 64}).amax(1, true);
    // Half the widest gap between NF4 levels (-1 to -0.6961928) of the block's absmax; double
    // quantization adds the 8-bit error of the absmax itself.
    const double bound = (1 - 0.6961928009986877) / 2 * (dq ? 1.02 : 1.0);
    EXPECT_TRUE((err <= absmax * bound + 1e-6).all().item<bool>()) << "dq " << dq;
    EXPECT_LT((err.mean() / w.abs().mean()).item<double>(), 0.12) << "dq " << dq;
  }
}

TEST(Quant, BytesMatchThePlanner) {
  const Tensor w = torch::randn({256, 320});
  for (WeightFormat f : {WeightFormat::kNf4, WeightFormat::kFp4, WeightFormat::kInt8,
                         WeightFormat::kBf16, WeightFormat::kFp16, WeightFormat::kFp32}) {
    for (bool dq : {false, true}) {
      const QuantOptions o{.format = f, .double_quant = dq};
      EXPECT_EQ(quantize(w, o).bytes(), planner::linear_weight_bytes(256, 320, o))
          << planner::weight_format_name(f) << " dq " << dq;
    }
  }
  // ~4.127 bits per parameter with double quantization on a large weight.
  EXPECT_NEAR(8.0 * planner::linear_weight_bytes(4096, 4096, {}) / (4096.0 * 4096.0), 4.127, 0.001);
}

TEST(Quant, Int8RowScales) {
  const Tensor w = torch::tensor({{0.5f, -1.0f}, {2.0f, 1.0f}});
  const QuantizedWeight q = quantize(w, {.format = WeightFormat::kInt8});
  EXPECT_TRUE(torch::equal(q.data, torch::tensor({{64, -127}, {127, 64}}, torch::kChar)));
  EXPECT_TRUE(torch::allclose(q.dequantize(at::kFloat), w, 0, 0.01));
}

// The ATen-only dequantization (the CUDA path) gives the CPU loops' values bit for bit: odd sizes
// and a last partial block, and a weight of more than one chunk.
TEST(Quant, DequantizeOpsEqualsTheCpuLoops) {
  torch::manual_seed(5);
  const std::vector<std::vector<int64_t>> shapes = {{3, 37}, {kDequantChunk / 1024 + 6, 1024}};
  const std::vector<QuantOptions> formats = {{.format = WeightFormat::kNf4, .double_quant = true},
                                             {.format = WeightFormat::kNf4, .double_quant = false},
                                             {.format = WeightFormat::kFp4, .double_quant = true},
                                             {.format = WeightFormat::kInt8}};
  for (const std::vector<int64_t>& shape : shapes) {
    const Tensor w = torch::randn(shape);
    for (const QuantOptions& o : formats) {
      const QuantizedWeight q = quantize(w, o);
      for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
        EXPECT_TRUE(torch::equal(q.dequantize_ops(dtype), q.dequantize(dtype)))
            << shape[0] << "x" << shape[1] << " format " << static_cast<int>(o.format) << " dq "
            << o.double_quant << " dtype " << dtype;
      }
    }
  }
}

TEST(FrozenLinear, GradientsEqualTheDequantizedDenseLayer) {
  torch::manual_seed(2);
  FrozenLinear l;
  l.compute = at::kFloat;
  l.weight = quantize(torch::randn({48, 40}), {.format = WeightFormat::kNf4});
  l.lora = LoraAdapter{torch::randn({4, 40}).requires_grad_(true),
                       torch::randn({48, 4}).requires_grad_(true), 2.0, 0.0};
  const Tensor x = torch::randn({3, 5, 40}).requires_grad_(true);
  const Tensor y = l.forward(x);
  const Tensor g = torch::randn_like(y);
  y.backward(g);

  const Tensor w = l.weight.dequantize(at::kFloat);
  const Tensor x2 = x.detach().clone().requires_grad_(true);
  const Tensor A = l.lora->A.detach().clone().requires_grad_(true),
               B = l.lora->B.detach().clone().requires_grad_(true);
  const Tensor ref =
      torch::matmul(x2, w.t()) + 2.0 * torch::matmul(torch::matmul(x2, A.t()), B.t());
  ref.backward(g);
  EXPECT_TRUE(torch::allclose(y, ref, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(l.lora->A.grad(), A.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(l.lora->B.grad(), B.grad(), 1e-4, 1e-5));
}

// One micro-batch forward and backward; returns the loss and every adapter gradient.
std::pair<double, std::vector<Tensor>> step(const planner::ModelDesc& m,
                                            const planner::TrainConfig& c) {
  Model model(m, c, 7);
  // Non-zero B so that every adapter contributes to the output and to the gradients.
  for (const Tensor& p : model.trainable()) {
    torch::NoGradGuard g;
    if (p.abs().sum().item<double>() == 0) p.normal_(0, 0.02);
  }
  torch::manual_seed(3);
  const Tensor ids = torch::randint(m.vocab, {c.micro_batch, c.seq_len});
  const Tensor labels = torch::randint(m.vocab, {c.micro_batch, c.seq_len});
  Tensor x = model.embed(ids);
  for (int l = 0; l < m.layers; ++l) x = model.layer(l, x);
  const Tensor loss = model.loss(x, labels);
  loss.backward();
  std::vector<Tensor> grads;
  for (const Tensor& p : model.trainable()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

// Same adapter gradients within fp32 tolerance (different summation orders).
void expect_close_gradients(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-3, 1e-6))
        << "gradient " << i << " max diff " << (a[i] - b[i]).abs().max().item<double>();
  }
}

class Layouts : public ::testing::TestWithParam<const char*> {};

TEST_P(Layouts, CheckpointedGradientsAreBitwiseEqual) {
  const planner::ModelDesc m = planner::load_model(GetParam());
  planner::TrainConfig plain = tiny_config(m), ckpt = tiny_config(m);
  ckpt.checkpointed.assign(m.layers, true);
  const auto [loss_a, a] = step(m, plain);
  const auto [loss_b, b] = step(m, ckpt);
  EXPECT_EQ(loss_a, loss_b);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].defined() && b[i].defined()) << i;
    EXPECT_TRUE(torch::equal(a[i], b[i])) << "gradient " << i;
  }
}

TEST_P(Layouts, EfficientAttentionAndChunkedLossMatchEagerAndFull) {
  const planner::ModelDesc m = planner::load_model(GetParam());
  planner::TrainConfig base = tiny_config(m), other = tiny_config(m);
  base.attention = planner::Attention::kEager;
  other.attention = planner::Attention::kEfficient;
  other.loss_chunk = 24;  // not a divisor of N = 64
  const auto [loss_a, a] = step(m, base);
  const auto [loss_b, b] = step(m, other);
  EXPECT_NEAR(loss_a, loss_b, 1e-5);
  expect_close_gradients(a, b);
}

TEST(EfficientAttention, MatchesEagerAcrossQueryChunksWithAndWithoutAWindow) {
  // tiny-gemma2 slides a 32-token window on layers 0 and 2; 160 tokens span two query chunks
  // of 128, so the second chunk's window starts mid-sequence.
  const planner::ModelDesc m = planner::load_model("tiny-gemma2");
  planner::TrainConfig eager = tiny_config(m), efficient = tiny_config(m);
  eager.seq_len = efficient.seq_len = 160;
  eager.micro_batch = efficient.micro_batch = 1;
  eager.attention = planner::Attention::kEager;
  efficient.attention = planner::Attention::kEfficient;
  const auto [loss_a, a] = step(m, eager);
  const auto [loss_b, b] = step(m, efficient);
  EXPECT_NEAR(loss_a, loss_b, 1e-5);
  expect_close_gradients(a, b);
  // The window changes the result: the same run with every token visible differs, and there too
  // the second chunk (keys 0..159 only) matches eager attention.
  planner::ModelDesc full = m;
  full.sliding_window = 0;
  const auto [loss_c, c] = step(full, eager);
  const auto [loss_d, d] = step(full, efficient);
  EXPECT_GT(std::abs(loss_c - loss_a), 1e-4);
  EXPECT_NEAR(loss_c, loss_d, 1e-5);
  expect_close_gradients(c, d);
}

TEST(Checkpoint, RecomputeRepeatsTheForwardsDropoutMasks) {
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  planner::TrainConfig plain = tiny_config(m), ckpt = tiny_config(m);
  plain.lora_dropout = ckpt.lora_dropout = 0.1;
  ckpt.checkpointed.assign(m.layers, true);
  const auto [loss_a, a] = step(m, plain);
  const auto [loss_b, b] = step(m, ckpt);
  EXPECT_EQ(loss_a, loss_b);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "gradient " << i;
}

INSTANTIATE_TEST_SUITE_P(Tiny, Layouts,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-phi3",
                                           "tiny-gemma2"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

TEST(TrackingAllocator, CountsBytesPhasesAndBudget) {
  TrackingAllocator& mem = TrackingAllocator::install();
  mem.clear_phases();
  const int64_t before = mem.live_bytes();
  mem.set_phase("a");
  {
    const Tensor t = torch::empty({1000}, torch::kFloat);  // +4000
    EXPECT_EQ(mem.live_bytes(), before + 4000);
    mem.set_budget(before + 4000 + 1000);
    EXPECT_THROW(torch::empty({1000}, torch::kFloat), c10::OutOfMemoryError);  // +4000 > budget
    mem.set_budget(0);
  }
  EXPECT_EQ(mem.live_bytes(), before);
  const std::vector<PhaseMeasure> phases = mem.phases();
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(phases[0].name, "a");
  EXPECT_EQ(phases[0].peak_bytes, before + 4000);
}

TEST(MemoryMeter, CpuMeterIsTheTrackingAllocatorWithReservedEqualToAllocated) {
  const std::unique_ptr<MemoryMeter> meter = make_memory_meter(c10::Device(c10::kCPU));
  meter->clear_phases();
  meter->reset_peak();
  const int64_t before = meter->live_bytes();
  meter->set_phase("a");
  {
    const Tensor t = torch::empty({1000}, torch::kFloat);  // +4000 -> before + 4000 peak
    EXPECT_EQ(meter->live_bytes(), before + 4000);
  }
  meter->set_phase("b");
  const Tensor u = torch::empty({500}, torch::kFloat);  // +2000 -> before + 2000 in phase b
  EXPECT_EQ(meter->peak_bytes(), before + 4000);
  EXPECT_EQ(meter->reserved_peak_bytes(), before + 4000);
  const std::vector<PhaseMeasure> phases = meter->phases();
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].peak_bytes, before + 4000);
  EXPECT_EQ(phases[0].reserved_peak_bytes, before + 4000);
  EXPECT_EQ(phases[1].peak_bytes, before + 2000);
  EXPECT_EQ(phases[1].reserved_peak_bytes, before + 2000);
  meter->clear_phases();
}

#ifndef LORAPLAN_TORCH_CUDA
TEST(Training, CudaIsRefusedWithoutACudaLibTorch) {
  TrainRequest r;
  r.model = planner::load_model("tiny-llama");
  r.config = tiny_config(r.model);
  r.config.device = planner::Device::kCuda;
  r.steps = 1;
  try {
    run_training(r);
    FAIL() << "expected a refusal";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "--device cuda: this executor runs on the CPU (its LibTorch has no CUDA)");
  }
}
#endif

// tiny-llama, T 32, B 4, r 16, every layer checkpointed.
TrainRequest tiny_request() {
  TrainRequest r;
  r.model = planner::load_model("tiny-llama");
  r.config = tiny_config(r.model);
  r.config.checkpointed.assign(r.model.layers, true);
  r.config.lora_rank = 16;
  r.config.micro_batch = 4;
  return r;
}

TEST(Training, LossFallsMeasurementRepeatsAndAdapterIsPeftShaped) {
  loraplan::testing::TempDir dir;
  TrainRequest r = tiny_request();
  r.steps = 50;
  r.lr = 1e-2;
  r.out_dir = dir.path();
  const RunReport a = run_training(r);
  ASSERT_EQ(a.steps.size(), 50u);
  auto mean_loss = [&](size_t from) {
    double sum = 0;
    for (size_t i = from; i < from + 5; ++i) sum += a.steps[i].loss;
    return sum / 5;
  };
  // Random frozen weights, 16 sequences to learn: the first five steps start near ln(256) = 5.55.
  EXPECT_LT(mean_loss(45), mean_loss(0) - 0.4) << mean_loss(0) << " -> " << mean_loss(45);
  r.out_dir.clear();
  const RunReport b = run_training(r);
  EXPECT_EQ(a.device, "cpu");
  EXPECT_EQ(a.peak_bytes, b.peak_bytes);
  EXPECT_EQ(a.reserved_peak_bytes, a.peak_bytes);  // the tracking allocator caches nothing
  ASSERT_EQ(a.phases.size(), b.phases.size());
  for (size_t i = 0; i < a.phases.size(); ++i)
    EXPECT_EQ(a.phases[i].peak_bytes, b.phases[i].peak_bytes);

  const std::vector<planner::TensorRecord> t =
      planner::read_safetensors_tensors(dir.file("adapter_model.safetensors"));
  ASSERT_EQ(t.size(), 2u * 7 * 2);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const planner::TensorRecord& x : t) {
    shapes[x.name] = x.shape;
    EXPECT_EQ(x.dtype, planner::DType::kF32) << x.name;
  }
  EXPECT_EQ(shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"],
            (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(shapes["base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"],
            (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(shapes["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"],
            (std::vector<int64_t>{16, 176}));
  std::ifstream cfg(dir.file("adapter_config.json"));
  const nlohmann::json j = nlohmann::json::parse(cfg);
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["r"], 16);
  EXPECT_EQ(j["target_modules"].size(), 7u);
}

TEST(Training, BudgetStopsTheRunWithOutOfMemory) {
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  TrainRequest r;
  r.model = m;
  r.config = tiny_config(m);
  r.steps = 2;
  r.budget_bytes = 200000;  // below the resident weights and adapters
  const RunReport rep = run_training(r);
  EXPECT_TRUE(rep.out_of_memory);
  EXPECT_NE(rep.error.find("out of memory: tried to allocate"), std::string::npos) << rep.error;
}

// |predicted - measured| / measured that the accuracy tests accept (peak and each phase).
constexpr double kPhaseTolerance = 0.005;

TEST(Accuracy, PredictedPeakWithinHalfAPercent) {
  TrainRequest r = tiny_request();
  r.steps = 2;
  const RunReport measured = run_training(r);
  const planner::Estimate predicted = planner::estimate(r.model, r.config, planner::cpu_device(0));
  const double error = std::abs(static_cast<double>(predicted.peak_bytes - measured.peak_bytes)) /
                       static_cast<double>(measured.peak_bytes);
  EXPECT_LT(error, kPhaseTolerance)
      << "predicted " << predicted.peak_bytes << " measured " << measured.peak_bytes;
}

// ---- Offload: frozen weights of chosen layers in host memory, staged in for their turn. ----

TEST(Offload, SameLossAndGradientsAsResidentWeights) {
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  for (bool checkpoint : {false, true}) {
    planner::TrainConfig plain = tiny_config(m), off = tiny_config(m);
    plain.checkpointed.assign(m.layers, checkpoint);
    off.checkpointed.assign(m.layers, checkpoint);
    off.offloaded.assign(m.layers, true);
    const auto [loss_a, a] = step(m, plain);
    const auto [loss_b, b] = step(m, off);
    EXPECT_EQ(loss_a, loss_b) << "checkpoint " << checkpoint;
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "gradient " << i;
  }
}

TEST(Offload, WeightsLeaveTheTrackedPoolAndAreStagedPerPhase) {
  TrainRequest r = tiny_request();
  r.steps = 2;
  const RunReport plain = run_training(r);
  r.config.offloaded = {false, true};
  const RunReport off = run_training(r);
  // Layer 1's seven nf4 weights, as the planner counts them, live outside the pool.
  int64_t layer_bytes = 0;
  for (const auto& [out, in] :
       {std::pair{64, 64}, {32, 64}, {32, 64}, {64, 64}, {176, 64}, {176, 64}, {64, 176}}) {
    layer_bytes += planner::linear_weight_bytes(out, in, r.config.weights);
  }
  EXPECT_EQ(off.host_bytes, layer_bytes);
  EXPECT_EQ(plain.host_bytes, 0);
  EXPECT_EQ(plain.resident_bytes - off.resident_bytes, layer_bytes);
  // The step's peak is in the loss phase, where layer 1's weights are not staged.
  EXPECT_EQ(plain.peak_bytes - off.peak_bytes, layer_bytes);
  ASSERT_EQ(plain.steps.size(), off.steps.size());
  for (size_t i = 0; i < plain.steps.size(); ++i)
    EXPECT_EQ(plain.steps[i].loss, off.steps[i].loss) << "step " << i;
  // While layer 1 runs its weights are staged in: its phases peak as high as without offload;
  // layer 0's phases are lower by the whole layer.
  std::map<std::string, int64_t> p, o;
  for (const PhaseMeasure& x : plain.phases) p[x.name] = x.peak_bytes;
  for (const PhaseMeasure& x : off.phases) o[x.name] = x.peak_bytes;
  EXPECT_EQ(p["fwd L1"], o["fwd L1"]);
  EXPECT_EQ(p["bwd L1"], o["bwd L1"]);
  EXPECT_EQ(p["fwd L0"] - o["fwd L0"], layer_bytes);
  EXPECT_EQ(p["bwd L0"] - o["bwd L0"], layer_bytes);
}

TEST(Accuracy, OffloadedPhasesWithinOnePercent) {
  TrainRequest r = tiny_request();
  r.steps = 2;
  for (const std::vector<bool>& offload :
       {std::vector<bool>{true, false}, std::vector<bool>{true, true}}) {
    for (bool checkpoint : {false, true}) {
      r.config.offloaded = offload;
      r.config.checkpointed.assign(r.model.layers, checkpoint);
      const RunReport measured = run_training(r);
      const planner::Estimate predicted =
          planner::estimate(r.model, r.config, planner::cpu_device(0));
      const std::string what = std::string("offload ") + (offload[1] ? "all" : "L0") +
                               " checkpoint " + (checkpoint ? "all" : "none");
      EXPECT_EQ(predicted.host_bytes, measured.host_bytes) << what;
      std::map<std::string, int64_t> want;
      for (const planner::PhasePeak& x : predicted.phases) want[x.name] = x.peak_bytes;
      for (const PhaseMeasure& x : measured.phases) {
        if (!want.count(x.name)) continue;
        const double error = std::abs(static_cast<double>(want[x.name] - x.peak_bytes)) /
                             static_cast<double>(x.peak_bytes);
        EXPECT_LT(error, 0.01) << what << ", " << x.name << ": predicted " << want[x.name]
                               << " measured " << x.peak_bytes;
      }
      const double error =
          std::abs(static_cast<double>(predicted.peak_bytes - measured.peak_bytes)) /
          static_cast<double>(measured.peak_bytes);
      EXPECT_LT(error, 0.01) << what << ": predicted " << predicted.peak_bytes << " measured "
                             << measured.peak_bytes;
    }
  }
}

// Every phase's measured peak against the simulator's, on configurations that exercise what the
// activation table models (scripts/accuracy.py runs the full grid into docs/accuracy.md).
struct AccuracyCase {
  const char* name;
  const char* model;
  void (*configure)(planner::TrainConfig& c, const planner::ModelDesc& m);
};

class PhaseAccuracy : public ::testing::TestWithParam<AccuracyCase> {};

TEST_P(PhaseAccuracy, EveryPhaseWithinTolerance) {
  TrainRequest r;
  r.model = planner::load_model(GetParam().model);
  r.config = tiny_config(r.model);
  GetParam().configure(r.config, r.model);
  r.steps = 2;
  const RunReport measured = run_training(r);
  ASSERT_FALSE(measured.out_of_memory) << measured.error;
  const planner::Estimate predicted = planner::estimate(r.model, r.config, planner::cpu_device(0));
  std::map<std::string, int64_t> phases;
  for (const PhaseMeasure& p : measured.phases) phases[p.name] = p.peak_bytes;
  auto error = [](int64_t predicted, int64_t measured) {
    return std::abs(static_cast<double>(predicted - measured)) / static_cast<double>(measured);
  };
  EXPECT_LT(error(predicted.peak_bytes, measured.peak_bytes), kPhaseTolerance)
      << "peak: predicted " << predicted.peak_bytes << " measured " << measured.peak_bytes;
  int compared = 0;
  for (const planner::PhasePeak& p : predicted.phases) {
    if (p.name == "setup" || !phases.count(p.name)) continue;
    ++compared;
    EXPECT_LT(error(p.peak_bytes, phases[p.name]), kPhaseTolerance)
        << p.name << ": predicted " << p.peak_bytes << " measured " << phases[p.name];
  }
  EXPECT_EQ(compared, 2 * r.model.layers + 4);  // embed, fwd L*, loss, bwd L*, optim, batch
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, PhaseAccuracy,
    ::testing::Values(
        // Soft-capped efficient attention in checkpointed layers, rank 64 on every linear.
        AccuracyCase{"gemma2_int8_checkpointed_efficient", "tiny-gemma2",
                     [](planner::TrainConfig& c, const planner::ModelDesc& m) {
                       c.weights = {.format = WeightFormat::kInt8, .double_quant = false};
                       c.checkpointed.assign(m.layers, true);
                       c.micro_batch = 4;
                       c.seq_len = 64;
                       c.lora_rank = 64;
                       c.optimizer = planner::Optimizer::kSgd;
                       c.attention = planner::Attention::kEfficient;
                     }},
        // Fused qkv / gate_up views, eager attention, dropout, chunked loss, accumulation.
        AccuracyCase{"phi3_nf4_every2_eager_dropout", "tiny-phi3",
                     [](planner::TrainConfig& c, const planner::ModelDesc& m) {
                       c.weights = {.format = WeightFormat::kNf4, .double_quant = false};
                       c.checkpointed = {true, false, true};
                       c.micro_batch = 8;
                       c.lora_rank = 4;
                       c.lora_dropout = 0.05;
                       c.lora_targets = planner::parse_lora_targets("qkv,o", m, "--lora-targets");
                       c.attention = planner::Attention::kEager;
                       c.loss_chunk = 24;
                       c.grad_accum = 4;
                     }},
        // bitsandbytes' 8-bit AdamW: uint8 state with absmax per 256 for the tensors of 4096
        // elements or more, fp32 state below; paged: all of it in host memory, outside the peaks.
        AccuracyCase{"llama_adamw8bit_rank64", "tiny-llama",
                     [](planner::TrainConfig& c, const planner::ModelDesc&) {
                       c.lora_rank = 64;
                       c.optimizer = planner::Optimizer::kAdamW8bit;
                       c.grad_accum = 2;
                     }},
        AccuracyCase{"llama_paged_adamw8bit_rank64", "tiny-llama",
                     [](planner::TrainConfig& c, const planner::ModelDesc&) {
                       c.lora_rank = 64;
                       c.optimizer = planner::Optimizer::kPagedAdamW8bit;
                     }},
        // Long keys, few heads: a query chunk's causal mask [rows, keys] beside its scores
        // outweighs the softmax's row statistics and output that come after it.
        AccuracyCase{"llama_efficient_1024_keys_checkpointed", "tiny-llama",
                     [](planner::TrainConfig& c, const planner::ModelDesc& m) {
                       c.checkpointed.assign(m.layers, true);
                       c.seq_len = 1024;
                       c.micro_batch = 1;
                       c.compute = planner::DType::kF32;
                       c.attention = planner::Attention::kEfficient;
                       c.grad_accum = 2;
                     }},
        // Three query chunks; layers 0 and 2 see a 32-token window, 1 and 3 every earlier token:
        // each chunk's buffers are sized by the keys it sees.
        AccuracyCase{"gemma2_efficient_windowed_3_chunks", "tiny-gemma2",
                     [](planner::TrainConfig& c, const planner::ModelDesc&) {
                       c.seq_len = 300;
                       c.micro_batch = 1;
                       c.attention = planner::Attention::kEfficient;
                     }},
        // bf16 compute over bf16 weights, one checkpointed layer, q/k norms.
        AccuracyCase{"qwen3_bf16_compute_layer1", "tiny-qwen3",
                     [](planner::TrainConfig& c, const planner::ModelDesc& m) {
                       c.weights = {.format = WeightFormat::kBf16, .double_quant = false};
                       c.compute = planner::DType::kBF16;
                       c.checkpointed.assign(m.layers, false);
                       c.checkpointed[1] = true;
                       c.seq_len = 64;
                       c.lora_rank = 16;
                       c.attention = planner::Attention::kEfficient;
                     }}),
    [](const ::testing::TestParamInfo<AccuracyCase>& info) {
      return std::string(info.param.name);
    });

}  // namespace
}  // namespace loraplan::executor
