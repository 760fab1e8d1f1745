#include "ops.h"

#include <cmath>

#include "loraplan/planner/attention.h"
#include "model.h"

namespace loraplan::executor {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType scalar_type(planner::DType t) {
  switch (t) {
    case planner::DType::kBF16:
      return at::kBFloat16;
    case planner::DType::kF16:
      return at::kHalf;
    default:
      return at::kFloat;
  }
}

// [B, T, Hkv, D] -> contiguous [B, H, T, D], each key/value head repeated for its query group.
Tensor expand_kv(const Tensor& k, int64_t heads) {
  const int64_t rep = heads / k.size(2);
  const Tensor t = k.transpose(1, 2);
  return rep == 1 ? t.contiguous() : t.repeat_interleave(rep, 1);
}

// The masked (true) scores of query rows t0 .. t0 + c - 1 against keys k0 .. k0 + n - 1: later
// keys, and with a window, keys `window` or more tokens back.
Tensor chunk_mask(int64_t t0, int64_t c, int64_t k0, int64_t n, int64_t window,
                  const torch::TensorOptions& o) {
  Tensor mask = at::ones({c, n}, o.dtype(at::kBool)).triu_(t0 - k0 + 1);
  if (window > 0) mask.logical_or_(at::ones({c, n}, o.dtype(at::kBool)).tril_(t0 - k0 - window));
  return mask;
}

// Scores [B, H, rows, keys] of query rows t0.. against keys k0..: in a packed micro-batch, every
// key of an earlier document is filled with -inf, in place (later keys are the causal mask's).
void mask_documents(Tensor& s, int64_t t0, int64_t k0, const Documents* docs, int64_t T) {
  if (docs == nullptr || !docs->packed()) return;
  const int64_t rows = s.size(2), keys = s.size(3);
  for (size_t b = 0; b < docs->starts.size(); ++b) {
    const std::vector<int64_t>& starts = docs->starts[b];
    for (size_t d = 1; d < starts.size(); ++d) {  // the first document has no earlier one
      const int64_t end = d + 1 < starts.size() ? starts[d + 1] : T;
      const int64_t q0 = std::max(starts[d], t0), q1 = std::min(end, t0 + rows);
      const int64_t kn = std::min(starts[d], k0 + keys) - k0;
      if (q1 <= q0 || kn <= 0) continue;
      s.select(0, static_cast<int64_t>(b))
          .narrow(1, q0 - t0, q1 - q0)
          .narrow(2, 0, kn)
          .fill_(-INFINITY);
    }
  }
}

namespace {

// ---------------------------------------------------------------------------------------------
// Frozen linear (+ LoRA). Forward: the weight is dequantized into a transient, used, dropped; the
// LoRA term is added in place (addmm_). Keeps x (or the dropped x and its mask), u = A x and the
// compute-dtype copies of A and B. Backward dequantizes again for grad x.
thread_local bool evaluating = false;  // an EvalMode lives

struct LinearFn : torch::autograd::Function<LinearFn> {
  // A and B are passed (when there is an adapter) so that autograd routes their gradients here;
  // nullopt otherwise, since autograd cannot take undefined tensors as inputs.
  static Tensor forward(AutogradContext* ctx, Tensor x, c10::optional<Tensor> A_in,
                        c10::optional<Tensor> B_in, int64_t layer_ptr) {
    const auto* L = reinterpret_cast<const FrozenLinear*>(layer_ptr);
    ctx->saved_data["layer"] = layer_ptr;
    Tensor y;
    {
      const Tensor w = L->device_weight().dequantize(L->compute);  // [out, in]
      y = at::linear(x, w, L->bias.defined() ? L->bias : Tensor());
    }
    if (!L->lora) return y;
    const LoraAdapter& lora = *L->lora;
    Tensor lora_in = x, mask;
    if (lora.dropout > 0 && !evaluating) {
      mask = at::empty_like(x, x.options().dtype(at::kBool)).bernoulli_(1.0 - lora.dropout);
      lora_in = at::mul(x, mask).mul_(1.0 / (1.0 - lora.dropout));
    }
    const Tensor& A = *A_in;
    const Tensor& B = *B_in;
    const Tensor a = A.scalar_type() == L->compute ? A : A.to(L->compute);  // [r, in]
    const Tensor b = B.scalar_type() == L->compute ? B : B.to(L->compute);  // [out, r]
    const Tensor u = at::linear(lora_in, a);                                // [..., r]
    const int64_t out = y.size(-1), r = u.size(-1);
    y.view({-1, out}).addmm_(u.reshape({-1, r}), b.t(), 1.0, lora.scale);
    ctx->save_for_backward({lora_in, mask, u, a, b});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto* L = reinterpret_cast<const FrozenLinear*>(ctx->saved_data["layer"].toInt());
    const Tensor& g = grads[0];  // [..., out]
    Tensor grad_x;
    if (ctx->needs_input_grad(0)) {
      const Tensor w = L->device_weight().dequantize(L->compute);
      grad_x = at::matmul(g, w);  // [..., in]
    }
    if (!L->lora) return {grad_x, Tensor(), Tensor(), Tensor()};
    const LoraAdapter& lora = *L->lora;
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &lora_in = saved[0], &mask = saved[1], &u = saved[2], &a = saved[3], &b = saved[4];
    const int64_t out = g.size(-1), r = u.size(-1), in = lora_in.size(-1);
    const Tensor g2 = g.reshape({-1, out});
    Tensor grad_u = at::mm(g2, b).mul_(lora.scale);                                      // [N, r]
    Tensor grad_b = at::mm(g2.t(), u.reshape({-1, r})).mul_(lora.scale).to(at::kFloat);  // [out, r]
    Tensor grad_a = at::mm(grad_u.t(), lora_in.reshape({-1, in})).to(at::kFloat);        // [r, in]
    if (grad_x.defined()) {
      if (mask.defined()) {
        Tensor gd = at::mm(grad_u, a);  // [N, in]
        gd.mul_(mask.reshape({-1, in})).mul_(1.0 / (1.0 - lora.dropout));
        grad_x.view({-1, in}).add_(gd);
      } else {
        grad_x.view({-1, in}).addmm_(grad_u, a);
      }
    }
    return {grad_x, grad_a, grad_b, Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// RMSNorm over the last dimension, computed in fp32. Keeps x and 1/rms [rows] (fp32).
// `adds_one`: the weight is applied as (1 + w), before the cast back.
struct RmsNormFn : torch::autograd::Function<RmsNormFn> {
  static Tensor forward(AutogradContext* ctx, Tensor x, Tensor weight, bool adds_one, double eps) {
    const Tensor x32 = x.to(at::kFloat);                           // x itself when x is fp32
    Tensor rstd = x32.square().mean(-1, true).add_(eps).rsqrt_();  // [..., 1]
    Tensor y32 = x32.is_same(x) ? at::mul(x32, rstd) : x32.mul_(rstd);
    Tensor y;
    if (adds_one) {
      y32.mul_(weight.to(at::kFloat) + 1.0);  // Gemma: scale by (1 + w) before the cast
      y = y32.to(x.scalar_type());
    } else {
      y = y32.to(x.scalar_type()).mul_(weight);
    }
    ctx->saved_data["adds_one"] = adds_one;
    ctx->save_for_backward({x, rstd, weight});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const Tensor &x = s[0], &rstd = s[1], &weight = s[2];
    const bool adds_one = ctx->saved_data["adds_one"].toBool();
    const Tensor w32 = adds_one ? weight.to(at::kFloat) + 1.0 : weight.to(at::kFloat);
    Tensor gw = at::mul(grads[0].to(at::kFloat), w32);    // g * w
    Tensor xhat = at::mul(x.to(at::kFloat), rstd);        // x / rms
    const Tensor dot = at::mul(gw, xhat).mean(-1, true);  // mean(g w xhat)
    gw.sub_(xhat.mul_(dot)).mul_(rstd);
    return {gw.to(x.scalar_type()), Tensor(), Tensor(), Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// Rotary embedding on the first `rot` dims of each head, in place on a fresh output; backward
// is the inverse rotation. Keeps nothing (cos and sin are the model's).
// Packed sequences restart positions at each document: every document is rotated as if it began
// its sequence, in place on views of the output (no temporaries).
void rotate_into(Tensor out, const Tensor& q, const Tensor& cos, const Tensor& sin, double sign) {
  // q, out [B, T, heads, D] (or views of them); cos/sin at least [T, rot/2].
  const int64_t half = cos.size(-1), T = q.size(1);
  const Tensor c = cos.narrow(0, 0, T).unsqueeze(1), s = sin.narrow(0, 0, T).unsqueeze(1);
  const Tensor x1 = q.narrow(-1, 0, half), x2 = q.narrow(-1, half, half);
  Tensor o1 = out.narrow(-1, 0, half), o2 = out.narrow(-1, half, half);
  o1.mul_(c).addcmul_(x2, s, -sign);
  o2.mul_(c).addcmul_(x1, s, sign);
}

Tensor rotate(const Tensor& q, const Tensor& cos, const Tensor& sin, double sign,
              const Documents* docs) {
  Tensor out = q.clone();
  if (docs == nullptr || !docs->packed()) {
    rotate_into(out, q, cos, sin, sign);
    return out;
  }
  const int64_t T = q.size(1);
  for (size_t b = 0; b < docs->starts.size(); ++b) {
    const std::vector<int64_t>& starts = docs->starts[b];
    for (size_t d = 0; d < starts.size(); ++d) {
      const int64_t t0 = starts[d], n = (d + 1 < starts.size() ? starts[d + 1] : T) - t0;
      const auto row = static_cast<int64_t>(b);
      rotate_into(out.select(0, row).narrow(0, t0, n).unsqueeze(0),
                  q.select(0, row).narrow(0, t0, n).unsqueeze(0), cos, sin, sign);
    }
  }
  return out;
}

struct RopeFn : torch::autograd::Function<RopeFn> {
  // `docs`: the model's Documents (a pointer), or 0.
  static Tensor forward(AutogradContext* ctx, Tensor q, Tensor cos, Tensor sin, int64_t docs) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["docs"] = docs;
    return rotate(q, cos, sin, 1.0, reinterpret_cast<const Documents*>(docs));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const auto* docs = reinterpret_cast<const Documents*>(ctx->saved_data["docs"].toInt());
    return {rotate(grads[0], s[0], s[1], -1.0, docs), Tensor(), Tensor(), Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// Attention without a B H T T tensor: queries in planner::query_chunks (the chunks the simulator
// sizes), each against only the keys it can see, softmax in fp32 in place, recomputed in backward
// from the saved log-sum-exp. Keeps q, k, v, the output and lse.
struct EfficientAttentionFn : torch::autograd::Function<EfficientAttentionFn> {
  // q [B, T, H, D], k/v [B, T, Hkv, D] -> [B, T, H, D]; window 0 = causal only.
  static Tensor forward(AutogradContext* ctx, Tensor q, Tensor k, Tensor v, double scale,
                        double softcap, int64_t window, int64_t docs_ptr) {
    const auto* docs = reinterpret_cast<const Documents*>(docs_ptr);
    const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3);
    Tensor out = at::empty({B, T, H, D}, q.options());
    Tensor lse = at::empty({B, H, T}, q.options().dtype(at::kFloat));
    {
      const Tensor kr = expand_kv(k, H), vr = expand_kv(v, H);  // [B, H, T, D]
      const Tensor qt = q.transpose(1, 2).contiguous();         // [B, H, T, D]
      for (const planner::QueryChunk& chunk : planner::query_chunks(T, window)) {
        const int64_t t0 = chunk.t0, c = chunk.rows, k0 = chunk.k0, n = chunk.keys;
        const Tensor kc = kr.narrow(2, k0, n);
        Tensor s =
            at::matmul(qt.narrow(2, t0, c), kc.transpose(2, 3)).to(at::kFloat);  // [B, H, c, n]
        s.mul_(scale);
        if (softcap > 0) s.div_(softcap).tanh_().mul_(softcap);
        s.masked_fill_(chunk_mask(t0, c, k0, n, window, q.options()), -INFINITY);
        mask_documents(s, t0, k0, docs, T);
        const Tensor m = std::get<0>(s.max(-1, true));
        s.sub_(m).exp_();
        const Tensor sum = s.sum(-1, true);
        s.div_(sum);
        lse.narrow(2, t0, c).copy_((m + sum.log()).squeeze(-1));
        const Tensor o = at::matmul(s.to(q.scalar_type()), vr.narrow(2, k0, n));  // [B, H, c, D]
        out.narrow(1, t0, c).copy_(o.transpose(1, 2));
      }
    }
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["softcap"] = softcap;
    ctx->saved_data["window"] = window;
    ctx->saved_data["docs"] = docs_ptr;
    ctx->save_for_backward({q, k, v, out, lse});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const Tensor &q = s[0], &k = s[1], &v = s[2], &out = s[3], &lse = s[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    const double softcap = ctx->saved_data["softcap"].toDouble();
    const int64_t window = ctx->saved_data["window"].toInt();
    const auto* docs = reinterpret_cast<const Documents*>(ctx->saved_data["docs"].toInt());
    const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Hkv = k.size(2);
    const Tensor go = grads[0].transpose(1, 2).contiguous();  // [B, H, T, D]
    const Tensor kr = expand_kv(k, H), vr = expand_kv(v, H);
    Tensor gq = at::empty_like(q);                             // [B, T, H, D]
    Tensor gk = at::zeros({B, H, T, q.size(3)}, q.options());  // per query head
    Tensor gv = at::zeros({B, H, T, q.size(3)}, q.options());
    const Tensor qt = q.transpose(1, 2).contiguous();
    const Tensor ot = out.transpose(1, 2);
    for (const planner::QueryChunk& chunk : planner::query_chunks(T, window)) {
      const int64_t t0 = chunk.t0, c = chunk.rows, k0 = chunk.k0, n = chunk.keys;
      const Tensor kc = kr.narrow(2, k0, n), vc = vr.narrow(2, k0, n);
      const Tensor qc = qt.narrow(2, t0, c);
      // delta = rowsum(dO * O) for this chunk, [B, H, c]
      const Tensor delta = at::mul(go.narrow(2, t0, c), ot.narrow(2, t0, c)).to(at::kFloat).sum(-1);
      Tensor p =
          at::matmul(qc, kc.transpose(2, 3)).to(at::kFloat).mul_(scale);  // raw scores [B, H, c, n]
      Tensor capped;
      if (softcap > 0) {
        p.div_(softcap).tanh_();
        capped = p.clone();  // tanh(s / cap), for the capping's derivative
        p.mul_(softcap);
      }
      p.masked_fill_(chunk_mask(t0, c, k0, n, window, q.options()), -INFINITY);
      mask_documents(p, t0, k0, docs, T);
      p.sub_(lse.narrow(2, t0, c).unsqueeze(-1)).exp_();  // probabilities
      const Tensor goc = go.narrow(2, t0, c);
      gv.narrow(2, k0, n).add_(at::matmul(p.to(q.scalar_type()).transpose(2, 3), goc));
      Tensor ds = at::matmul(goc, vc.transpose(2, 3)).to(at::kFloat);  // dP
      ds.sub_(delta.unsqueeze(-1)).mul_(p);                            // dS = P (dP - delta)
      if (softcap > 0) ds.mul_(capped.square_().neg_().add_(1));  // in place: no chunk temporary
      ds.mul_(scale);
      const Tensor dsa = ds.to(q.scalar_type());
      gq.narrow(1, t0, c).copy_(at::matmul(dsa, kc).transpose(1, 2));
      gk.narrow(2, k0, n).add_(at::matmul(dsa.transpose(2, 3), qc));
    }
    auto fold = [&](const Tensor& g) {  // [B, H, T, D] -> [B, T, Hkv, D], summing the group
      const Tensor t = g.transpose(1, 2);
      return H == Hkv ? t.contiguous() : t.reshape({B, T, Hkv, H / Hkv, q.size(3)}).sum(3);
    };
    return {gq, fold(gk), fold(gv), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// Output head and cross-entropy. Full: logits [N, V] in the compute dtype, converted to fp32 and
// turned into log-probabilities in place (kept). Chunked: k tokens at a time, recomputed in
// backward, keeping nothing but h. Loss = mean over labels != -100.
// log(sum(exp(z))) over the last dimension, [n, 1], with one temporary the size of z.
Tensor log_sum_exp(const Tensor& z) {
  const Tensor m = std::get<0>(z.max(-1, true));
  return (z - m).exp_().sum(-1, true).log_().add_(m);
}

struct LossFn : torch::autograd::Function<LossFn> {
  static Tensor forward(AutogradContext* ctx, Tensor h, Tensor w, Tensor labels, int64_t chunk,
                        double softcap) {
    const int64_t N = h.size(0);
    // The loss scalar first, as the planner allocates an op's outputs before its workspace.
    Tensor result = at::empty({}, h.options().dtype(at::kFloat));
    const Tensor valid = labels.ne(-100);
    const double count = std::max<int64_t>(1, valid.sum().item<int64_t>());
    const int64_t k = chunk > 0 ? std::min(chunk, N) : N;
    double total = 0;
    Tensor logp_full, capped_full;
    // Chunked: the log-sum-exp of every token [N] fp32 is kept, so backward needs no temporary.
    Tensor lse_all = chunk > 0 ? at::empty({N, 1}, h.options().dtype(at::kFloat)) : Tensor();
    for (int64_t t0 = 0; t0 < N; t0 += k) {
      const int64_t n = std::min(k, N - t0);
      Tensor z = at::linear(h.narrow(0, t0, n), w).to(at::kFloat);  // [n, V] fp32
      if (softcap > 0) {
        z.div_(softcap).tanh_();
        if (chunk == 0) capped_full = z.clone();  // tanh(z / cap), for backward
        z.mul_(softcap);
      }
      const Tensor lse = log_sum_exp(z);
      if (chunk > 0) lse_all.narrow(0, t0, n).copy_(lse);
      z.sub_(lse);  // log-probabilities, in place
      const Tensor lab = labels.narrow(0, t0, n), ok = valid.narrow(0, t0, n);
      total -= z.gather(1, lab.clamp_min(0).unsqueeze(1))
                   .squeeze(1)
                   .masked_fill(ok.logical_not(), 0)
                   .sum()
                   .item<double>();
      if (chunk == 0) logp_full = z;
    }
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["softcap"] = softcap;
    ctx->saved_data["count"] = count;
    ctx->save_for_backward({chunk > 0 ? h : Tensor(), w, labels, logp_full, capped_full, lse_all});
    return result.fill_(total / count);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const Tensor &h = s[0], &w = s[1], &labels = s[2];
    Tensor logp = s[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const double softcap = ctx->saved_data["softcap"].toDouble();
    const double factor = grads[0].item<double>() / ctx->saved_data["count"].toDouble();
    const int64_t N = labels.size(0), C = w.size(1);
    const int64_t k = chunk > 0 ? std::min(chunk, N) : N;
    Tensor gh = at::empty({N, C}, w.options());
    for (int64_t t0 = 0; t0 < N; t0 += k) {
      const int64_t n = std::min(k, N - t0);
      Tensor p;  // softmax, fp32 [n, V]
      Tensor capped;
      if (chunk > 0) {
        p = at::linear(h.narrow(0, t0, n), w).to(at::kFloat);
        if (softcap > 0) {
          p.div_(softcap).tanh_();
          capped = p.clone();
          p.mul_(softcap);
        }
        p.sub_(s[5].narrow(0, t0, n)).exp_();
      } else {
        p = logp.exp_();  // the saved log-probabilities are not needed again
        capped = s[4];
      }
      const Tensor lab = labels.narrow(0, t0, n);
      const Tensor ok = lab.ne(-100);
      p.scatter_add_(1, lab.clamp_min(0).unsqueeze(1), at::full({n, 1}, -1.0, p.options()));
      p.mul_(ok.unsqueeze(1)).mul_(factor);
      if (softcap > 0) p.mul_(capped.square_().neg_().add_(1));  // in place: no [n, V] temporary
      gh.narrow(0, t0, n).copy_(at::mm(p.to(w.scalar_type()), w));
    }
    return {gh, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

EvalMode::EvalMode() { evaluating = true; }
EvalMode::~EvalMode() { evaluating = false; }

Tensor linear_lora(const FrozenLinear& f, const Tensor& x) {
  const auto ptr = reinterpret_cast<int64_t>(&f);
  if (!f.lora) return LinearFn::apply(x, c10::nullopt, c10::nullopt, ptr);
  return LinearFn::apply(x, c10::optional<Tensor>(f.lora->A), c10::optional<Tensor>(f.lora->B),
                         ptr);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, bool adds_one, double eps) {
  return RmsNormFn::apply(x, weight, adds_one, eps);
}

Tensor rope(const Tensor& q, const Tensor& cos, const Tensor& sin, const Documents* docs) {
  return RopeFn::apply(q, cos, sin, reinterpret_cast<int64_t>(docs));
}

Tensor efficient_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                           double softcap, int64_t window, const Documents* docs) {
  return EfficientAttentionFn::apply(q, k, v, scale, softcap, window,
                                     reinterpret_cast<int64_t>(docs));
}

Tensor cross_entropy(const Tensor& h, const Tensor& w, const Tensor& labels, int64_t chunk,
                     double softcap) {
  return LossFn::apply(h, w, labels, chunk, softcap);
}

}  // namespace loraplan::executor
