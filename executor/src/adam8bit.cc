#include "adam8bit.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "loraplan/planner/train_config.h"

namespace loraplan::executor::adam8bit {
namespace {

constexpr int64_t kBlock = planner::k8bitStateBlock;

Map dynamic_map(bool is_signed) {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    // Midpoints of linspace(0.1, 1, k + 1) in fp32, scaled by 10^(i - 6).
    const int k = is_signed ? 1 << i : 1 << (i + 1);
    const float scale = static_cast<float>(std::pow(10.0, i - 6));
    for (int j = 0; j < k; ++j) {
      const float lo = 0.1f + (1.0f - 0.1f) * static_cast<float>(j) / static_cast<float>(k);
      const float hi = 0.1f + (1.0f - 0.1f) * static_cast<float>(j + 1) / static_cast<float>(k);
      const float mean = (lo + hi) / 2.0f;
      data.push_back(scale * mean);
      if (is_signed) data.push_back(-scale * mean);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  Map map{};
  std::copy(data.begin(), data.end(), map.begin());
  return map;
}

}  // namespace

const Map& signed_map() {
  static const Map map = dynamic_map(true);
  return map;
}

const Map& unsigned_map() {
  static const Map map = dynamic_map(false);
  return map;
}

uint8_t nearest_code(const Map& map, float x) {
  const auto above = std::lower_bound(map.begin(), map.end(), x);
  if (above == map.begin()) return 0;
  if (above == map.end()) return 255;
  const auto below = above - 1;
  return static_cast<uint8_t>((x - *below <= *above - x ? below : above) - map.begin());
}

void quantize_blockwise(const Map& map, const float* x, int64_t n, uint8_t* codes, float* absmax) {
  for (int64_t start = 0, b = 0; start < n; start += kBlock, ++b) {
    const int64_t end = std::min(n, start + kBlock);
    float top = 0;
    for (int64_t i = start; i < end; ++i) top = std::max(top, std::fabs(x[i]));
    absmax[b] = top;
    const float inv = top > 0 ? 1.0f / top : 0.0f;
    for (int64_t i = start; i < end; ++i) codes[i] = nearest_code(map, x[i] * inv);
  }
}

void dequantize_blockwise(const Map& map, const uint8_t* codes, const float* absmax, int64_t n,
                          float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = map[codes[i]] * absmax[i / kBlock];
}

void adamw_step(float* p, const float* g, int64_t n, uint8_t* m_codes, float* m_absmax,
                uint8_t* v_codes, float* v_absmax, const Hyper& h) {
  const double bc1 = 1 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1 - std::pow(h.beta2, static_cast<double>(h.step));
  const float step_size = static_cast<float>(-h.lr / bc1),
              sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
  const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2),
              eps = static_cast<float>(h.eps);
  const float decay = static_cast<float>(1 - h.lr * h.weight_decay);
  float m[kBlock], v[kBlock];
  for (int64_t start = 0, b = 0; start < n; start += kBlock, ++b) {
    const int64_t len = std::min(kBlock, n - start);
    dequantize_blockwise(signed_map(), m_codes + start, m_absmax + b, len, m);
    dequantize_blockwise(unsigned_map(), v_codes + start, v_absmax + b, len, v);
    for (int64_t i = 0; i < len; ++i) {
      const float gi = g[start + i];
      m[i] = m[i] * b1 + (1 - b1) * gi;
      v[i] = v[i] * b2 + (1 - b2) * gi * gi;
      if (h.weight_decay > 0) p[start + i] *= decay;
      p[start + i] += step_size * m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps);
    }
    quantize_blockwise(signed_map(), m, len, m_codes + start, m_absmax + b);
    quantize_blockwise(unsigned_map(), v, len, v_codes + start, v_absmax + b);
  }
}

}  // namespace loraplan::executor::adam8bit
