#include "loraplan/planner/inventory.h"

#include <numeric>

namespace loraplan::planner {

std::string_view role_name(Role r) {
  switch (r) {
    case Role::kEmbedding:
      return "embedding";
    case Role::kAttention:
      return "attention";
    case Role::kMlp:
      return "mlp";
    case Role::kNorm:
      return "norm";
    case Role::kLmHead:
      return "lm_head";
  }
  return "?";
}

std::string_view module_name(Module m) {
  switch (m) {
    case Module::kEmbed:
      return "embed_tokens";
    case Module::kQ:
      return "q_proj";
    case Module::kK:
      return "k_proj";
    case Module::kV:
      return "v_proj";
    case Module::kQkv:
      return "qkv_proj";
    case Module::kO:
      return "o_proj";
    case Module::kGate:
      return "gate_proj";
    case Module::kUp:
      return "up_proj";
    case Module::kGateUp:
      return "gate_up_proj";
    case Module::kDown:
      return "down_proj";
    case Module::kNorm:
      return "norm";
    case Module::kLmHead:
      return "lm_head";
  }
  return "?";
}

int64_t TensorSpec::numel() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

bool TensorSpec::is_linear_weight() const {
  return !is_bias && shape.size() == 2 && module != Module::kEmbed && module != Module::kNorm;
}

namespace {

// Appends rows in Hugging Face state-dict order (module registration order).
class InventoryBuilder {
 public:
  explicit InventoryBuilder(const ModelDesc& m) : m_(m) {}

  void add(std::string name, std::vector<int64_t> shape, Role role, Module module, int layer,
           bool is_bias = false) {
    out_.push_back({std::move(name), std::move(shape), m_.dtype, role, module, layer, is_bias});
  }

  // A projection weight [out, in] and, when `bias`, its bias [out].
  void linear(const std::string& prefix, Module module, Role role, int layer, int64_t out,
              int64_t in, bool bias) {
    const std::string name = prefix + std::string(module_name(module));
    add(name + ".weight", {out, in}, role, module, layer);
    if (bias) add(name + ".bias", {out}, role, module, layer, true);
  }

  void norm(const std::string& name, int64_t width, int layer) {
    add(name + ".weight", {width}, Role::kNorm, Module::kNorm, layer);
  }

  std::vector<TensorSpec> take() { return std::move(out_); }

 private:
  const ModelDesc& m_;
  std::vector<TensorSpec> out_;
};

}  // namespace

std::vector<TensorSpec> inventory(const ModelDesc& m) {
  const int64_t V = m.vocab, C = m.hidden, I = m.intermediate, D = m.head_dim;
  const int64_t HD = m.q_out(), KD = m.kv_out();
  InventoryBuilder b(m);
  b.add("model.embed_tokens.weight", {V, C}, Role::kEmbedding, Module::kEmbed, -1);  // [V, C]
  for (int l = 0; l < m.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string attn = p + "self_attn.", mlp = p + "mlp.";
    const Role A = Role::kAttention, M = Role::kMlp;
    if (m.fused_qkv) {
      b.linear(attn, Module::kQkv, A, l, HD + 2 * KD, C, m.qkv_bias);  // [(H+2Hkv)D, C]
    } else {
      b.linear(attn, Module::kQ, A, l, HD, C, m.qkv_bias);  // [H D, C]
      b.linear(attn, Module::kK, A, l, KD, C, m.qkv_bias);  // [Hkv D, C]
      b.linear(attn, Module::kV, A, l, KD, C, m.qkv_bias);  // [Hkv D, C]
    }
    b.linear(attn, Module::kO, A, l, C, HD, m.o_bias);  // [C, H D]
    if (m.qk_norm) {
      b.norm(attn + "q_norm", D, l);  // [D]
      b.norm(attn + "k_norm", D, l);  // [D]
    }
    if (m.fused_gate_up) {
      b.linear(mlp, Module::kGateUp, M, l, 2 * I, C, m.mlp_bias);  // [2I, C]
    } else {
      b.linear(mlp, Module::kGate, M, l, I, C, m.mlp_bias);  // [I, C]
      b.linear(mlp, Module::kUp, M, l, I, C, m.mlp_bias);    // [I, C]
    }
    b.linear(mlp, Module::kDown, M, l, C, I, m.mlp_bias);  // [C, I]
    b.norm(p + "input_layernorm", C, l);                   // [C]
    b.norm(p + "post_attention_layernorm", C, l);          // [C]
    if (m.norms_per_layer == 4) {
      b.norm(p + "pre_feedforward_layernorm", C, l);   // [C]
      b.norm(p + "post_feedforward_layernorm", C, l);  // [C]
    }
  }
  b.norm("model.norm", C, -1);  // [C]
  if (!m.tied_embeddings) b.linear("", Module::kLmHead, Role::kLmHead, -1, V, C, m.lm_head_bias);
  return b.take();
}

int64_t total_params(const std::vector<TensorSpec>& tensors) {
  int64_t n = 0;
  for (const TensorSpec& t : tensors) n += t.numel();
  return n;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace loraplan::planner
