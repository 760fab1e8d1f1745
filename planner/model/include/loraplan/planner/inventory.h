#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loraplan/planner/dtype.h"
#include "loraplan/planner/model.h"

namespace loraplan::planner {

enum class Role { kEmbedding, kAttention, kMlp, kNorm, kLmHead };
std::string_view role_name(Role r);  // "embedding", "attention", "mlp", "norm", "lm_head"

// Which module of a layer a tensor belongs to; LoRA targets are chosen by these.
enum class Module { kEmbed, kQ, kK, kV, kQkv, kO, kGate, kUp, kGateUp, kDown, kNorm, kLmHead };
std::string_view module_name(Module m);  // the Hugging Face module name: "q_proj", "gate_up_proj"

// One parameter tensor of the model, named as Hugging Face names it.
struct TensorSpec {
  std::string name;            // "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // [out, in] for linear weights
  DType dtype = DType::kBF16;
  Role role = Role::kNorm;
  Module module = Module::kNorm;
  int layer = -1;  // decoder layer index; -1 outside the layers
  bool is_bias = false;

  int64_t numel() const;
  int64_t bytes() const { return numel() * dtype_bytes(dtype); }
  bool is_linear_weight() const;  // a 2-D projection weight that LoRA can wrap
};

// Every parameter tensor in state-dict order. A tied lm_head is not listed (it is the embedding).
std::vector<TensorSpec> inventory(const ModelDesc& m);

int64_t total_params(const std::vector<TensorSpec>& tensors);

// "[4096, 3072]", as errors and reports print shapes.
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace loraplan::planner
