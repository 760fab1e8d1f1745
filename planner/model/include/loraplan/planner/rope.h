#pragma once

#include <cstdint>
#include <vector>

#include "loraplan/planner/model.h"

namespace loraplan::planner {

// The rotary embedding of a sequence of seq_len tokens, as transformers computes it: position t
// turns frequency i (i < rotary dim / 2) by the angle t * inv_freq[i], and cos and sin are
// multiplied by attention_factor. seq_len matters to "dynamic" (a larger base past
// max_position_embeddings) and "longrope" (long factors past the original context).
struct RopeFrequencies {
  std::vector<double> inv_freq;
  double attention_factor = 1;
};

RopeFrequencies rope_frequencies(const ModelDesc& m, int64_t seq_len);

}  // namespace loraplan::planner
