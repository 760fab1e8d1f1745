#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loraplan/planner/dtype.h"

namespace loraplan::planner {

// Decoder-only transformer layouts that share the Llama skeleton and differ in details.
enum class Family { kLlama, kMistral, kQwen2, kQwen3, kPhi3, kGemma2 };

std::string_view family_name(Family f);  // the Hugging Face model_type: "llama", "phi3", ...

// config.json "rope_scaling": how the rotary frequencies are stretched for long contexts, as
// transformers' modeling_rope_utils computes them. The reader resolves defaults and derived
// values (the attention factor, Phi-3's factor from the top-level original context), so
// rope_frequencies() (rope.h) needs nothing else.
enum class RopeType { kDefault, kLinear, kDynamic, kYarn, kLongRope, kLlama3 };

std::string_view rope_type_name(RopeType t);  // "default", "linear", ..., as config.json spells it

struct RopeScaling {
  RopeType type = RopeType::kDefault;
  double factor = 1;                             // linear, dynamic, yarn, llama3
  int64_t original_max_position_embeddings = 0;  // llama3, longrope, yarn: pretrained context
  double attention_factor = 1;       // cos and sin are multiplied by it (yarn, longrope)
  double low_freq_factor = 1;        // llama3
  double high_freq_factor = 4;       // llama3
  double beta_fast = 32;             // yarn
  double beta_slow = 1;              // yarn
  bool truncate = true;              // yarn: correction range rounded to whole dims
  std::vector<double> short_factor;  // longrope, [rotary dim / 2], up to the original context
  std::vector<double> long_factor;   // longrope, beyond it

  bool operator==(const RopeScaling&) const = default;
};

// One plain description of a decoder-only transformer. Dimension letters used everywhere:
// V vocab, C hidden, I intermediate, L layers, H query heads, Hkv key/value heads, D head dim.
struct ModelDesc {
  std::string name;   // profile name or the file it was read from
  std::string hf_id;  // "microsoft/Phi-4-mini-instruct"; empty when unknown
  Family family = Family::kLlama;

  int64_t vocab = 0;         // V
  int64_t hidden = 0;        // C
  int64_t intermediate = 0;  // I, width of gate and of up (each)
  int64_t layers = 0;        // L
  int64_t heads = 0;         // H
  int64_t kv_heads = 0;      // Hkv (grouped-query attention when < H)
  int64_t head_dim = 0;      // D; may differ from C / H (Gemma-2, Qwen3, Llama-3.2-3B)

  bool tied_embeddings = false;  // lm_head shares embed_tokens
  bool qkv_bias = false;         // q, k, v projections carry a bias (Qwen2, attention_bias)
  bool o_bias = false;           // o_proj carries a bias (Llama attention_bias)
  bool mlp_bias = false;         // gate, up, down carry biases
  bool lm_head_bias = false;
  bool qk_norm = false;        // per-head RMSNorm on q and k, weight [D] (Qwen3)
  bool fused_qkv = false;      // one qkv_proj [(H + 2 Hkv) D, C] (Phi-3)
  bool fused_gate_up = false;  // one gate_up_proj [2 I, C] (Phi-3)
  int norms_per_layer = 2;     // 4 for Gemma-2's sandwich norms

  double partial_rotary_factor = 1.0;   // fraction of D that is rotated (Phi-4-mini: 0.75)
  double rope_theta = 10000;            // rotary base
  RopeScaling rope_scaling;             // config.json "rope_scaling"; default: none
  double rms_norm_eps = 1e-6;           // RMSNorm epsilon (Phi-3: 1e-5)
  int64_t max_position_embeddings = 0;  // tokens; 0 when unknown
  int64_t sliding_window = 0;           // tokens; 0 = full attention everywhere
  int64_t max_window_layers = 0;        // Qwen2/Qwen3: layers from this index on slide
  std::vector<bool> sliding_layers;     // config.json "layer_types" (true: sliding_attention);
                                        // empty: the family's rule (layer_slides)
  double query_pre_attn_scalar = 0;     // Gemma-2: scores scale by its -1/2 power; 0 = head_dim
  double attn_logit_softcapping = 0;    // Gemma-2: tanh capping of scores; 0 = off
  double final_logit_softcapping = 0;   // Gemma-2: tanh capping of logits; 0 = off
  std::string hidden_act = "silu";
  DType dtype = DType::kBF16;  // dtype of the stored weights (config torch_dtype)

  // Facts that were inferred rather than read ("head_dim assumed 64: ..."), for the user.
  std::vector<std::string> notes;

  int64_t q_out() const { return heads * head_dim; }      // H D
  int64_t kv_out() const { return kv_heads * head_dim; }  // Hkv D
  int64_t rotary_dim() const;                             // rotated dims per head
  // Whether layer l attends only to the last sliding_window tokens (i - j < window): as
  // "layer_types" says, else every layer of Mistral and Phi-3, Gemma-2's even layers, Qwen's
  // layers from max_window_layers on.
  bool layer_slides(int64_t l) const;
  double attention_scale() const;  // the factor on q k^T

  // Gemma-2's departures from the Llama skeleton, asked one way everywhere:
  bool sandwich_norms() const { return norms_per_layer == 4; }      // norms after attention and MLP
  bool norm_adds_one() const { return family == Family::kGemma2; }  // RMSNorm scales by 1 + w
  bool scales_embedding() const { return family == Family::kGemma2; }  // embeddings * sqrt(C)

  bool operator==(const ModelDesc&) const = default;
};

// The largest dimensions loraplan reads: several times the largest published decoder's (Llama
// 3.1 405B: C 16384, I 53248, L 126, H 128; Gemma: V 256000), small enough that a layer's byte
// and element counts stay far inside 64 bits. A config.json beyond them is refused where it is
// read.
struct ModelLimits {
  static constexpr int64_t kVocab = int64_t{1} << 23;         // 8,388,608 tokens
  static constexpr int64_t kHidden = int64_t{1} << 17;        // 131,072
  static constexpr int64_t kIntermediate = int64_t{1} << 20;  // 1,048,576
  static constexpr int64_t kLayers = 1024;
  static constexpr int64_t kHeads = 1024;  // query and key/value heads
  static constexpr int64_t kHeadDim = 4096;
};

// Checks the invariants every consumer relies on (dimensions within ModelLimits, finite positive
// rope_theta and rms_norm_eps, ...); throws InputError naming `where` and the field.
void validate(const ModelDesc& m, const std::string& where);

}  // namespace loraplan::planner
