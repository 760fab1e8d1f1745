#include "model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <set>

#include "loraplan/planner/attention.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/layer_table.h"
#include "loraplan/planner/rope.h"
#include "offload.h"

namespace loraplan::executor {
namespace {

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

// ---------------------------------------------------------------------------------------------
// Frozen linear (+ LoRA). Forward: the weight is dequantized into a transient, used, dropped; the
// LoRA term is added in place (addmm_). Keeps x (or the dropped x and its mask), u = A x and the
// compute-dtype copies of A and B. Backward dequantizes again for grad x.
// Set while Model::eval_loss runs: model.eval(), no dropout. (Grad mode cannot say it: a
// checkpointed layer's training forward also runs without gradients, and must drop out.)
thread_local bool evaluating = false;

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

// ---------------------------------------------------------------------------------------------
// Attention without a B H T T tensor: queries in planner::query_chunks (the chunks the simulator
// sizes), each against only the keys it can see, softmax in fp32 in place, recomputed in backward
// from the saved log-sum-exp. Keeps q, k, v, the output and lse.
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

// ---------------------------------------------------------------------------------------------
// Runs f with the device's default generator in the state `saved` holds, then puts back the state
// it had. On the CPU through the Mersenne Twister engine: get_state() would make a state tensor in
// the tracked pool. A CUDA generator's state is a small CPU tensor (seed and offset), outside the
// measured device memory.
template <typename F>
void with_generator(const at::Generator& saved, c10::Device device, F f) {
  if (device.is_cpu()) {
    auto* rng = at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator());
    const at::mt19937 resume = rng->engine();
    rng->set_engine(at::check_generator<at::CPUGeneratorImpl>(saved)->engine());
    f();
    rng->set_engine(resume);
    return;
  }
  at::Generator gen = at::globalContext().defaultGenerator(device);
  Tensor resume;
  {
    const std::lock_guard<std::mutex> lock(gen.mutex());
    resume = gen.get_state();
    gen.set_state(saved.get_state());
  }
  f();  // draws lock the generator themselves
  const std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(resume);
}

// ---------------------------------------------------------------------------------------------
// Gradient checkpointing: the layer runs without keeping anything but its input; backward runs it
// again with grad and differentiates it with respect to its input and its adapters explicitly
// (autograd::grad), so adapter gradients arrive even when the input needs none.
struct CheckpointFn : torch::autograd::Function<CheckpointFn> {
  // `params` are inputs only so that autograd routes the adapters' gradients through here.
  static Tensor forward(AutogradContext* ctx, Tensor x, at::TensorList /*params*/,
                        int64_t model_ptr, int64_t layer) {
    const auto* model = reinterpret_cast<const Model*>(model_ptr);
    ctx->saved_data["model"] = model_ptr;
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["x_grad"] = x.requires_grad();
    // The generator as the forward finds it, so that the recompute draws the same dropout masks
    // (a copy of the generator's state; no tensor, nothing in the tracked pool).
    ctx->saved_data["rng"] = model->rng_snapshot(layer, x.device());
    ctx->save_for_backward({x});
    torch::NoGradGuard no_grad;
    return model->layer_forward(model->layers()[layer], x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto* model = reinterpret_cast<const Model*>(ctx->saved_data["model"].toInt());
    const DecoderLayer& layer = model->layers()[ctx->saved_data["layer"].toInt()];
    const bool x_grad = ctx->saved_data["x_grad"].toBool();
    Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(x_grad);
    const std::vector<Tensor> params = layer.trainable();
    std::vector<Tensor> inputs = params;
    if (x_grad) inputs.insert(inputs.begin(), x);
    variable_list g;
    {
      torch::AutoGradMode enable(true);
      Tensor out;
      with_generator(ctx->saved_data["rng"].toGenerator(), x.device(),
                     [&] { out = model->layer_forward(layer, x); });
      g = torch::autograd::grad({out}, inputs, {grads[0]}, /*retain_graph=*/false,
                                /*create_graph=*/false,
                                /*allow_unused=*/true);
    }
    variable_list result;
    result.push_back(x_grad ? g[0] : Tensor());
    for (size_t i = 0; i < params.size(); ++i) result.push_back(g[i + (x_grad ? 1 : 0)]);
    result.push_back(Tensor());
    result.push_back(Tensor());
    return result;
  }
};

// ---------------------------------------------------------------------------------------------
// An offloaded layer's backward, bracketed: identity on the layer's output whose backward stages
// the weights (the first node of the layer's backward), and on its input whose backward releases
// them (the last node). The planner's schedule stages and unstages at the same two points.
struct StageFn : torch::autograd::Function<StageFn> {
  static Tensor forward(AutogradContext* ctx, Tensor x, int64_t layer_ptr, bool stage) {
    ctx->saved_data["layer"] = layer_ptr;
    ctx->saved_data["stage"] = stage;
    return x;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto* d = reinterpret_cast<const DecoderLayer*>(ctx->saved_data["layer"].toInt());
    if (ctx->saved_data["stage"].toBool()) {
      d->stage();
    } else {
      d->unstage();
    }
    return {grads[0], Tensor(), Tensor()};
  }
};

}  // namespace

const QuantizedWeight& FrozenLinear::device_weight() const {
  if (!host.data.defined()) return weight;
  TORCH_CHECK(staged.data.defined(), name, ": the offloaded weight is used while not staged");
  return staged;
}

void DecoderLayer::stage() const {
  for (const auto* group : {&attn, &mlp}) {
    for (const FrozenLinear& l : *group) {
      if (l.host.data.defined()) l.staged = to_device(l.host, device);
    }
  }
}

void DecoderLayer::unstage() const {
  for (const auto* group : {&attn, &mlp}) {
    for (const FrozenLinear& l : *group) l.staged = QuantizedWeight();
  }
}

int64_t DecoderLayer::host_bytes() const {
  int64_t b = 0;
  for (const auto* group : {&attn, &mlp}) {
    for (const FrozenLinear& l : *group) b += l.host.data.defined() ? l.host.bytes() : 0;
  }
  return b;
}

Tensor FrozenLinear::forward(const Tensor& x) const {
  if (!lora) return LinearFn::apply(x, c10::nullopt, c10::nullopt, reinterpret_cast<int64_t>(this));
  return LinearFn::apply(x, c10::optional<Tensor>(lora->A), c10::optional<Tensor>(lora->B),
                         reinterpret_cast<int64_t>(this));
}

std::vector<Tensor> FrozenLinear::slices(const Tensor& y) const {
  std::vector<Tensor> out;
  int64_t start = 0;
  for (const planner::FusedPart& p : parts) {
    out.push_back(y.narrow(-1, start, p.out));
    start += p.out;
  }
  return out;
}

Tensor& DecoderLayer::norm(planner::LayerNormKind kind) {
  using K = planner::LayerNormKind;
  switch (kind) {
    case K::kInput:
      return input_norm;
    case K::kPostAttention:
      return post_attn_norm;
    case K::kPreFeedforward:
      return pre_ff_norm;
    case K::kPostFeedforward:
      return post_ff_norm;
    case K::kQ:
      return q_norm;
    case K::kK:
      return k_norm;
  }
  throw std::logic_error("unknown layer norm");
}

std::vector<Tensor> DecoderLayer::trainable() const {
  std::vector<Tensor> out;
  for (const auto* group : {&attn, &mlp}) {
    for (const FrozenLinear& l : *group) {
      if (l.lora) out.insert(out.end(), {l.lora->A, l.lora->B});
    }
  }
  return out;
}

c10::Device torch_device(planner::Device device) {
  return device == planner::Device::kCuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
}

Model::Model(const planner::ModelDesc& m, const planner::TrainConfig& c, uint64_t seed)
    : Model(m, c, seed, RandomWeights()) {}

namespace {

// transformers' ACT2FN names: gelu_new, gelu_fast and gelu_pytorch_tanh are all the tanh form.
Activation activation_of(const planner::ModelDesc& m) {
  const std::string& a = m.hidden_act;
  if (a == "silu" || a == "swish") return Activation::kSilu;
  if (a == "gelu_pytorch_tanh" || a == "gelu_new" || a == "gelu_fast") return Activation::kGeluTanh;
  if (a == "gelu") return Activation::kGelu;
  if (a == "relu") return Activation::kRelu;
  throw std::invalid_argument(m.name + ": hidden_act \"" + a +
                              "\" is not one the executor runs (silu, swish, gelu, "
                              "gelu_pytorch_tanh, gelu_new, gelu_fast, relu)");
}

Tensor activate(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::kSilu:
      return at::silu(x);
    case Activation::kGeluTanh:
      return at::gelu(x, "tanh");
    case Activation::kGelu:
      return at::gelu(x);
    case Activation::kRelu:
      return at::relu(x);
  }
  return x;
}

}  // namespace

namespace {

// The refusal of a tensor the planner counts and the executor does not apply: training without
// it would run another model than the one planned.
std::string not_applied(const std::string& name) {
  if (name == planner::kLmHeadBias) {
    return name +
           ": the executor does not apply an lm_head bias yet (estimate and plan count it); "
           "train runs models without one";
  }
  return name + ": the executor does not apply this tensor (estimate and plan count it)";
}

}  // namespace

at::Generator Model::rng_snapshot(int64_t layer, c10::Device device) const {
  if (!device.is_cpu()) return at::globalContext().defaultGenerator(device).clone();
  if (rng_snapshots_.empty()) {
    for (int64_t l = 0; l < m_.layers; ++l)
      rng_snapshots_.push_back(at::make_generator<at::CPUGeneratorImpl>());
  }
  at::Generator& saved = rng_snapshots_[static_cast<size_t>(layer)];
  // Each layer's backward runs before its next forward, so one snapshot per layer suffices.
  at::check_generator<at::CPUGeneratorImpl>(saved)->set_engine(
      at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator())->engine());
  return saved;
}

// Tensors are asked for one at a time, in the order of the file's inventory, and each is
// converted or quantized before the next is read.
Model::Model(const planner::ModelDesc& m, const planner::TrainConfig& c, uint64_t seed,
             const WeightSource& weights)
    : m_(m),
      c_(c),
      device_(torch_device(c.device)),
      compute_(scalar_type(c.compute)),
      act_(activation_of(m)) {
  torch::manual_seed(seed);
  // Every tensor the planner counts is one the model applies, or the model is refused.
  std::set<std::string> loaded;
  auto get = [&](const std::string& name, at::IntArrayRef shape, Init init) {
    loaded.insert(name);
    return weights.get(name, shape, init);
  };
  const bool adds_one = m.norm_adds_one();  // Gemma-2's norms start at zeros
  // A frozen tensor in the compute dtype on the device (a no-op on the CPU when already so).
  auto place = [&](const Tensor& t) { return t.to(device_, compute_); };
  embed_ = place(get(std::string(planner::kEmbedWeight), {m.vocab, m.hidden}, Init::kNormal));
  lm_head_ =
      m.tied_embeddings
          ? embed_
          : place(get(std::string(planner::kLmHeadWeight), {m.vocab, m.hidden}, Init::kNormal));
  final_norm_ = place(get(std::string(planner::kFinalNormWeight), {m.hidden},
                          adds_one ? Init::kZeros : Init::kOnes));

  auto linear = [&](int l, const planner::LayerLinear& p) {
    FrozenLinear f;
    f.name = p.name(l);
    f.compute = compute_;
    f.parts = p.parts;
    // Quantized on the CPU, then kept where the layer says: host memory or the device.
    const QuantizedWeight q =
        quantize(get(f.name + ".weight", {p.out, p.in}, Init::kNormal), c.weights);
    if (l < static_cast<int>(c.offloaded.size()) && c.offloaded[l]) {
      f.host = to_host(q, device_);
    } else {
      f.weight = q.to(device_);
    }
    if (p.bias) f.bias = place(get(f.name + ".bias", {p.out}, Init::kNormal));
    if (c.lora_targets.contains(p.module)) {
      LoraAdapter a;
      // PEFT's default: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
      const double bound = 1.0 / std::sqrt(static_cast<double>(p.in));
      a.A = (torch::rand({c.lora_rank, p.in}) * 2 - 1).mul_(bound).to(device_).requires_grad_(true);
      a.B = torch::zeros({p.out, c.lora_rank}, torch::TensorOptions().device(device_))
                .requires_grad_(true);
      a.scale = c.lora_alpha / static_cast<double>(c.lora_rank);
      a.dropout = c.lora_dropout;
      f.lora = a;
    }
    return f;
  };
  auto norm = [&](int l, const planner::LayerNorm& n) {
    return place(get(n.name(l) + ".weight", {n.width}, adds_one ? Init::kZeros : Init::kOnes));
  };
  // Frozen tensors are asked for in this order (the order seeded random weights are drawn in):
  // the layer norms, the per-head norms, then the projections with each one's adapter.
  const planner::LayerTable table = planner::layer_table(m);
  for (int l = 0; l < m.layers; ++l) {
    DecoderLayer d;
    d.index = l;
    d.offloaded = l < static_cast<int>(c.offloaded.size()) && c.offloaded[l];
    d.device = device_;
    for (const std::vector<planner::LayerNorm>* set : {&table.norms, &table.head_norms}) {
      for (const planner::LayerNorm& n : *set) d.norm(n.kind) = norm(l, n);
    }
    for (const planner::LayerLinear& p : table.attention) d.attn.push_back(linear(l, p));
    for (const planner::LayerLinear& p : table.mlp) d.mlp.push_back(linear(l, p));
    layers_.push_back(std::move(d));
  }
  for (const planner::TensorSpec& t : planner::inventory(m)) {
    if (!loaded.contains(t.name)) throw std::invalid_argument(not_applied(t.name));
  }

  // Rotary tables for positions 0..T-1 (rope_scaling applied), and the masks for eager attention.
  const planner::RopeFrequencies rope = planner::rope_frequencies(m, c.seq_len);
  const Tensor inv = torch::tensor(rope.inv_freq, torch::kDouble).to(torch::kFloat);
  const Tensor angles = torch::outer(torch::arange(c.seq_len, torch::kFloat), inv);  // [T, half]
  cos_ = place(rope.attention_factor == 1 ? angles.cos() : angles.cos() * rope.attention_factor);
  sin_ = place(rope.attention_factor == 1 ? angles.sin() : angles.sin() * rope.attention_factor);
  if (c.attention == planner::Attention::kEager) {
    const int64_t T = c.seq_len;
    const planner::AttentionKinds kinds = planner::attention_kinds(m, T);
    const auto opts = torch::TensorOptions().device(device_);
    if (kinds.full) causal_ = chunk_mask(0, T, 0, T, 0, opts);
    if (kinds.windowed) window_ = chunk_mask(0, T, 0, T, m.sliding_window, opts);
  }
}

Tensor Model::embed(const Tensor& ids) const {
  Tensor x = embed_.index_select(0, ids.reshape(-1)).view({ids.size(0), ids.size(1), m_.hidden});
  if (m_.scales_embedding()) {
    // Gemma scales by sqrt(C) rounded to the activation dtype.
    const double normalizer =
        torch::scalar_tensor(std::sqrt(static_cast<double>(m_.hidden)), compute_).item<double>();
    x = x * normalizer;
  }
  return x;
}

Tensor Model::layer(int l, const Tensor& x) const {
  const DecoderLayer& d = layers_[l];
  if (!d.offloaded) return layer_run(l, x);
  const auto ptr = reinterpret_cast<int64_t>(&d);
  d.stage();
  Tensor y = layer_run(l, x.requires_grad() ? StageFn::apply(x, ptr, false) : x);
  d.unstage();
  return y.requires_grad() ? StageFn::apply(y, ptr, true) : y;
}

void Model::release_staged() const {
  for (const DecoderLayer& d : layers_) d.unstage();
}

int64_t Model::host_bytes() const {
  int64_t b = 0;
  for (const DecoderLayer& d : layers_) b += d.host_bytes();
  return b;
}

Tensor Model::layer_run(int l, const Tensor& x) const {
  if (!c_.checkpointed[l]) return layer_forward(layers_[l], x);
  const std::vector<Tensor> params = layers_[l].trainable();
  return CheckpointFn::apply(x, at::TensorList(params), reinterpret_cast<int64_t>(this),
                             static_cast<int64_t>(l));
}

// Every local is released right after its last use (reset()), as the planner assumes: under
// no_grad (a checkpointed layer's forward) nothing else keeps them.
Tensor Model::layer_forward(const DecoderLayer& d, const Tensor& x) const {
  const planner::ModelDesc& m = m_;
  const bool sandwich = m.sandwich_norms(), adds_one = m.norm_adds_one();
  const int64_t B = x.size(0), T = x.size(1), H = m.heads, Hkv = m.kv_heads, D = m.head_dim;
  const int64_t HD = H * D;

  // Attention half.
  const double eps = m.rms_norm_eps;
  Tensor h1 = RmsNormFn::apply(x, d.input_norm, adds_one, eps);
  Tensor q, k, v;
  size_t next = 0;
  if (!d.attn[0].parts.empty()) {
    const FrozenLinear& qkv_proj = d.attn[next++];
    std::vector<Tensor> qkv =
        qkv_proj.slices(qkv_proj.forward(h1));  // views of [B, T, (H + 2 Hkv) D]
    q = qkv[0].reshape({B, T, H, D});           // copies of the slices
    k = qkv[1].reshape({B, T, Hkv, D});
    v = qkv[2].reshape({B, T, Hkv, D});
  } else {
    q = d.attn[next++].forward(h1).view({B, T, H, D});
    k = d.attn[next++].forward(h1).view({B, T, Hkv, D});
    v = d.attn[next++].forward(h1).view({B, T, Hkv, D});
  }
  h1.reset();
  if (d.q_norm.defined()) {
    q = RmsNormFn::apply(q, d.q_norm, false, eps);
    k = RmsNormFn::apply(k, d.k_norm, false, eps);
  }
  // The tables cover the run's T; a shorter micro-batch (a dataset's) takes their first T rows.
  const Tensor cos = T == cos_.size(0) ? cos_ : cos_.narrow(0, 0, T);
  const Tensor sin = T == sin_.size(0) ? sin_ : sin_.narrow(0, 0, T);
  const auto docs = reinterpret_cast<int64_t>(documents_.packed() ? &documents_ : nullptr);
  q = RopeFn::apply(q, cos, sin, docs);
  k = RopeFn::apply(k, cos, sin, docs);
  const double scale = m.attention_scale();
  const bool windowed = planner::windowed_attention(m, d.index, T);
  Tensor o;
  if (c_.attention == planner::Attention::kEfficient) {
    o = EfficientAttentionFn::apply(q, k, v, scale, m.attn_logit_softcapping,
                                    windowed ? m.sliding_window : 0, docs);
    q.reset();
    k.reset();
    v.reset();
  } else {
    Tensor kr = expand_kv(k, H);  // [B, H, T, D]
    k.reset();
    Tensor vr = expand_kv(v, H);
    v.reset();
    Tensor qt = q.transpose(1, 2).contiguous();  // [B, H, T, D]
    q.reset();
    Tensor s = at::matmul(qt, kr.transpose(2, 3));  // [B, H, T, T]
    qt.reset();
    kr.reset();
    s.mul_(scale);
    if (m.attn_logit_softcapping > 0)
      s = at::tanh(s / m.attn_logit_softcapping) * m.attn_logit_softcapping;
    // The masks cover the run's T: a shorter micro-batch takes their top-left T x T. A run whose
    // every layer is windowed at its T builds no causal mask; a micro-batch within the window is
    // causal only, which the window mask is there.
    const Tensor& full_mask = windowed || !causal_.defined() ? window_ : causal_;
    s.masked_fill_(T == full_mask.size(0) ? full_mask : full_mask.narrow(0, 0, T).narrow(1, 0, T),
                   -INFINITY);
    mask_documents(s, 0, 0, reinterpret_cast<const Documents*>(docs), T);
    Tensor p = at::softmax(s, -1);
    s.reset();
    o = at::matmul(p, vr).transpose(1, 2).reshape(
        {B, T, HD});  // the [B, H, T, D] product is a temporary
  }
  Tensor attn = d.attn[next].forward(o.reshape({B, T, HD}));
  o.reset();
  if (sandwich) attn = RmsNormFn::apply(attn, d.post_attn_norm, adds_one, eps);
  Tensor x2 = x + attn;
  attn.reset();

  // MLP half.
  Tensor h2 = RmsNormFn::apply(x2, sandwich ? d.pre_ff_norm : d.post_attn_norm, adds_one, eps);
  Tensor gate, up;
  if (!d.mlp[0].parts.empty()) {
    std::vector<Tensor> gate_up = d.mlp[0].slices(d.mlp[0].forward(h2));  // views
    gate = std::move(gate_up[0]);
    up = std::move(gate_up[1]);
  } else {
    gate = d.mlp[0].forward(h2);
    up = d.mlp[1].forward(h2);
  }
  h2.reset();
  Tensor act = activate(act_, gate);
  gate.reset();
  Tensor prod = act * up;
  act.reset();
  up.reset();
  Tensor down = d.mlp.back().forward(prod);
  prod.reset();
  if (sandwich) down = RmsNormFn::apply(down, d.post_ff_norm, adds_one, eps);
  return x2 + down;
}

Tensor Model::loss(const Tensor& x, const Tensor& labels) const {
  const Tensor h = RmsNormFn::apply(x, final_norm_, m_.norm_adds_one(), m_.rms_norm_eps);
  return LossFn::apply(h.reshape({-1, m_.hidden}), lm_head_, labels.reshape(-1), c_.loss_chunk,
                       m_.final_logit_softcapping);
}

Tensor Model::eval_loss(const Tensor& ids, const Tensor& labels) const {
  torch::NoGradGuard no_grad;
  evaluating = true;
  struct Reset {
    ~Reset() { evaluating = false; }
  } reset;
  Tensor x = embed(ids);
  for (const DecoderLayer& d : layers_) {
    if (d.offloaded) d.stage();
    x = layer_forward(d, x);
    if (d.offloaded) d.unstage();
  }
  return loss(x, labels);
}

Tensor Model::logits(const Tensor& x) const {
  const Tensor h = RmsNormFn::apply(x, final_norm_, m_.norm_adds_one(), m_.rms_norm_eps);
  Tensor z = at::linear(h, lm_head_);
  const double cap = m_.final_logit_softcapping;
  return cap > 0 ? at::tanh(z / cap) * cap : z;
}

std::vector<Tensor> Model::trainable() const {
  std::vector<Tensor> out;
  for (const DecoderLayer& d : layers_) {
    const std::vector<Tensor> t = d.trainable();
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

}  // namespace loraplan::executor
