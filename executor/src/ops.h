#pragma once
// The differentiable operations of a decoder layer, each a custom autograd function whose
// forward and backward allocate exactly what the planner's op graph (planner/src/op_graph.cc)
// says: the frozen linear with its LoRA adapter, RMSNorm, the rotary embedding, attention in
// query chunks, and the output head's cross-entropy.

#include <torch/torch.h>

#include "loraplan/planner/dtype.h"

namespace loraplan::executor {

struct FrozenLinear;
struct Documents;

at::ScalarType scalar_type(planner::DType t);  // bf16, fp16, else fp32

// While one lives, the model evaluates (model.eval()): LoRA dropout draws no masks. Grad mode
// cannot say it: a checkpointed layer's training forward also runs without gradients, and must
// drop out.
class EvalMode {
 public:
  EvalMode();
  ~EvalMode();
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;
};

// y = x W^T (+ bias) + s B(A(dropout(x))): the frozen weight dequantized into a transient for
// forward and again for backward; keeps x (or the dropped x and its mask), u = A x and the
// compute-dtype copies of A and B.
torch::Tensor linear_lora(const FrozenLinear& f, const torch::Tensor& x);

// RMSNorm over the last dimension in fp32; `adds_one`: the weight is applied as (1 + w) (Gemma).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, bool adds_one,
                       double eps);

// The rotary embedding of q [B, T, heads, D] with tables [>= T, rot / 2]; in a packed micro-batch
// (`docs` non-null) positions restart at each document.
torch::Tensor rope(const torch::Tensor& q, const torch::Tensor& cos, const torch::Tensor& sin,
                   const Documents* docs);

// Causal attention without a B H T T tensor: q [B, T, H, D], k and v [B, T, Hkv, D] ->
// [B, T, H, D], in planner::query_chunks; window 0: causal only.
torch::Tensor efficient_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, double scale, double softcap,
                                  int64_t window, const Documents* docs);

// [B, T, Hkv, D] -> contiguous [B, H, T, D], each key/value head repeated for its query group.
torch::Tensor expand_kv(const torch::Tensor& k, int64_t heads);

// The masked (true) scores of query rows t0 .. t0 + c - 1 against keys k0 .. k0 + n - 1: later
// keys, and with a window, keys `window` or more tokens back.
torch::Tensor chunk_mask(int64_t t0, int64_t c, int64_t k0, int64_t n, int64_t window,
                         const torch::TensorOptions& o);

// Scores [B, H, rows, keys] of query rows t0.. against keys k0..: in a packed micro-batch, every
// key of an earlier document is filled with -inf, in place. No-op when docs is null.
void mask_documents(torch::Tensor& s, int64_t t0, int64_t k0, const Documents* docs, int64_t T);

// Mean cross-entropy over labels != -100 of h [N, C] through the head w [V, C]: full logits, or
// `chunk` tokens at a time recomputed in backward; softcap > 0: Gemma-2's tanh capping.
torch::Tensor cross_entropy(const torch::Tensor& h, const torch::Tensor& w,
                            const torch::Tensor& labels, int64_t chunk, double softcap);

}  // namespace loraplan::executor
