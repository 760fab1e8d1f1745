#include "quant.h"

#include <ATen/Parallel.h>

#include <vector>

namespace loraplan::executor {
namespace {

using planner::WeightFormat;

at::Tensor from_values(const std::vector<float>& v) {
  return at::tensor(at::ArrayRef<float>(v), at::kFloat);
}

// Midpoints between adjacent levels: a value exactly on one goes to the lower code, as in
// bitsandbytes' comparison tree (bucketize with right=false does the same).
at::Tensor midpoints(const at::Tensor& sorted) {
  const int64_t n = sorted.numel();
  return (sorted.slice(0, 0, n - 1) + sorted.slice(0, 1, n)) / 2;
}

// Nearest level of a sorted code for each element of x.
at::Tensor nearest_codes(const at::Tensor& x, const at::Tensor& sorted_code) {
  return at::bucketize(x, midpoints(sorted_code), /*out_int32=*/false, /*right=*/false);
}

// Blockwise absmax quantization of a flat fp32 tensor: returns (codes as int64, absmax [blocks]).
std::pair<at::Tensor, at::Tensor> quantize_blocks(const at::Tensor& flat, int64_t block,
                                                  const at::Tensor& code) {
  const int64_t n = flat.numel();
  const int64_t blocks = (n + block - 1) / block;
  at::Tensor padded = at::zeros({blocks * block}, at::kFloat);
  padded.slice(0, 0, n).copy_(flat);
  at::Tensor view = padded.view({blocks, block});
  at::Tensor absmax = view.abs().amax(1);  // [blocks]
  at::Tensor scale = at::where(absmax > 0, absmax, at::ones_like(absmax));
  at::Tensor normed = (view / scale.unsqueeze(1)).reshape(-1).slice(0, 0, n);
  return {nearest_codes(normed, code), absmax};
}

at::Tensor fp4_code() {
  // bitsandbytes' FP4 table in bit order, normalised by 12 (formats.md 1.1).
  const std::vector<float> raw = {0, 0.0625f, 8, 12, 4, 6, 2, 3};
  std::vector<float> v;
  for (int sign = 0; sign < 2; ++sign) {
    for (float r : raw) v.push_back((sign ? -r : r) / 12.0f);
  }
  return from_values(v);
}

bool four_bit(WeightFormat f) { return planner::weight_format_info(f).four_bit(); }
bool quantized(WeightFormat f) { return planner::weight_format_info(f).quantized(); }

}  // namespace

at::Tensor nf4_code() {
  return from_values({-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                      -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                      0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                      0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                      0.7229568362236023f, 1.0f});
}

at::Tensor dynamic_map_signed() {
  std::vector<float> v = {0.0f, 1.0f};
  for (int i = 0; i < 7; ++i) {
    const int k = 1 << i;
    for (int j = 0; j < k; ++j) {
      // Midpoints of linspace(0.1, 1, k + 1), scaled by 10^(i - 6).
      const double lo = 0.1 + 0.9 * j / k, hi = 0.1 + 0.9 * (j + 1) / k;
      const float m = static_cast<float>((lo + hi) / 2 * std::pow(10.0, i - 6));
      v.push_back(m);
      v.push_back(-m);
    }
  }
  std::sort(v.begin(), v.end());
  return from_values(v);
}

QuantizedWeight quantize(const at::Tensor& weight, const planner::QuantOptions& options) {
  QuantizedWeight q;
  q.options = options;
  q.out = weight.size(0);
  q.in = weight.size(1);
  const at::Tensor w32 = weight.to(at::kFloat).contiguous();
  switch (options.format) {
    case WeightFormat::kNf4:
    case WeightFormat::kFp4: {
      const int64_t n = w32.numel();
      // FP4 codes are in bit order, not sorted: quantize on the sorted table, then map back.
      const at::Tensor code = options.format == WeightFormat::kNf4 ? nf4_code() : fp4_code();
      const auto [sorted, order] = code.sort();
      auto [idx, absmax] = quantize_blocks(w32.reshape(-1), options.block, sorted);
      at::Tensor codes = order.index_select(0, idx);
      if (n % 2)
        codes = at::cat(
            {codes, at::full({1}, options.format == WeightFormat::kNf4 ? 7 : 0, at::kLong)});
      at::Tensor pairs = codes.view({-1, 2});
      q.data = (pairs.select(1, 0) * 16 + pairs.select(1, 1)).to(at::kByte);  // high nibble first
      q.code = code;
      if (options.double_quant) {
        q.offset = absmax.mean();
        q.code2 = dynamic_map_signed();
        auto [idx2, absmax2] = quantize_blocks(absmax - q.offset, 256, q.code2);
        q.absmax = idx2.to(at::kByte);
        q.absmax2 = absmax2;
      } else {
        q.absmax = absmax;
      }
      return q;
    }
    case WeightFormat::kInt8: {
      // LLM.int8: through fp16, then per row round(x * 127 / absmax_row).
      const at::Tensor w16 = w32.to(at::kHalf).to(at::kFloat);
      q.scb = w16.abs().amax(1);  // [out]
      const at::Tensor scale = at::where(q.scb > 0, q.scb, at::ones_like(q.scb));
      q.data = (w16 * (127.0 / scale).unsqueeze(1)).round().to(at::kChar);
      return q;
    }
    case WeightFormat::kBf16:
      q.data = weight.to(at::kBFloat16).contiguous();
      return q;
    case WeightFormat::kFp16:
      q.data = weight.to(at::kHalf).contiguous();
      return q;
    case WeightFormat::kFp32:
      q.data = w32.clone();
      return q;
  }
  return q;
}

namespace {

// Writes the weight straight into the output tensor: no temporaries beyond the output and, with
// double quantization, the fp32 first-level absmax [blocks] (as bitsandbytes materialises it).
template <typename T>
void dequantize_into(const QuantizedWeight& q, const float* absmax, T* dst) {
  const int64_t n = q.out * q.in;
  if (q.options.format == WeightFormat::kInt8) {
    const int8_t* src = q.data.data_ptr<int8_t>();
    const float* scb = q.scb.data_ptr<float>();
    at::parallel_for(0, q.out, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float s = scb[r] / 127.0f;
        for (int64_t c = 0; c < q.in; ++c)
          dst[r * q.in + c] = static_cast<T>(src[r * q.in + c] * s);
      }
    });
    return;
  }
  const uint8_t* packed = q.data.data_ptr<uint8_t>();
  const float* code = q.code.data_ptr<float>();
  const int64_t block = q.options.block;
  at::parallel_for(0, (n + 1) / 2, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int64_t i = 2 * j;
      dst[i] = static_cast<T>(code[packed[j] >> 4] * absmax[i / block]);
      if (i + 1 < n) dst[i + 1] = static_cast<T>(code[packed[j] & 15] * absmax[(i + 1) / block]);
    }
  });
}

}  // namespace

at::Tensor QuantizedWeight::dequantize(at::ScalarType dtype) const {
  if (!quantized(options.format)) return data.to(dtype);
  if (!data.is_cpu()) return dequantize_ops(dtype);
  at::Tensor absmax32 = absmax;
  if (four_bit(options.format) && options.double_quant) {
    // First-level absmax [blocks] fp32 = code2[u8] * absmax2[block / 256] + offset.
    const int64_t blocks = absmax.numel();
    absmax32 = at::empty({blocks}, at::kFloat);
    const uint8_t* u8 = absmax.data_ptr<uint8_t>();
    const float* a2 = absmax2.data_ptr<float>();
    const float* c2 = code2.data_ptr<float>();
    const float off = offset.item<float>();
    float* dst = absmax32.data_ptr<float>();
    for (int64_t b = 0; b < blocks; ++b) dst[b] = c2[u8[b]] * a2[b / 256] + off;
  }
  at::Tensor w = at::empty({out, in}, data.options().dtype(dtype));
  const float* am = absmax32.defined() ? absmax32.data_ptr<float>() : nullptr;
  switch (dtype) {
    case at::kFloat:
      dequantize_into(*this, am, w.data_ptr<float>());
      break;
    case at::kBFloat16:
      dequantize_into(*this, am, w.data_ptr<c10::BFloat16>());
      break;
    case at::kHalf:
      dequantize_into(*this, am, w.data_ptr<c10::Half>());
      break;
    default:
      TORCH_CHECK(false, "dequantize: unsupported dtype ", dtype);
  }
  return w;
}

at::Tensor QuantizedWeight::dequantize_ops(at::ScalarType dtype) const {
  if (!quantized(options.format)) return data.to(dtype);
  at::Tensor w = at::empty({out, in}, data.options().dtype(dtype));
  if (options.format == WeightFormat::kInt8) {
    // Row r: int8 * (scb[r] / 127), as the CPU loop computes it (fp32, then the cast).
    const int64_t rows = std::max<int64_t>(1, kDequantChunk / std::max<int64_t>(1, in));
    const at::Tensor scale = (scb / 127.0f).unsqueeze(1);  // [out, 1]
    for (int64_t r0 = 0; r0 < out; r0 += rows) {
      const int64_t n = std::min(rows, out - r0);
      w.narrow(0, r0, n).copy_(data.narrow(0, r0, n).to(at::kFloat).mul_(scale.narrow(0, r0, n)));
    }
    return w;
  }
  // 4-bit: one byte holds elements 2j (high nibble) and 2j+1; a 256-row table maps a byte to
  // both values: row b = (code[b >> 4], code[b & 15]).
  const at::Tensor pairs =
      at::stack({code.repeat_interleave(16), code.repeat({16})}, 1);  // [256, 2]
  at::Tensor am = absmax;
  if (options.double_quant) {
    // First-level absmax [blocks] fp32 = code2[u8] * absmax2[block / 256] + offset.
    const int64_t blocks = absmax.numel();
    am = code2.index_select(0, absmax.to(at::kInt))
             .mul_(absmax2.repeat_interleave(256).narrow(0, 0, blocks))
             .add_(offset);
  }
  const int64_t block = options.block, n_all = out * in;
  // A multiple of the block and even, so that each chunk starts on a byte and on a block.
  const int64_t chunk = 2 * block * std::max<int64_t>(1, kDequantChunk / (2 * block));
  at::Tensor flat = w.view({-1});
  for (int64_t e0 = 0; e0 < n_all; e0 += chunk) {
    const int64_t n = std::min(chunk, n_all - e0), blocks = (n + block - 1) / block;
    const at::Tensor bytes = data.narrow(0, e0 / 2, (n + 1) / 2).to(at::kInt);
    at::Tensor v = pairs.index_select(0, bytes).view({-1}).narrow(0, 0, n);  // [n] fp32
    const at::Tensor scale = am.narrow(0, e0 / block, blocks);
    if (n % block == 0) {
      v.view({blocks, block}).mul_(scale.unsqueeze(1));
    } else {
      v.mul_(scale.repeat_interleave(block).narrow(0, 0, n));
    }
    flat.narrow(0, e0, n).copy_(v);
  }
  return w;
}

QuantizedWeight QuantizedWeight::to(c10::Device device) const {
  return map([&](const at::Tensor& t) { return t.to(device); });
}

int64_t QuantizedWeight::bytes() const {
  int64_t b = 0;
  for (const at::Tensor* t : {&data, &code, &absmax, &absmax2, &code2, &offset, &scb}) {
    if (t->defined()) b += t->numel() * static_cast<int64_t>(t->element_size());
  }
  return b;
}

}  // namespace loraplan::executor
