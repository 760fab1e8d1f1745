#include "loraplan/planner/layer_table.h"

#include <stdexcept>

namespace loraplan::planner {
namespace {

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

}  // namespace

std::string LayerLinear::name(int layer) const { return layer_prefix(layer) + std::string(path); }
std::string LayerNorm::name(int layer) const { return layer_prefix(layer) + std::string(path); }

std::vector<LayerLinear> LayerTable::linears() const {
  std::vector<LayerLinear> all = attention;
  all.insert(all.end(), mlp.begin(), mlp.end());
  return all;
}

const LayerLinear& LayerTable::linear(Module module) const {
  for (const std::vector<LayerLinear>* half : {&attention, &mlp}) {
    for (const LayerLinear& l : *half) {
      if (l.module == module) return l;
    }
  }
  throw std::logic_error("this layer has no " + std::string(module_name(module)));
}

bool LayerTable::has(LayerNormKind kind) const {
  for (const std::vector<LayerNorm>* set : {&head_norms, &norms}) {
    for (const LayerNorm& n : *set) {
      if (n.kind == kind) return true;
    }
  }
  return false;
}

LayerTable layer_table(const ModelDesc& m) {
  const int64_t C = m.hidden, I = m.intermediate, D = m.head_dim;
  const int64_t HD = m.q_out(), KD = m.kv_out();
  const Role A = Role::kAttention, M = Role::kMlp;
  LayerTable t;
  if (m.fused_qkv) {
    t.attention.push_back({Module::kQkv,
                           A,
                           "self_attn.qkv_proj",
                           HD + 2 * KD,
                           C,
                           m.qkv_bias,
                           {{Module::kQ, HD}, {Module::kK, KD}, {Module::kV, KD}}});
  } else {
    t.attention.push_back({Module::kQ, A, "self_attn.q_proj", HD, C, m.qkv_bias, {}});
    t.attention.push_back({Module::kK, A, "self_attn.k_proj", KD, C, m.qkv_bias, {}});
    t.attention.push_back({Module::kV, A, "self_attn.v_proj", KD, C, m.qkv_bias, {}});
  }
  t.attention.push_back({Module::kO, A, "self_attn.o_proj", C, HD, m.o_bias, {}});
  if (m.qk_norm) {
    t.head_norms.push_back({LayerNormKind::kQ, "self_attn.q_norm", D});
    t.head_norms.push_back({LayerNormKind::kK, "self_attn.k_norm", D});
  }
  if (m.fused_gate_up) {
    t.mlp.push_back({Module::kGateUp,
                     M,
                     "mlp.gate_up_proj",
                     2 * I,
                     C,
                     m.mlp_bias,
                     {{Module::kGate, I}, {Module::kUp, I}}});
  } else {
    t.mlp.push_back({Module::kGate, M, "mlp.gate_proj", I, C, m.mlp_bias, {}});
    t.mlp.push_back({Module::kUp, M, "mlp.up_proj", I, C, m.mlp_bias, {}});
  }
  t.mlp.push_back({Module::kDown, M, "mlp.down_proj", C, I, m.mlp_bias, {}});
  t.norms.push_back({LayerNormKind::kInput, "input_layernorm", C});
  t.norms.push_back({LayerNormKind::kPostAttention, "post_attention_layernorm", C});
  if (m.sandwich_norms()) {
    t.norms.push_back({LayerNormKind::kPreFeedforward, "pre_feedforward_layernorm", C});
    t.norms.push_back({LayerNormKind::kPostFeedforward, "post_feedforward_layernorm", C});
  }
  return t;
}

}  // namespace loraplan::planner
