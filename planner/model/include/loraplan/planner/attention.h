#pragma once
// Attention geometry shared by the executor, the simulator and the cost model: which layers see
// a window, and the query chunks of the executor's efficient attention.

#include <cstdint>
#include <vector>

#include "loraplan/planner/model.h"

namespace loraplan::planner {

// Whether layer l of a T-token sequence needs a window mask: it slides and its window is shorter.
inline bool windowed_attention(const ModelDesc& m, int64_t l, int64_t T) {
  return m.layer_slides(l) && m.sliding_window < T;
}

// Which kinds of layer a T-token step has: some see every earlier token, some a shorter window.
struct AttentionKinds {
  bool full = false, windowed = false;
};
AttentionKinds attention_kinds(const ModelDesc& m, int64_t T);

// Efficient attention takes queries kQueryChunk rows at a time, each chunk against only the keys
// it can see: rows t0 .. t0 + rows - 1 against keys k0 .. k0 + keys - 1, where k0 is 0, or with a
// window (> 0) the first key less than `window` tokens behind row t0.
constexpr int64_t kQueryChunk = 128;
struct QueryChunk {
  int64_t t0, rows, k0, keys;
};
std::vector<QueryChunk> query_chunks(int64_t T, int64_t window);

// Share of the T x T scores those chunks compute.
double chunked_score_share(int64_t T, int64_t window);

}  // namespace loraplan::planner
