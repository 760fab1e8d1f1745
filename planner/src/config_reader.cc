// Hugging Face config.json -> ModelDesc. Defaults are those of each family's transformers
// config class, so a minimal config reads the way transformers would read it.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

using nlohmann::json;

// Typed access to the fields of one config object; every error names the file, the line of
// the field and the field.
class ConfigFields {
 public:
  ConfigFields(const json& j, const std::string& text, const std::string& where)
      : j_(j), text_(text), where_(where) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  [[noreturn]] void fail(const char* key, const std::string& msg) const {
    std::string full = "\"" + std::string(key) + "\" " + msg;
    if (has(key)) full += ", got " + j_.at(key).dump();
    throw InputError(located(where_, json_key_line(text_, key), full));
  }

  int64_t positive_int(const char* key) const {
    if (!has(key)) fail(key, "is missing (a positive integer)");
    return positive_int_or(key, 0);
  }

  int64_t positive_int_or(const char* key, int64_t fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) fail(key, "must be a positive integer");
    return v.get<int64_t>();
  }

  bool bool_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_boolean()) fail(key, "must be true or false");
    return j_.at(key).get<bool>();
  }

  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_number()) fail(key, "must be a number");
    return j_.at(key).get<double>();
  }

  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_string()) fail(key, "must be a string");
    return j_.at(key).get<std::string>();
  }

 private:
  const json& j_;
  const std::string& text_;
  const std::string& where_;
};

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

Family read_family(const json& j, const ConfigFields& f) {
  if (f.has("model_type")) {
    const std::string type = f.string_or("model_type", "");
    for (const FamilyRow& r : kFamilies) {
      if (r.model_type == type) return r.family;
    }
    f.fail("model_type", "is not supported (supported: llama, mistral, qwen2, qwen3, phi3, gemma2)");
  }
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const json& a : j["architectures"]) {
      for (const FamilyRow& r : kFamilies) {
        if (a.is_string() && r.architecture == a.get<std::string>()) return r.family;
      }
    }
  }
  f.fail("model_type", "is missing (one of llama, mistral, qwen2, qwen3, phi3, gemma2)");
}

DType read_dtype(const ConfigFields& f) {
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype". Without either,
  // transformers loads fp32.
  const char* key = f.has("dtype") ? "dtype" : "torch_dtype";
  if (!f.has(key)) return DType::kF32;
  const std::optional<DType> t = parse_dtype(f.string_or(key, ""));
  if (!t) f.fail(key, "is not a known dtype (float32, float16, bfloat16)");
  return *t;
}

}  // namespace

ModelDesc parse_config_json(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann reports "[json.exception.parse_error.101] parse error at line 3, column 5: ...".
    std::string what = e.what();
    const size_t at = what.find("parse error");
    throw InputError(located(where, 0, "malformed JSON: " + what.substr(at == std::string::npos ? 0 : at)));
  }
  if (!j.is_object()) throw InputError(located(where, 0, "expected a JSON object"));
  const ConfigFields f(j, text, where);

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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(located(path, 0, "cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config_json(text.str(), path);
}

}  // namespace loraplan::planner
