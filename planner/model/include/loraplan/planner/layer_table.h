#pragma once
// One decoder layer's parameters, listed once for a model description: the inventory, the op
// graph, the cost model and the executor's model are all built from this table, so that what the
// planner counts and what the executor runs cannot drift apart.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model.h"

namespace loraplan::planner {

// A slice of a fused projection's output, in output order: qkv_proj is q, k, v.
struct FusedPart {
  Module module;
  int64_t out = 0;  // rows of the slice
};

// One projection of a decoder layer, weight [out, in].
struct LayerLinear {
  Module module = Module::kQ;
  Role role = Role::kAttention;  // kAttention or kMlp
  std::string_view path;         // within the layer, as Hugging Face names it: "self_attn.q_proj"
  int64_t out = 0, in = 0;
  bool bias = false;             // a bias [out]
  std::vector<FusedPart> parts;  // a fused projection's slices (Phi-3); empty otherwise

  // "model.layers.3.self_attn.q_proj": the module's name in a state dict.
  std::string name(int layer) const;
};

// Which RMSNorm of a decoder layer a weight belongs to.
enum class LayerNormKind { kInput, kPostAttention, kPreFeedforward, kPostFeedforward, kQ, kK };

struct LayerNorm {
  LayerNormKind kind = LayerNormKind::kInput;
  std::string_view path;  // within the layer: "input_layernorm", "self_attn.q_norm"
  int64_t width = 0;      // C, or D for the per-head q and k norms

  std::string name(int layer) const;  // "model.layers.3.input_layernorm"
};

// A decoder layer's parameters in Hugging Face's state-dict order: attention projections, the
// per-head norms, MLP projections, then the layer norms.
struct LayerTable {
  std::vector<LayerLinear> attention;  // q, k, v (or qkv), o: in forward order
  std::vector<LayerNorm> head_norms;   // q_norm, k_norm (Qwen3); empty otherwise
  std::vector<LayerLinear> mlp;        // gate, up (or gate_up), down: in forward order
  std::vector<LayerNorm> norms;        // input, post-attention (and Gemma-2's two feed-forward)

  std::vector<LayerLinear> linears() const;  // attention, then mlp
  // The projection of `module`; throws std::logic_error when the layer has none (a fused layout
  // asked for a split module, or the reverse).
  const LayerLinear& linear(Module module) const;
  bool has(LayerNormKind kind) const;
};

LayerTable layer_table(const ModelDesc& m);

// The tensors around the layers, as Hugging Face names them.
inline constexpr std::string_view kEmbedWeight = "model.embed_tokens.weight";
inline constexpr std::string_view kFinalNormWeight = "model.norm.weight";
inline constexpr std::string_view kLmHeadWeight = "lm_head.weight";
inline constexpr std::string_view kLmHeadBias = "lm_head.bias";

}  // namespace loraplan::planner
