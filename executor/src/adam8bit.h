// bitsandbytes' blockwise 8-bit AdamW state (../shared/reference/formats.md section 3) on plain
// arrays: exp_avg as uint8 codes into the signed dynamic map, exp_avg_sq into the unsigned one,
// each with an fp32 absmax per block of 256 elements. The update dequantizes a block, applies
// AdamW in fp32 and requantizes it, as bitsandbytes' kernel does: nothing is allocated.
#pragma once

#include <array>
#include <cstdint>

namespace loraplan::executor::adam8bit {

using Map = std::array<float, 256>;  // sorted code values in [-1, 1]

// create_dynamic_map(signed, max_exponent_bits = 7, total_bits = 8): 127 positive and 127
// negative values (signed) or 254 positive ones (unsigned), plus 0 and 1.
const Map& signed_map();
const Map& unsigned_map();

// The code of the map entry nearest to x (x in [-1, 1]; ties go to the smaller entry).
uint8_t nearest_code(const Map& map, float x);

// codes[i] = the code nearest x[i] / absmax[b], absmax[b] = max |x| over block b of 256 elements
// (0 for a block of zeros). absmax has ceil(n / 256) entries.
void quantize_blockwise(const Map& map, const float* x, int64_t n, uint8_t* codes, float* absmax);
void dequantize_blockwise(const Map& map, const uint8_t* codes, const float* absmax, int64_t n,
                          float* x);

struct Hyper {
  double lr = 2e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0;
  int64_t step = 1;  // 1-based, for the bias corrections
};

// One AdamW step of n parameters p with gradients g and 8-bit state (m: signed map, v: unsigned),
// the same arithmetic as the executor's fp32 AdamW on the dequantized state.
void adamw_step(float* p, const float* g, int64_t n, uint8_t* m_codes, float* m_absmax,
                uint8_t* v_codes, float* v_absmax, const Hyper& h);

}  // namespace loraplan::executor::adam8bit
