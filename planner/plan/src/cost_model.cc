#include "loraplan/planner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "loraplan/planner/attention.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/layer_table.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {
namespace {

// Shares of the dense peaks that training reaches: large products in cuBLAS reach about half the
// tensor-core peak at LoRA shapes, streaming kernels about 70% of the memory bandwidth, pinned
// host copies about 75% of the link.
constexpr double kTensorEfficiency = 0.5;
constexpr double kFp32Efficiency = 0.7;
constexpr double kMemoryEfficiency = 0.7;
constexpr double kLinkEfficiency = 0.75;
constexpr double kGpuOpOverhead = 8e-6;  // launch and dispatch, seconds per operation

// A generic card for "--gpu 6GB": the rates of a mid-range Ampere GPU.
constexpr double kGenericTensorTflops = 50, kGenericFp32Tflops = 12.7, kGenericBandwidthGbps = 360,
                 kGenericPcieGbps = 15.75;

// Roofline: the slower of the arithmetic and the memory traffic.
double roofline(double flops, double bytes, const Rates& r) {
  return std::max(flops / r.matmul_flops, bytes / r.memory_bw);
}

}  // namespace

Rates gpu_rates(const GpuProfile& gpu, DType compute) {
  Rates r;
  const bool generic = gpu.from_size_only || gpu.fp32_tflops <= 0;
  const double tensor = generic ? kGenericTensorTflops : gpu.tensor_tflops;
  const double fp32 = generic ? kGenericFp32Tflops : gpu.fp32_tflops;
  const bool bf16_ok = generic || gpu.bf16_native;
  const bool tensor_cores =
      tensor > 0 && (compute == DType::kF16 || (compute == DType::kBF16 && bf16_ok));
  r.matmul_flops = 1e12 * (tensor_cores ? tensor * kTensorEfficiency : fp32 * kFp32Efficiency);
  r.memory_bw =
      1e9 * kMemoryEfficiency * (generic ? kGenericBandwidthGbps : gpu.memory_bandwidth_gbps);
  const double link = generic || gpu.pcie_host_gbps <= 0 ? kGenericPcieGbps : gpu.pcie_host_gbps;
  r.host_link_bw = 1e9 * kLinkEfficiency * link;
  r.op_overhead_s = kGpuOpOverhead;
  r.source =
      generic ? "a generic GPU's rates (" + gpu.name + " names no profile)" : gpu.name + " profile";
  return r;
}

Rates cpu_rates(int threads) {
  // LibTorch 1.13 with OpenBLAS on one x86-64 core: about 40 GFLOP/s in fp32 products, bf16
  // products converted to fp32 at about a quarter of that; memory streams about 8 GB/s per core.
  Rates r;
  const double t = std::max(threads, 1);
  r.matmul_flops = 40e9 * t;
  r.memory_bw = 8e9 * std::min(t, 4.0);
  r.host_link_bw = r.memory_bw;  // staging is a copy within host memory
  r.op_overhead_s = 10e-6;
  // The executor expands NF4/FP4 codes with a scalar loop (two table lookups and a scale per
  // element): about 4.2 ns per element, fitted to scripts/plan_speed.py runs of tiny-llama-256.
  r.unpack_4bit_s = 4.2e-9;
  r.source = "cpu (" + std::to_string(threads) + " thread" + (threads == 1 ? "" : "s") + ")";
  return r;
}

namespace {

// One decoder layer's linear layers in one micro-batch's forward: the frozen products, the LoRA
// products, dequantizing the frozen weights, the weights' bytes and the forward's op count
// (norms, rotary, attention, activation and residuals, then per linear).
struct LinearCost {
  double frozen = 0, lora = 0, dequant = 0, weight_bytes = 0;
  double frozen_flops = 0, lora_flops = 0;
  double ops_fwd = 14;
};

LinearCost linear_cost(const TrainConfig& c, const Rates& r,
                       const std::vector<LayerLinear>& linears) {
  const double N = static_cast<double>(c.tokens());
  const double a = dtype_bytes(c.compute);
  const double rank = static_cast<double>(c.lora_rank);
  const WeightFormatInfo& format = weight_format_info(c.weights.format);
  const bool dequantized =
      format.quantized() || dtype_bytes(c.compute) != linear_weight_bytes(1, 1, c.weights);
  LinearCost k;
  for (const LayerLinear& l : linears) {
    const double in = static_cast<double>(l.in), out = static_cast<double>(l.out);
    const double flops = 2 * N * in * out;
    k.frozen += roofline(flops, (N * in + N * out + in * out) * a, r);
    k.frozen_flops += flops;
    const double w = static_cast<double>(linear_weight_bytes(l.out, l.in, c.weights));
    k.weight_bytes += w;

    if (format.four_bit() && r.unpack_4bit_s > 0)
      k.dequant += in * out * r.unpack_4bit_s;
    else if (dequantized)
      k.dequant += (w + in * out * a) / r.memory_bw;
    k.ops_fwd += dequantized ? 2 : 1;
    if (c.lora_targets.contains(l.module)) {
      const double lf = 2 * N * rank * (in + out);
      k.lora += roofline(lf, (2 * N * in + 2 * N * rank + 2 * N * out) * a, r);
      k.lora_flops += lf;
      k.ops_fwd += c.lora_dropout > 0 ? 5 : 4;
    }
  }
  return k;
}

// One optimizer update over the adapters: parameters, gradients and states read and written.
double optimizer_seconds(const ModelDesc& m, const TrainConfig& c, const Rates& r,
                         const std::vector<LayerLinear>& linears) {
  const double rank = static_cast<double>(c.lora_rank);
  double adapter_params = 0;
  for (const LayerLinear& l : linears) {
    if (c.lora_targets.contains(l.module))
      adapter_params += rank * static_cast<double>(l.in + l.out);
  }
  adapter_params *= static_cast<double>(m.layers);
  const OptimizerInfo& opt = optimizer_info(c.optimizer);
  const double state_bytes = opt.states * (opt.eight_bit ? 1 : 4);  // per adapter element
  return adapter_params * (8 + state_bytes) * 2 / r.memory_bw +
         4 * static_cast<double>(m.layers) * r.op_overhead_s;
}

}  // namespace

StepCost step_cost(const ModelDesc& m, const TrainConfig& c, const Rates& rates) {
  Rates r = rates;
  if (c.device == Device::kCpu && c.compute == DType::kBF16) r.matmul_flops /= 4;
  StepCost s;
  const double N = static_cast<double>(c.tokens());
  const double T = static_cast<double>(c.seq_len), B = static_cast<double>(c.micro_batch);
  const double a = dtype_bytes(c.compute);
  const double C = static_cast<double>(m.hidden), I = static_cast<double>(m.intermediate);
  const double V = static_cast<double>(m.vocab);
  const std::vector<LayerLinear> linears = layer_table(m).linears();
  const LinearCost lin = linear_cost(c, r, linears);
  // Attention: Q K^T and P V, 4 B H T T D FLOPs forward; eager streams the B H T T scores
  // through softmax, efficient keeps them on chip and recomputes them in backward.
  const double H = static_cast<double>(m.heads), D = static_cast<double>(m.head_dim);
  const double att_flops = 4 * B * H * T * T * D;
  const bool eager = c.attention == Attention::kEager;
  const double elem_f = N * (12 * C + 4 * I) * a / r.memory_bw;

  // Efficient attention computes the scores its query chunks see (the executor's, on every
  // device): about half of them causally, fewer in windowed layers.
  const double full_share = eager ? 1 : chunked_score_share(c.seq_len, 0);
  const double window_share = eager ? 1 : chunked_score_share(c.seq_len, m.sliding_window);

  const int64_t L = m.layers;
  double micro = 0, flops = 0, ops = 0;
  for (int64_t l = 0; l < L; ++l) {
    const double share = windowed_attention(m, l, c.seq_len) ? window_share : full_share;
    const double att_f = eager ? roofline(att_flops, B * H * T * T * a * 4, r)
                               : roofline(att_flops * share, 4 * N * H * D * a, r);
    const double att_b = eager ? roofline(2 * att_flops, B * H * T * T * a * 6, r)
                               : roofline(2.5 * att_flops * share, 8 * N * H * D * a, r);
    const double layer_fwd = lin.frozen + lin.lora + att_f + elem_f;
    const bool ckpt = c.checkpointed[l];
    const double uses = ckpt ? 3 : 2;  // forward, backward, recompute
    s.frozen_s += 2 * lin.frozen;
    s.lora_s += 3 * lin.lora;
    s.attention_s += att_f + att_b;
    s.elementwise_s += 3 * elem_f;
    s.dequant_s += uses * lin.dequant;
    if (ckpt) s.recompute_s += layer_fwd;
    if (c.offloaded[l]) s.offload_s += uses * lin.weight_bytes / r.host_link_bw;
    ops += lin.ops_fwd * (ckpt ? 4 : 3);
    // Products: frozen forward and input gradient, LoRA forward and both gradients, attention
    // forward and backward; a checkpointed layer's forward once more.
    flops += 2 * lin.frozen_flops + 3 * lin.lora_flops + 3 * att_flops +
             (ckpt ? lin.frozen_flops + lin.lora_flops + att_flops : 0);
  }
  // Output head and cross-entropy: N C V forward and input gradient; chunks recompute theirs.
  const double head_f = roofline(2 * N * C * V, (N * C + C * V + N * V) * a, r);
  const double chunks = c.loss_chunk > 0 ? std::ceil(N / static_cast<double>(c.loss_chunk)) : 1;
  s.head_s = (c.loss_chunk > 0 ? 3 : 2) * head_f + N * V * (a + 4) * 4 / r.memory_bw;
  ops += 10 * chunks + 10;
  flops += (c.loss_chunk > 0 ? 3 : 2) * 2 * N * C * V;
  s.overhead_s = ops * r.op_overhead_s;
  micro = s.frozen_s + s.lora_s + s.attention_s + s.recompute_s + s.dequant_s + s.elementwise_s +
          s.head_s + s.offload_s + s.overhead_s;
  s.optimizer_s = optimizer_seconds(m, c, r, linears);

  const double accum = static_cast<double>(c.grad_accum);
  for (double* part : {&s.frozen_s, &s.lora_s, &s.attention_s, &s.recompute_s, &s.dequant_s,
                       &s.elementwise_s, &s.head_s, &s.offload_s, &s.overhead_s}) {
    *part *= accum;
  }
  s.step_s = micro * accum + s.optimizer_s;
  s.flops = flops * accum;
  s.tokens_per_s = N * accum / s.step_s;
  return s;
}

}  // namespace loraplan::planner
