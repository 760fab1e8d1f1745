#pragma once
// The decoder the executor trains, built from the planner's ModelDesc and TrainConfig. Every op
// that keeps tensors for backward is a custom autograd function that keeps exactly what the
// planner's activation table (planner/src/op_graph.cc) says, and frees its transients at once.

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "loraplan/planner/model.h"
#include "loraplan/planner/train_config.h"
#include "quant.h"

namespace loraplan::executor {

struct LoraAdapter {
  torch::Tensor A;      // [r, in] fp32, trainable
  torch::Tensor B;      // [out, r] fp32, trainable (zeros at start)
  double scale = 1.0;   // alpha / r
  double dropout = 0.0;
};

// A frozen projection [out, in] in its device format, optionally with a LoRA adapter.
struct FrozenLinear {
  std::string name;  // Hugging Face module path: "model.layers.0.self_attn.q_proj"
  QuantizedWeight weight;
  torch::Tensor bias;  // [out] in the compute dtype; undefined when the layer has none
  std::optional<LoraAdapter> lora;
  at::ScalarType compute = at::kFloat;

  torch::Tensor forward(const torch::Tensor& x) const;  // x [..., in] -> [..., out]
};

struct DecoderLayer {
  int index = 0;
  torch::Tensor input_norm, post_attn_norm;  // [C]
  torch::Tensor pre_ff_norm, post_ff_norm;   // [C], Gemma-2 only
  torch::Tensor q_norm, k_norm;              // [D], Qwen3 only
  std::vector<FrozenLinear> attn;            // q, k, v (or qkv), o
  std::vector<FrozenLinear> mlp;             // gate, up (or gate_up), down

  std::vector<torch::Tensor> trainable() const;  // LoRA A and B of every adapter
};

class Model {
 public:
  Model(const planner::ModelDesc& m, const planner::TrainConfig& c, uint64_t seed);

  // Embedding of input ids [B, T] -> hidden [B, T, C] (frozen, no gradient).
  torch::Tensor embed(const torch::Tensor& ids) const;
  // One decoder layer, checkpointed when the configuration says so.
  torch::Tensor layer(int l, const torch::Tensor& x) const;
  // Final norm, output head and mean cross-entropy over labels != -100.
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& labels) const;

  std::vector<torch::Tensor> trainable() const;
  const std::vector<DecoderLayer>& layers() const { return layers_; }
  const planner::ModelDesc& desc() const { return m_; }

  // Plain forward of one layer, no checkpoint (the checkpoint function calls it).
  torch::Tensor layer_forward(const DecoderLayer& layer, const torch::Tensor& x) const;

 private:
  planner::ModelDesc m_;
  planner::TrainConfig c_;
  at::ScalarType compute_;
  torch::Tensor embed_;      // [V, C] compute dtype
  torch::Tensor lm_head_;    // [V, C]; the embedding when tied
  torch::Tensor final_norm_;  // [C]
  torch::Tensor cos_, sin_;  // [T, rotary/2] compute dtype, for the configured T
  torch::Tensor causal_;     // [T, T] bool, eager attention only
  std::vector<DecoderLayer> layers_;
};

}  // namespace loraplan::executor
