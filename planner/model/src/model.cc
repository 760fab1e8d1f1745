#include "loraplan/planner/model.h"

#include <cmath>

#include "loraplan/planner/errors.h"

namespace loraplan::planner {

std::string_view family_name(Family f) {
  switch (f) {
    case Family::kLlama:
      return "llama";
    case Family::kMistral:
      return "mistral";
    case Family::kQwen2:
      return "qwen2";
    case Family::kQwen3:
      return "qwen3";
    case Family::kPhi3:
      return "phi3";
    case Family::kGemma2:
      return "gemma2";
  }
  return "?";
}

std::string_view rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::kDefault:
      return "default";
    case RopeType::kLinear:
      return "linear";
    case RopeType::kDynamic:
      return "dynamic";
    case RopeType::kYarn:
      return "yarn";
    case RopeType::kLongRope:
      return "longrope";
    case RopeType::kLlama3:
      return "llama3";
  }
  return "?";
}

bool ModelDesc::layer_slides(int64_t l) const {
  if (sliding_window <= 0) return false;
  if (!sliding_layers.empty()) return sliding_layers[static_cast<size_t>(l)];
  switch (family) {
    case Family::kGemma2:
      return l % 2 == 0;
    case Family::kQwen2:
    case Family::kQwen3:
      return l >= max_window_layers;
    default:
      return true;
  }
}

double ModelDesc::attention_scale() const {
  return 1.0 / std::sqrt(query_pre_attn_scalar > 0 ? query_pre_attn_scalar
                                                   : static_cast<double>(head_dim));
}

int64_t ModelDesc::rotary_dim() const {
  // Phi-3 rounds down to an even number of rotated dims per head.
  const auto rotated = static_cast<int64_t>(std::floor(head_dim * partial_rotary_factor));
  return rotated - rotated % 2;
}

void validate(const ModelDesc& m, const std::string& where) {
  auto fail = [&](const std::string& msg) { throw InputError(located(where, 0, msg)); };
  auto dimension = [&](const char* field, int64_t v, int64_t limit) {
    if (v <= 0) fail(std::string(field) + " must be positive, got " + std::to_string(v));
    if (v > limit)
      fail(std::string(field) + " " + std::to_string(v) + " is beyond loraplan's limit of " +
           std::to_string(limit));
  };
  dimension("vocab_size", m.vocab, ModelLimits::kVocab);
  dimension("hidden_size", m.hidden, ModelLimits::kHidden);
  dimension("intermediate_size", m.intermediate, ModelLimits::kIntermediate);
  dimension("num_hidden_layers", m.layers, ModelLimits::kLayers);
  dimension("num_attention_heads", m.heads, ModelLimits::kHeads);
  dimension("num_key_value_heads", m.kv_heads, ModelLimits::kHeads);
  dimension("head_dim", m.head_dim, ModelLimits::kHeadDim);
  auto finite_positive = [&](const char* field, double v) {
    if (!(std::isfinite(v) && v > 0))
      fail(std::string(field) + " must be a finite positive number, got " + std::to_string(v));
  };
  finite_positive("rope_theta", m.rope_theta);
  finite_positive("rms_norm_eps", m.rms_norm_eps);
  if (m.query_pre_attn_scalar != 0)
    finite_positive("query_pre_attn_scalar", m.query_pre_attn_scalar);
  for (const auto& [field, cap] :
       {std::pair{"attn_logit_softcapping", m.attn_logit_softcapping},
        std::pair{"final_logit_softcapping", m.final_logit_softcapping}}) {
    if (!(std::isfinite(cap) && cap >= 0))
      fail(std::string(field) + " must be a finite number >= 0 (0: off), got " +
           std::to_string(cap));
  }
  if (m.heads % m.kv_heads != 0) {
    fail("num_attention_heads (" + std::to_string(m.heads) +
         ") must be a multiple of num_key_value_heads (" + std::to_string(m.kv_heads) + ")");
  }
  if (!(m.partial_rotary_factor > 0 && m.partial_rotary_factor <= 1)) {
    fail("partial_rotary_factor must be in (0, 1], got " + std::to_string(m.partial_rotary_factor));
  }
  if (m.rotary_dim() < 2) fail("head_dim * partial_rotary_factor leaves no rotated dims");
  const RopeScaling& r = m.rope_scaling;
  if (r.type == RopeType::kLongRope) {
    const size_t half = static_cast<size_t>(m.rotary_dim() / 2);
    for (const auto* f : {&r.short_factor, &r.long_factor}) {
      if (f->size() != half) {
        fail(std::string("\"rope_scaling.") +
             (f == &r.short_factor ? "short_factor" : "long_factor") +
             "\" must hold rotary dim / 2 = " + std::to_string(half) + " numbers, got " +
             std::to_string(f->size()));
      }
    }
  }
}

}  // namespace loraplan::planner
