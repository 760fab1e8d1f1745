#pragma once
// Frozen linear weights in their device format, laid out as bitsandbytes lays them out
// (shared reference formats.md sections 1-2): NF4/FP4 codes packed two per byte (element 2j in
// the high nibble), an absmax per block of 64 (fp32, or uint8 + a second level per 256 blocks
// with double quantization), LLM.int8 row-wise int8 with fp32 scales, or plain 16/32-bit.

#include <ATen/ATen.h>

#include "loraplan/planner/weights.h"

namespace loraplan::executor {

constexpr int64_t kDequantChunk = int64_t{1} << 20;  // elements per step of dequantize_ops

struct QuantizedWeight {
  planner::QuantOptions options;
  int64_t out = 0, in = 0;
  at::Tensor data;     // nf4/fp4: uint8 [(n+1)/2]; int8: int8 [out, in]; else [out, in]
  at::Tensor code;     // nf4/fp4: fp32 [16] code map
  at::Tensor absmax;   // fp32 [blocks], or uint8 [blocks] with double quant
  at::Tensor absmax2;  // double quant: fp32 [ceil(blocks / 256)]
  at::Tensor code2;    // double quant: fp32 [256] signed dynamic map
  at::Tensor offset;   // double quant: fp32 [] mean of the first-level absmax
  at::Tensor scb;      // int8: fp32 [out] row absmax

  // The weight [out, in] in `dtype` on the buffers' device, a fresh tensor (the caller drops it
  // after use). On the CPU the loops below write straight into it; elsewhere dequantize_ops().
  at::Tensor dequantize(at::ScalarType dtype) const;
  // The same values with ATen operations only (any device: the CUDA path), through the weight in
  // chunks of kDequantChunk elements. Its transients beside the output, per element of a chunk:
  // 2 bytes of int32 byte indices and 4 of fp32 values (int8: 4 of fp32), which bitsandbytes'
  // kernels, and so the planner, do not have.
  at::Tensor dequantize_ops(at::ScalarType dtype) const;
  // The same weight with every defined buffer passed through f (a Tensor -> Tensor function).
  template <typename F>
  QuantizedWeight map(F f) const {
    QuantizedWeight q = *this;
    for (at::Tensor* t : {&q.data, &q.code, &q.absmax, &q.absmax2, &q.code2, &q.offset, &q.scb}) {
      if (t->defined()) *t = f(*t);
    }
    return q;
  }
  // Every buffer on `device` (the same buffers when already there).
  QuantizedWeight to(c10::Device device) const;
  // Bytes of every buffer above, as the planner counts them.
  int64_t bytes() const;
};

// Quantizes a float weight [out, in] (any float dtype) into the configured format.
QuantizedWeight quantize(const at::Tensor& weight, const planner::QuantOptions& options);

// The 16 NF4 levels (QLoRA), ascending; code 7 is exactly 0.
at::Tensor nf4_code();
// bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(signed=True)), 256 values ascending.
at::Tensor dynamic_map_signed();

}  // namespace loraplan::executor
