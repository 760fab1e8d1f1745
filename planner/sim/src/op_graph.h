#pragma once
// One decoder layer (or the output head) as a small dataflow graph: which tensors each op
// produces, which it keeps for backward, which inputs receive gradients, and its transient
// workspace. The schedule builder runs these graphs forward, backward and (for checkpointed
// layers) forward again, and turns them into alloc/free events. This is the activation table of
// the planner: a plan knob changes rows here, never the replay.

#include <cstdint>
#include <vector>

#include "loraplan/planner/schedule.h"

namespace loraplan::planner {

struct TensorDef {
  const char* tag;    // "attn.q", "mlp.act"
  int64_t bytes = 0;  // its own size (a view's gradient is this size too)
  Category category = Category::kActivations;
  int view_of = -1;  // a view of this tensor: allocates nothing and keeps that tensor alive
};

// A temporary of an op, placed between the op's own allocations. Slot k < n is just before the
// op's k-th allocation (of n), slot n after the last one, slot n + 1 the op's end. It is allocated
// at slot `from` and freed at slot `to` (from == to: allocated and freed at once). At a slot, the
// temporaries ending there are freed first, then those starting there are allocated.
// A temporary of an op, placed among the op's allocations (forward: its outputs; backward: its
// gradients), numbered 0..n-1: allocated just before allocation `from` and freed just before
// allocation `to` (`to` = n: after the last; n + 1: after the temporaries placed at n); from == to
// frees it at once, a peak of its own.
struct Temp {
  int64_t bytes = 0;
  int from = 0, to = 0;
  bool only_with_input_grad = false;  // backward: only when a grad input needs its gradient
};

struct OpDef {
  const char* tag;
  std::vector<int> inputs;       // tensors read in forward
  std::vector<int> outputs;      // tensors this op allocates, in order
  std::vector<int> saved;        // tensors held for this op's backward
  std::vector<int> grad_inputs;  // inputs that receive a gradient contribution
  // Workspaces: allocations live together, then all released (each its own allocation, as the
  // caching allocator places each by its size). Forward: after the op's outputs are allocated;
  // backward: before it allocates gradients. Zero entries are skipped.
  std::vector<int64_t> fwd_workspace = {};
  std::vector<int64_t> bwd_workspace = {};
  // Forward temporaries between the outputs; backward temporaries between the allocations of
  // backward: the grad inputs' gradients, then grad B and grad A.
  std::vector<Temp> fwd_temps = {}, bwd_temps = {};
  int64_t adapter_grad_bytes[2] = {0, 0};  // LoRA B and A gradients (fp32), in the order backward
                                           // produces them; 0 if none
  bool pass_through_grad = false;          // backward hands its output gradient to every grad input
                                           // without allocating (residual add)
};

struct OpGraph {
  std::vector<TensorDef> tensors;
  std::vector<OpDef> ops;
  int input = -1;   // tensor provided by the caller (already live)
  int output = -1;  // tensor handed to the next graph

  int tensor(const char* tag, int64_t bytes, Category category = Category::kActivations) {
    tensors.push_back({tag, bytes, category});
    return static_cast<int>(tensors.size()) - 1;
  }
};

// Sizes shared by the graph builders. Letters as in ModelDesc; N = B T tokens.
struct Dims {
  int64_t B, T, N, C, I, H, Hkv, D, V, r;
  int64_t a;  // bytes per element of the compute dtype
};
Dims dims_of(const ModelDesc& m, const TrainConfig& c);

// Bytes of the frozen weight used by one linear's matmul when it must be materialised in the
// compute dtype (dequantized or cast); 0 when the stored weight is used as is.
int64_t materialised_weight_bytes(const TrainConfig& c, int64_t out, int64_t in);

// One decoder layer; `window` > 0: its attention sees only that many latest tokens (a layer for
// which windowed_attention() holds), which shrinks efficient attention's per-chunk buffers.
OpGraph decoder_layer_graph(const ModelDesc& m, const TrainConfig& c, int64_t window = 0);

// Final norm, output head and cross-entropy (full or chunked); input: last hidden state.
OpGraph head_graph(const ModelDesc& m, const TrainConfig& c);

}  // namespace loraplan::planner
