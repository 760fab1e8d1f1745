// Hugging Face config.json -> ModelDesc. Defaults are those of each family's transformers
// config class, so a minimal config reads the way transformers would read it.
#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

using nlohmann::json;

struct FamilyRow {
  std::string_view model_type;
  std::string_view architecture;  // used when model_type is absent
  Family family;
};

constexpr FamilyRow kFamilies[] = {
    {"llama", "LlamaForCausalLM", Family::kLlama},
    {"mistral", "MistralForCausalLM", Family::kMistral},
    {"qwen2", "Qwen2ForCausalLM", Family::kQwen2},
    {"qwen3", "Qwen3ForCausalLM", Family::kQwen3},
    {"phi3", "Phi3ForCausalLM", Family::kPhi3},
    {"gemma2", "Gemma2ForCausalLM", Family::kGemma2},
};

constexpr const char* kSupported = "must be one of llama, mistral, qwen2, qwen3, phi3, gemma2";

Family read_family(const json& j, const JsonFields& f) {
  if (f.has("model_type")) {
    const std::string type = f.string_or("model_type", "");
    for (const FamilyRow& r : kFamilies) {
      if (r.model_type == type) return r.family;
    }
    f.fail("model_type", kSupported);
  }
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const json& a : j["architectures"]) {
      for (const FamilyRow& r : kFamilies) {
        if (a.is_string() && r.architecture == a.get<std::string>()) return r.family;
      }
    }
  }
  f.fail("model_type", kSupported);
}

DType read_dtype(const JsonFields& f) {
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype". Without either,
  // transformers loads fp32.
  const char* key = f.has("dtype") ? "dtype" : "torch_dtype";
  if (!f.has(key)) return DType::kF32;
  const std::optional<DType> t = parse_dtype(f.string_or(key, ""));
  if (!t) f.fail(key, "must be a known dtype (float32, float16, bfloat16)");
  return *t;
}

}  // namespace

ModelDesc parse_config_json(const std::string& text, const std::string& where) {
  const json j = parse_json(text, where);
  if (!j.is_object()) throw InputError(located(where, 0, "expected a JSON object"));
  const JsonFields f(j, text, where);

  ModelDesc m;
  m.name = where;
  m.family = read_family(j, f);
  const Family fam = m.family;
  m.hf_id = f.string_or("hf_id", f.string_or("_name_or_path", ""));
  m.vocab = f.positive_int("vocab_size");
  m.hidden = f.positive_int("hidden_size");
  m.intermediate = f.positive_int("intermediate_size");
  m.layers = f.positive_int("num_hidden_layers");
  m.heads = f.positive_int("num_attention_heads");
  m.kv_heads = f.positive_int_or("num_key_value_heads", m.heads);
  const int64_t default_head_dim =
      fam == Family::kGemma2 ? 256 : fam == Family::kQwen3 ? 128 : m.hidden / m.heads;
  m.head_dim = f.positive_int_or("head_dim", default_head_dim);
  m.tied_embeddings = f.bool_or("tie_word_embeddings", fam == Family::kGemma2);

  // Biases: Qwen2 hard-codes q/k/v biases; Llama-style attention_bias covers q, k, v and o.
  const bool attention_bias = f.bool_or("attention_bias", false);
  m.qkv_bias = fam == Family::kQwen2 || attention_bias;
  m.o_bias = fam != Family::kQwen2 && attention_bias;
  m.mlp_bias = f.bool_or("mlp_bias", false);
  m.lm_head_bias = f.bool_or("lm_head_bias", false);
  m.qk_norm = fam == Family::kQwen3;
  m.fused_qkv = m.fused_gate_up = fam == Family::kPhi3;
  m.norms_per_layer = fam == Family::kGemma2 ? 4 : 2;

  m.partial_rotary_factor = f.number_or("partial_rotary_factor", 1.0);
  m.rope_theta = f.number_or("rope_theta", 10000.0);
  m.rms_norm_eps = f.number_or("rms_norm_eps", fam == Family::kPhi3 ? 1e-5 : 1e-6);
  m.max_position_embeddings = f.positive_int_or("max_position_embeddings", 0);
  if (fam == Family::kGemma2 || f.bool_or("use_sliding_window", fam == Family::kMistral)) {
    m.sliding_window = f.positive_int_or("sliding_window", 0);
  }
  if (fam == Family::kGemma2) {
    m.attn_logit_softcapping = f.number_or("attn_logit_softcapping", 50.0);
    m.final_logit_softcapping = f.number_or("final_logit_softcapping", 30.0);
  }
  m.hidden_act = f.string_or("hidden_activation", f.string_or("hidden_act", "silu"));
  m.dtype = read_dtype(f);
  validate(m, where);
  return m;
}

ModelDesc read_config_json(const std::string& path) {
  return parse_config_json(read_text_file(path), path);
}

}  // namespace loraplan::planner
