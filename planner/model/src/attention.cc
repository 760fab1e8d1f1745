#include "loraplan/planner/attention.h"

#include <algorithm>

namespace loraplan::planner {

AttentionKinds attention_kinds(const ModelDesc& m, int64_t T) {
  AttentionKinds k;
  for (int64_t l = 0; l < m.layers; ++l) (windowed_attention(m, l, T) ? k.windowed : k.full) = true;
  return k;
}

std::vector<QueryChunk> query_chunks(int64_t T, int64_t window) {
  std::vector<QueryChunk> out;
  for (int64_t t0 = 0; t0 < T; t0 += kQueryChunk) {
    const int64_t rows = std::min(kQueryChunk, T - t0);
    const int64_t k0 = window > 0 ? std::max<int64_t>(0, t0 - window + 1) : 0;
    out.push_back({t0, rows, k0, t0 + rows - k0});
  }
  return out;
}

double chunked_score_share(int64_t T, int64_t window) {
  double computed = 0;
  for (const QueryChunk& q : query_chunks(T, window))
    computed += static_cast<double>(q.rows * q.keys);
  return computed / (static_cast<double>(T) * static_cast<double>(T));
}

}  // namespace loraplan::planner
