// From the tensors a weight file declares to a model description, and back: the inventory a
// description implies must be what the file holds.
#include "loraplan/planner/tensor_layout.h"

#include <map>
#include <numeric>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/inventory.h"

namespace loraplan::planner {
namespace {

// Tensors outside the Hugging Face parameter tree (ONNX constants, rotary caches) carry no
// parameters of the model and are not checked.
bool is_model_parameter(const std::string& name) {
  if (name.find("rotary_emb") != std::string::npos) return false;
  return name.starts_with("model.") || name.starts_with("lm_head.");
}

class TensorIndex {
 public:
  TensorIndex(const std::vector<TensorRecord>& tensors, const std::string& where) : where_(where) {
    for (const TensorRecord& t : tensors) by_name_[t.name] = &t;
  }

  const TensorRecord* find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  // Dimension `dim` of a tensor that must exist with `rank` dimensions.
  int64_t dim(const std::string& name, size_t rank, size_t dim) const {
    const TensorRecord* t = find(name);
    if (!t)
      throw InputError(
          located(where_, 0,
                  "no tensor \"" + name +
                      "\"; not a Hugging Face decoder checkpoint of a supported family"));
    if (t->shape.size() != rank) {
      throw InputError(located(where_, 0,
                               "tensor \"" + name + "\" has shape " + shape_text(t->shape) +
                                   ", expected " + std::to_string(rank) + " dimensions"));
    }
    return t->shape[dim];
  }

  bool has(const std::string& name) const { return find(name) != nullptr; }

 private:
  std::map<std::string, const TensorRecord*> by_name_;
  const std::string& where_;
};

int count_layers(const std::vector<TensorRecord>& tensors) {
  const std::string prefix = "model.layers.";
  int layers = 0;
  for (const TensorRecord& t : tensors) {
    if (!t.name.starts_with(prefix)) continue;
    const int index = std::atoi(t.name.c_str() + prefix.size());
    layers = std::max(layers, index + 1);
  }
  return layers;
}

// The head dimension cannot be read off [H D, C] weights. Prefer the value the family or size
// class uses most: 256 (Gemma-2), 64 for hidden <= 2048, else 128.
int64_t guess_head_dim(const ModelDesc& m, int64_t q_out, int64_t kv_out) {
  std::vector<int64_t> order = m.hidden <= 2048
                                   ? std::vector<int64_t>{64, 128, 96, 80, 256, 32, 16}
                                   : std::vector<int64_t>{128, 64, 96, 80, 256, 32, 16};
  if (m.family == Family::kGemma2) order.insert(order.begin(), 256);
  for (int64_t d : order) {
    if (q_out % d == 0 && kv_out % d == 0) return d;
  }
  return std::gcd(q_out, kv_out);
}

DType majority_dtype(const std::vector<TensorRecord>& tensors) {
  std::map<DType, int64_t> bytes;
  for (const TensorRecord& t : tensors) {
    if (!is_model_parameter(t.name)) continue;
    const int64_t n =
        std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<>());
    bytes[t.dtype] += n * dtype_bytes(t.dtype);
  }
  DType best = DType::kF32;
  int64_t most = -1;
  for (const auto& [type, n] : bytes) {
    if (n > most) best = type, most = n;
  }
  return best;
}

}  // namespace

ModelDesc describe_from_tensors(const std::vector<TensorRecord>& tensors,
                                const std::string& where) {
  const TensorIndex idx(tensors, where);
  ModelDesc m;
  m.name = where;
  m.vocab = idx.dim("model.embed_tokens.weight", 2, 0);
  m.hidden = idx.dim("model.embed_tokens.weight", 2, 1);
  m.layers = count_layers(tensors);
  if (m.layers == 0) throw InputError(located(where, 0, "no \"model.layers.N.*\" tensors"));

  const std::string attn = "model.layers.0.self_attn.", mlp = "model.layers.0.mlp.";
  m.fused_qkv = idx.has(attn + "qkv_proj.weight");
  m.fused_gate_up = idx.has(mlp + "gate_up_proj.weight");
  m.qk_norm = idx.has(attn + "q_norm.weight");
  m.norms_per_layer = idx.has("model.layers.0.pre_feedforward_layernorm.weight") ? 4 : 2;
  m.qkv_bias = idx.has(attn + (m.fused_qkv ? "qkv_proj.bias" : "q_proj.bias"));
  m.o_bias = idx.has(attn + "o_proj.bias");
  m.mlp_bias = idx.has(mlp + "down_proj.bias");
  m.tied_embeddings = !idx.has("lm_head.weight");
  m.lm_head_bias = idx.has("lm_head.bias");
  m.family = m.fused_qkv               ? Family::kPhi3
             : m.qk_norm               ? Family::kQwen3
             : m.norms_per_layer == 4  ? Family::kGemma2
             : m.qkv_bias && !m.o_bias ? Family::kQwen2
                                       : Family::kLlama;
  if (m.family == Family::kGemma2) m.hidden_act = "gelu_pytorch_tanh";

  m.intermediate = m.fused_gate_up ? idx.dim(mlp + "gate_up_proj.weight", 2, 0) / 2
                                   : idx.dim(mlp + "gate_proj.weight", 2, 0);
  // o_proj reads H D columns in every family; k/v width follows from it.
  const int64_t q_out = idx.dim(attn + "o_proj.weight", 2, 1);
  const int64_t kv_out = m.fused_qkv ? (idx.dim(attn + "qkv_proj.weight", 2, 0) - q_out) / 2
                                     : idx.dim(attn + "k_proj.weight", 2, 0);
  if (m.qk_norm) {
    m.head_dim = idx.dim(attn + "q_norm.weight", 1, 0);
  } else {
    m.head_dim = guess_head_dim(m, q_out, kv_out);
    m.notes.push_back("head_dim assumed to be " + std::to_string(m.head_dim) +
                      ": weight shapes do not tell heads apart; put config.json beside the "
                      "weights to be exact");
  }
  m.heads = q_out / m.head_dim;
  m.kv_heads = kv_out / m.head_dim;
  m.dtype = majority_dtype(tensors);
  validate(m, where);
  check_tensors_match(m, tensors, where);
  return m;
}

DType check_tensors_match(const ModelDesc& m, const std::vector<TensorRecord>& tensors,
                          const std::string& where) {
  const TensorIndex idx(tensors, where);
  const std::vector<TensorSpec> expected = inventory(m);
  std::map<std::string, bool> known;
  for (const TensorSpec& spec : expected) {
    known[spec.name] = true;
    const TensorRecord* t = idx.find(spec.name);
    if (!t) {
      throw InputError(located(where, 0,
                               "tensor \"" + spec.name +
                                   "\" is missing (the model description expects shape " +
                                   shape_text(spec.shape) + ")"));
    }
    if (t->shape != spec.shape) {
      throw InputError(located(where, 0,
                               "tensor \"" + spec.name + "\" has shape " + shape_text(t->shape) +
                                   ", the model description expects " + shape_text(spec.shape)));
    }
  }
  for (const TensorRecord& t : tensors) {
    // A tied checkpoint may still store lm_head.weight (a copy of the embedding).
    if (!is_model_parameter(t.name) || known.count(t.name) ||
        (m.tied_embeddings && t.name == "lm_head.weight"))
      continue;
    throw InputError(located(where, 0,
                             "unexpected tensor \"" + t.name + "\" " + shape_text(t.shape) +
                                 " is not part of the model description"));
  }
  return majority_dtype(tensors);
}

}  // namespace loraplan::planner
