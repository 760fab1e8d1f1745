#pragma once
// The decoder the executor trains, built from the planner's ModelDesc and TrainConfig. Every op
// that keeps tensors for backward is a custom autograd function that keeps exactly what the
// planner's activation table (planner/src/op_graph.cc) says, and frees its transients at once.

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "loraplan/planner/layer_table.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/train_config.h"
#include "quant.h"
#include "weight_source.h"

namespace loraplan::executor {

// Where the model's tensors live and compute: the CPU, or the first CUDA device.
c10::Device torch_device(planner::Device device);

struct LoraAdapter {
  torch::Tensor A;     // [r, in] fp32, trainable
  torch::Tensor B;     // [out, r] fp32, trainable (zeros at start)
  double scale = 1.0;  // alpha / r
  double dropout = 0.0;
};

// A frozen projection [out, in] in its device format, optionally with a LoRA adapter.
struct FrozenLinear {
  std::string name;        // Hugging Face module path: "model.layers.0.self_attn.q_proj"
  QuantizedWeight weight;  // in device (tracked) memory; empty when the layer is offloaded
  // Offloaded layers: the weight in host memory outside the tracked pool (pinned when the device
  // is a GPU), and the copy staged into device memory for the layer's forward, backward or
  // recompute (empty between them).
  QuantizedWeight host;
  mutable QuantizedWeight staged;
  torch::Tensor bias;  // [out] in the compute dtype; undefined when the layer has none
  std::optional<LoraAdapter> lora;
  at::ScalarType compute = at::kFloat;
  std::vector<planner::FusedPart> parts;  // a fused projection's slices, from the layer table

  torch::Tensor forward(const torch::Tensor& x) const;  // x [..., in] -> [..., out]
  // A fused projection's output [..., out] cut into its parts: views, in the table's order.
  std::vector<torch::Tensor> slices(const torch::Tensor& y) const;
  // The weight as the device holds it now: `weight`, or the staged copy of `host`.
  const QuantizedWeight& device_weight() const;
};

struct DecoderLayer {
  int index = 0;
  torch::Tensor input_norm, post_attn_norm;  // [C]
  torch::Tensor pre_ff_norm, post_ff_norm;   // [C], Gemma-2 only
  torch::Tensor q_norm, k_norm;              // [D], Qwen3 only
  std::vector<FrozenLinear> attn;            // q, k, v (or qkv), o
  std::vector<FrozenLinear> mlp;             // gate, up (or gate_up), down
  bool offloaded = false;                    // linear weights live in host memory
  c10::Device device{c10::kCPU};             // where staged copies go

  torch::Tensor& norm(planner::LayerNormKind kind);  // the field that holds the table's norm
  std::vector<torch::Tensor> trainable() const;      // LoRA A and B of every adapter
  // Offloaded layers: copies every linear weight from host into device memory, or drops the
  // copies. No-ops for resident layers.
  void stage() const;
  void unstage() const;
  int64_t host_bytes() const;  // bytes of the weights kept in host memory
};

// The MLP's activation, from config.json's hidden_act (Gemma: hidden_activation).
enum class Activation { kSilu, kGeluTanh, kGelu, kRelu };

// Where documents start in each sequence of a packed micro-batch: starts[b] holds sequence b's
// document offsets in increasing order, the first 0 (the last document runs to T, its padding
// after it). Empty: every sequence is one document. Host data: nothing in the tracked pool.
struct Documents {
  std::vector<std::vector<int64_t>> starts;
  bool packed() const { return !starts.empty(); }
};

class Model {
 public:
  // Frozen tensors from `weights`; LoRA adapters from `seed`. Tensors are made on the CPU (the same
  // values on every device), quantized there and moved to c.device.
  Model(const planner::ModelDesc& m, const planner::TrainConfig& c, uint64_t seed,
        const WeightSource& weights);
  // Seeded random frozen tensors.
  Model(const planner::ModelDesc& m, const planner::TrainConfig& c, uint64_t seed);

  // Embedding of input ids [B, T] -> hidden [B, T, C] (frozen, no gradient).
  torch::Tensor embed(const torch::Tensor& ids) const;
  // One decoder layer, checkpointed when the configuration says so. An offloaded layer's weights
  // are staged for its forward and again for its backward; the backward releases them at its end
  // when x requires grad, otherwise release_staged() does (after backward()).
  torch::Tensor layer(int l, const torch::Tensor& x) const;
  void release_staged() const;
  // Final norm, output head and mean cross-entropy over labels != -100.
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& labels) const;
  // The mean loss of a batch in evaluation: no gradients, no dropout, nothing checkpointed (each
  // tensor freed at its last use), offloaded layers staged in turn.
  torch::Tensor eval_loss(const torch::Tensor& ids, const torch::Tensor& labels) const;
  // Final norm and output head: logits [B, T, V] in the compute dtype, for evaluation.
  torch::Tensor logits(const torch::Tensor& x) const;

  std::vector<torch::Tensor> trainable() const;
  const std::vector<DecoderLayer>& layers() const { return layers_; }
  const planner::ModelDesc& desc() const { return m_; }
  int64_t host_bytes() const;  // offloaded weights, outside the tracked pool

  // The document layout of the micro-batch that runs next (forward, backward and recompute):
  // positions restart at each document and no token attends to an earlier document. Empty: one
  // document per sequence.
  void set_documents(Documents documents) const { documents_ = std::move(documents); }

  // Plain forward of one layer, no checkpoint (the checkpoint function calls it).
  torch::Tensor layer_forward(const DecoderLayer& layer, const torch::Tensor& x) const;

  // The device's default generator as checkpointed layer `layer`'s forward finds it, for its
  // recompute to draw the same dropout masks. On the CPU the state is copied into a generator
  // kept per layer: LibTorch 1.13 never frees what Generator::clone() makes (2.6 KB a call, one
  // call per checkpointed layer per micro-batch, measured with LeakSanitizer and RSS).
  at::Generator rng_snapshot(int64_t layer, c10::Device device) const;

 private:
  torch::Tensor layer_run(int l, const torch::Tensor& x) const;  // checkpointed or plain

  planner::ModelDesc m_;
  planner::TrainConfig c_;
  c10::Device device_;  // every tensor below, and every activation
  at::ScalarType compute_;
  torch::Tensor embed_;       // [V, C] compute dtype
  torch::Tensor lm_head_;     // [V, C]; the embedding when tied
  torch::Tensor final_norm_;  // [C]
  Activation act_ = Activation::kSilu;
  torch::Tensor cos_, sin_;  // [T, rotary/2] compute dtype, for the configured T
  torch::Tensor causal_;     // [T, T] bool, eager attention, layers that see every earlier token
  torch::Tensor window_;     // [T, T] bool, eager attention, layers whose window is shorter than T
  std::vector<DecoderLayer> layers_;
  mutable std::vector<at::Generator> rng_snapshots_;  // [L] CPU generators, made on first use
  mutable Documents documents_;                       // the running micro-batch's
};

}  // namespace loraplan::executor
