#include "loraplan/planner/inventory.h"

#include <numeric>

#include "loraplan/planner/layer_table.h"

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

  // A projection weight [out, in] and, when it has one, its bias [out].
  void linear(const LayerLinear& p, int layer) {
    const std::string name = p.name(layer);
    add(name + ".weight", {p.out, p.in}, p.role, p.module, layer);
    if (p.bias) add(name + ".bias", {p.out}, p.role, p.module, layer, true);
  }

  void norm(std::string name, int64_t width, int layer) {
    add(std::move(name), {width}, Role::kNorm, Module::kNorm, layer);
  }

  std::vector<TensorSpec> take() { return std::move(out_); }

 private:
  const ModelDesc& m_;
  std::vector<TensorSpec> out_;
};

}  // namespace

std::vector<TensorSpec> inventory(const ModelDesc& m) {
  const LayerTable table = layer_table(m);
  InventoryBuilder b(m);
  b.add(std::string(kEmbedWeight), {m.vocab, m.hidden}, Role::kEmbedding, Module::kEmbed, -1);
  for (int l = 0; l < m.layers; ++l) {
    for (const LayerLinear& p : table.attention) b.linear(p, l);
    for (const LayerNorm& n : table.head_norms) b.norm(n.name(l) + ".weight", n.width, l);
    for (const LayerLinear& p : table.mlp) b.linear(p, l);
    for (const LayerNorm& n : table.norms) b.norm(n.name(l) + ".weight", n.width, l);
  }
  b.norm(std::string(kFinalNormWeight), m.hidden, -1);
  if (!m.tied_embeddings) {
    b.add(std::string(kLmHeadWeight), {m.vocab, m.hidden}, Role::kLmHead, Module::kLmHead, -1);
    if (m.lm_head_bias)
      b.add(std::string(kLmHeadBias), {m.vocab}, Role::kLmHead, Module::kLmHead, -1, true);
  }
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
