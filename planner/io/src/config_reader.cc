// Hugging Face config.json -> ModelDesc. Defaults are those of each family's transformers
// config class, so a minimal config reads the way transformers would read it.
#include <cmath>

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

double positive_number(const JsonFields& f, const char* key) {
  if (!f.has(key)) f.fail(key, "must be a positive number");
  const double v = f.number_or(key, 0);
  if (!(v > 0)) f.fail(key, "must be a positive number");
  return v;
}

// A dimension: a positive integer up to its limit (ModelLimits), so sizes cannot overflow.
int64_t dimension(const JsonFields& f, const char* key, int64_t limit) {
  return f.positive_int_up_to(key, limit);
}
int64_t dimension_or(const JsonFields& f, const char* key, int64_t limit, int64_t fallback) {
  return f.has(key) ? dimension(f, key, limit) : fallback;
}

double positive_number_or(const JsonFields& f, const char* key, double fallback) {
  return f.has(key) ? positive_number(f, key) : fallback;
}

std::vector<double> number_list(const JsonFields& f, const char* key) {
  std::vector<double> out;
  for (const json& v : f.array(key)) {
    if (!v.is_number()) f.fail(key, "must be a list of numbers");
    out.push_back(v.get<double>());
  }
  return out;
}

// transformers' YaRN attention factor: 0.1 mscale ln(factor) + 1.
double yarn_mscale(double factor, double mscale) {
  return factor <= 1 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

// "rope_scaling" (or transformers 5's "rope_parameters"), with the defaults and derived values
// transformers applies.
RopeScaling read_rope_scaling(const JsonFields& config, const JsonFields& s, const ModelDesc& m) {
  const char* type_key = s.has("rope_type") || !s.has("type") ? "rope_type" : "type";
  std::string type = s.string_or(type_key, "default");
  // Phi3Config renames its older "su" and "yarn" settings to longrope.
  if (type == "su" || (type == "yarn" && m.family == Family::kPhi3)) type = "longrope";
  RopeScaling r;
  auto context_or_max = [&](const JsonFields& f, const char* key) {
    const int64_t n = f.positive_int_or(key, m.max_position_embeddings);
    if (n <= 0) f.fail(key, "must be a positive integer when max_position_embeddings is absent");
    return n;
  };
  if (type == "default") return r;
  if (type == "linear") {
    r.type = RopeType::kLinear;
    r.factor = positive_number(s, "factor");
  } else if (type == "dynamic") {
    r.type = RopeType::kDynamic;
    r.factor = positive_number(s, "factor");
    if (m.max_position_embeddings <= 0)
      config.fail("max_position_embeddings", "is needed by rope_type dynamic");
  } else if (type == "llama3") {
    r.type = RopeType::kLlama3;
    r.factor = positive_number(s, "factor");
    r.low_freq_factor = positive_number(s, "low_freq_factor");
    r.high_freq_factor = positive_number(s, "high_freq_factor");
    if (r.high_freq_factor <= r.low_freq_factor)
      s.fail("high_freq_factor", "must be greater than low_freq_factor");
    r.original_max_position_embeddings = s.positive_int("original_max_position_embeddings");
  } else if (type == "yarn") {
    r.type = RopeType::kYarn;
    r.factor = positive_number(s, "factor");
    r.original_max_position_embeddings = context_or_max(s, "original_max_position_embeddings");
    // transformers: get("beta_fast") or 32, so 0 also means the default.
    r.beta_fast = s.number_or("beta_fast", 0) != 0 ? s.number_or("beta_fast", 0) : 32;
    r.beta_slow = s.number_or("beta_slow", 0) != 0 ? s.number_or("beta_slow", 0) : 1;
    if (r.beta_fast <= r.beta_slow) s.fail("beta_fast", "must be greater than beta_slow");
    r.truncate = s.bool_or("truncate", true);
    const double mscale = s.number_or("mscale", 0),
                 mscale_all_dim = s.number_or("mscale_all_dim", 0);
    const double derived =
        mscale > 0 && mscale_all_dim > 0
            ? yarn_mscale(r.factor, mscale) / yarn_mscale(r.factor, mscale_all_dim)
            : yarn_mscale(r.factor, 1);
    r.attention_factor = s.number_or("attention_factor", derived);
  } else if (type == "longrope") {
    r.type = RopeType::kLongRope;
    r.short_factor = number_list(s, "short_factor");
    r.long_factor = number_list(s, "long_factor");
    // Phi-3 keeps the pretrained context at the top level (Phi3Config's default: 4096) and derives
    // the factor from it.
    double factor = 0;
    if (config.has("original_max_position_embeddings") || m.family == Family::kPhi3) {
      r.original_max_position_embeddings =
          config.positive_int_or("original_max_position_embeddings", 4096);
      if (m.max_position_embeddings <= 0)
        config.fail("max_position_embeddings", "is needed by rope_type longrope");
      factor = static_cast<double>(m.max_position_embeddings) /
               static_cast<double>(r.original_max_position_embeddings);
    } else {
      r.original_max_position_embeddings = context_or_max(s, "original_max_position_embeddings");
      factor = positive_number(s, "factor");
    }
    r.factor = factor;
    const double derived =
        factor <= 1
            ? 1.0
            : std::sqrt(1 + std::log(factor) /
                                std::log(static_cast<double>(r.original_max_position_embeddings)));
    r.attention_factor = s.number_or("attention_factor", derived);
  } else {
    s.fail(type_key, "must be one of default, linear, dynamic, yarn, longrope, llama3");
  }
  return r;
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
  m.vocab = dimension(f, "vocab_size", ModelLimits::kVocab);
  m.hidden = dimension(f, "hidden_size", ModelLimits::kHidden);
  m.intermediate = dimension(f, "intermediate_size", ModelLimits::kIntermediate);
  m.layers = dimension(f, "num_hidden_layers", ModelLimits::kLayers);
  m.heads = dimension(f, "num_attention_heads", ModelLimits::kHeads);
  m.kv_heads = dimension_or(f, "num_key_value_heads", ModelLimits::kHeads, m.heads);
  const int64_t default_head_dim = fam == Family::kGemma2  ? 256
                                   : fam == Family::kQwen3 ? 128
                                                           : m.hidden / m.heads;
  m.head_dim = dimension_or(f, "head_dim", ModelLimits::kHeadDim, default_head_dim);
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

  m.partial_rotary_factor = positive_number_or(f, "partial_rotary_factor", 1.0);
  m.rope_theta = positive_number_or(f, "rope_theta", 10000.0);
  m.rms_norm_eps = positive_number_or(f, "rms_norm_eps", fam == Family::kPhi3 ? 1e-5 : 1e-6);
  m.max_position_embeddings = f.positive_int_or("max_position_embeddings", 0);
  if (f.has("rope_parameters")) {
    // transformers 5 writes the base and the scaling together; per-layer-type tables (Gemma-3,
    // ...) belong to families loraplan does not read.
    const JsonFields p = f.object("rope_parameters");
    if (p.has("full_attention") || p.has("sliding_attention")) {
      f.fail("rope_parameters",
             "must be one table (per-layer-type rope parameters are not supported)");
    }
    m.rope_theta = positive_number_or(p, "rope_theta", m.rope_theta);
    m.rope_scaling = read_rope_scaling(f, p, m);
  } else if (f.has("rope_scaling")) {
    m.rope_scaling = read_rope_scaling(f, f.object("rope_scaling"), m);
  }
  // Sliding windows as transformers applies them: Gemma-2 always, Mistral unless the window is
  // null (MistralConfig's default: 4096), Phi-3 when one is given, Qwen only with
  // use_sliding_window and from max_window_layers on. An explicit null means no window.
  auto window_or = [&](int64_t fallback) {
    return f.is_null("sliding_window") ? 0 : f.positive_int_or("sliding_window", fallback);
  };
  if (fam == Family::kGemma2 || fam == Family::kMistral) {
    m.sliding_window = window_or(4096);
  } else if (fam == Family::kQwen2 || fam == Family::kQwen3) {
    if (f.bool_or("use_sliding_window", false)) {
      m.sliding_window = window_or(4096);
      m.max_window_layers = f.has("max_window_layers") ? f.integer("max_window_layers", 0,
                                                                   "must be a non-negative integer")
                                                       : 28;
    }
  } else if (fam == Family::kPhi3) {
    m.sliding_window = window_or(0);
  }
  // transformers 4.53+ lists each layer's kind for the families whose layers differ.
  if ((fam == Family::kGemma2 || fam == Family::kQwen2 || fam == Family::kQwen3) &&
      f.has("layer_types")) {
    const json& types = f.array("layer_types");
    if (static_cast<int64_t>(types.size()) != m.layers) {
      f.fail("layer_types", "must name one kind per layer (" + std::to_string(m.layers) + ")");
    }
    for (const json& t : types) {
      if (t != "full_attention" && t != "sliding_attention") {
        f.fail("layer_types", "must hold \"full_attention\" or \"sliding_attention\" per layer");
      }
      m.sliding_layers.push_back(t == "sliding_attention");
    }
  }
  if (fam == Family::kGemma2) {
    m.query_pre_attn_scalar = positive_number_or(f, "query_pre_attn_scalar", 256);
    // Gemma2Config's defaults when absent; null turns the capping off.
    m.attn_logit_softcapping =
        f.is_null("attn_logit_softcapping") ? 0 : f.number_or("attn_logit_softcapping", 50.0);
    m.final_logit_softcapping =
        f.is_null("final_logit_softcapping") ? 0 : f.number_or("final_logit_softcapping", 30.0);
  }
  // Gemma2Config reads hidden_activation (default gelu_pytorch_tanh); the others hidden_act.
  m.hidden_act = fam == Family::kGemma2 ? f.string_or("hidden_activation", "gelu_pytorch_tanh")
                                        : f.string_or("hidden_act", "silu");
  m.dtype = read_dtype(f);
  validate(m, where);
  return m;
}

ModelDesc read_config_json(const std::string& path) {
  return parse_config_json(read_text_file(path), path);
}

}  // namespace loraplan::planner
