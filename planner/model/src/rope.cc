// The rotary frequencies of each rope_scaling type, after transformers' modeling_rope_utils.py
// (_compute_*_parameters). The config reader has resolved every default.
#include "loraplan/planner/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace loraplan::planner {
namespace {

// Llama 3.1: wavelengths longer than the original context / low_freq_factor are stretched by
// `factor`, those shorter than context / high_freq_factor kept, the band between blended.
void llama3(const RopeScaling& r, std::vector<double>& inv) {
  const double context = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelen = context / r.low_freq_factor,
               high_wavelen = context / r.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      f /= r.factor;
      continue;
    }
    const double smooth =
        (context / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    f = (1 - smooth) * f / r.factor + smooth * f;
  }
}

// YaRN: dims that turn fewer than beta_slow times over the original context are interpolated
// (divided by factor), those that turn more than beta_fast times kept, a linear ramp between.
void yarn(const RopeScaling& r, double base, int64_t dim, std::vector<double>& inv) {
  const double context = static_cast<double>(r.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(context / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  double low = correction_dim(r.beta_fast), high = correction_dim(r.beta_slow);
  if (r.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (size_t i = 0; i < inv.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double keep = 1 - ramp;  // weight of the original (extrapolated) frequency
    inv[i] = inv[i] / r.factor * (1 - keep) + inv[i] * keep;
  }
}

}  // namespace

RopeFrequencies rope_frequencies(const ModelDesc& m, int64_t seq_len) {
  const RopeScaling& r = m.rope_scaling;
  const int64_t dim = m.rotary_dim();
  double base = m.rope_theta;
  if (r.type == RopeType::kDynamic && seq_len > m.max_position_embeddings) {
    const double max_pos = static_cast<double>(m.max_position_embeddings);
    base *= std::pow(r.factor * static_cast<double>(seq_len) / max_pos - (r.factor - 1),
                     static_cast<double>(dim) / static_cast<double>(dim - 2));
  }
  RopeFrequencies out;
  out.attention_factor = r.attention_factor;
  out.inv_freq.resize(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    out.inv_freq[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(dim));
  }
  switch (r.type) {
    case RopeType::kDefault:
    case RopeType::kDynamic:
      break;
    case RopeType::kLinear:
      for (double& f : out.inv_freq) f /= r.factor;
      break;
    case RopeType::kLongRope: {
      const std::vector<double>& ext =
          seq_len > r.original_max_position_embeddings ? r.long_factor : r.short_factor;
      for (size_t i = 0; i < out.inv_freq.size(); ++i) out.inv_freq[i] /= ext[i];
      break;
    }
    case RopeType::kLlama3:
      llama3(r, out.inv_freq);
      break;
    case RopeType::kYarn:
      yarn(r, base, dim, out.inv_freq);
      break;
  }
  return out;
}

}  // namespace loraplan::planner
