#include "op_graph.h"

#include <algorithm>
#include <numeric>

#include "loraplan/planner/attention.h"
#include "loraplan/planner/layer_table.h"

namespace loraplan::planner {
namespace {

// Builds one graph op by op; each helper returns the tensor it produced.
class GraphBuilder {
 public:
  GraphBuilder(const ModelDesc& m, const TrainConfig& c, int64_t window = 0)
      : m_(m), c_(c), d_(dims_of(m, c)), window_(window) {}

  OpGraph& graph() { return g_; }
  const Dims& d() const { return d_; }

  int input(const char* tag, int64_t bytes) { return g_.input = g_.tensor(tag, bytes); }

  // RMSNorm over `rows` rows of `width`: keeps its input and 1/rms per row (fp32) for backward;
  // computes in fp32.
  int norm(const char* tag, const char* rstd_tag, int x, int64_t rows, int64_t width) {
    const int rstd = g_.tensor(rstd_tag, rows * 4);     // [rows] fp32
    const int y = g_.tensor(tag, rows * width * d_.a);  // [rows, width]
    const int64_t fp32 = rows * width * 4;
    OpDef op{tag, {x}, {rstd, y}, {x, rstd}, {x}};
    if (d_.a == 4) {
      // Forward: x^2 until 1/rms exists. Backward: the gradient g w (x / rms) is built in place
      // in g w, beside x / rms and their product.
      op.fwd_temps = {{fp32, 0, 1}};
      op.bwd_temps = {{2 * fp32, 1, 1}};
    } else {
      // Forward: the fp32 copy of x, kept until y is cast back, and x^2. Backward: g w and
      // x / rms in fp32 until the gradient is cast back, and one fp32 temporary beside them.
      op.fwd_temps = {{fp32, 0, 2}, {fp32, 0, 1}};
      op.bwd_temps = {{2 * fp32, 0, 2}, {fp32, 0, 0}};
    }
    g_.ops.push_back(op);
    return y;
  }

  // A frozen linear [out, in], with a LoRA adapter when `module` is targeted.
  //   base:  y = x W^T, W dequantized/cast into a temporary for forward and again for backward
  //   LoRA:  y += s B(A(dropout(x))); keeps x (or the dropped x and its mask) and u = A(..) [N, r]
  int linear(const char* tag, const LayerLinear& p, int x) {
    const int64_t N = d_.N, a = d_.a, r = d_.r, in = p.in, out = p.out;
    const int64_t w = materialised_weight_bytes(c_, out, in);
    const int y = g_.tensor(tag, N * out * a);  // [N, out]
    OpDef op{tag, {x}, {y}, {}, {x}};
    op.fwd_temps = {{w, 0, 1}};        // W, until y exists
    op.bwd_temps = {{w, 0, 1, true}};  // W, until grad x exists (only for it)
    if (c_.lora_targets.contains(p.module)) {
      int lora_in = x;
      if (c_.lora_dropout > 0) {
        // Dropout multiplies by its bool mask, cast to the compute dtype first.
        const int mask = g_.tensor("lora.mask", N * in);  // [N, in] bool
        lora_in = g_.tensor("lora.dropped", N * in * a);  // [N, in]
        op.outputs.insert(op.outputs.end(), {mask, lora_in});
        op.saved.push_back(mask);
        op.fwd_temps.push_back({N * in * a, 2, 3});  // the mask's cast, [N, in]
      }
      if (a != 4) {
        // Adapters are fp32; the matmuls use compute-dtype copies, which autograd keeps.
        const int casts = g_.tensor("lora.cast", (r * in + out * r) * a);  // A [r, in] + B [out, r]
        op.outputs.push_back(casts);
        op.saved.push_back(casts);
      }
      const int u = g_.tensor("lora.u", N * r * a);  // [N, r]; B u is added into y in place
      op.outputs.push_back(u);
      op.saved.insert(op.saved.end(), {lora_in, u});
      // Backward allocates grad x, grad B, grad A (slots 0, 1, 2); grad u [N, r] lives from grad
      // B to the end; below fp32 each adapter gradient is computed in the compute dtype and cast.
      // With dropout, the gradient through the dropped input [N, in] and the mask's cast.
      op.bwd_temps.push_back({N * r * a, 1, 4});
      if (a != 4)
        op.bwd_temps.insert(op.bwd_temps.end(), {{out * r * a, 1, 2}, {r * in * a, 2, 3}});
      if (c_.lora_dropout > 0) op.bwd_temps.push_back({2 * N * in * a, 3, 3, true});
      op.adapter_grad_bytes[0] = out * r * 4;  // grad B [out, r] fp32
      op.adapter_grad_bytes[1] = r * in * 4;   // grad A [r, in] fp32
    }
    g_.ops.push_back(op);
    return y;
  }

  // Elementwise op whose backward needs `saved` (e.g. SiLU keeps its input).
  int elementwise(const char* tag, std::vector<int> inputs, std::vector<int> saved, int64_t bytes,
                  int64_t bwd_workspace = 0, int64_t fwd_workspace = 0) {
    const int y = g_.tensor(tag, bytes);
    g_.ops.push_back(
        {tag, inputs, {y}, std::move(saved), inputs, {fwd_workspace}, {bwd_workspace}});
    return y;
  }

  // x + y: backward hands the same gradient to both inputs.
  int residual(const char* tag, int x, int y) {
    const int out = g_.tensor(tag, d_.N * d_.C * d_.a);  // [N, C]
    OpDef op{tag, {x, y}, {out}, {}, {x, y}};
    op.pass_through_grad = true;
    g_.ops.push_back(op);
    return out;
  }

  // Rotary embedding: q cos + rotate_half(q) sin into a fresh output; backward (the inverse
  // rotation) needs only cos and sin.
  int rope(const char* tag, int q, int64_t bytes) { return elementwise(tag, {q}, {}, bytes); }

  // A slice of a fused projection, reshaped to heads: a view, which keeps the whole fused output
  // alive as long as it lives; its backward scatters the gradient into a zeroed full-size tensor.
  int split(const char* tag, int fused, const FusedPart& part) {
    const int y = elementwise(tag, {fused}, {}, d_.N * part.out * d_.a);
    g_.tensors[y].view_of = fused;
    return y;
  }

  int attention(int q, int k, int v) {
    const Dims& d = d_;
    const int64_t HD = d.H * d.D, scores = d.B * d.H * d.T * d.T;
    // Q, K and V are laid out [B, H, T, D] (contiguous copies; K and V expanded to H heads).
    if (c_.attention == Attention::kEfficient) {
      // Query chunks: scores in fp32, softmax in place, probabilities cast for the matmul with V;
      // recomputed in backward from the saved log-sum-exp.
      const int o = g_.tensor("attn.out", d.N * HD * d.a);         // [N, H D]
      const int lse = g_.tensor("attn.lse", d.B * d.H * d.T * 4);  // [B, H, T] fp32
      // Per chunk: the fp32 scores [B, H, rows, keys], the softmax's row max and row sum, below
      // fp32 the scores' compute-dtype copy, and the chunk's output [B, H, rows, D]. Backward adds
      // the output gradient's layout, grad Q and the K/V gradient accumulators ([B, H, T, D] each);
      // per chunk rowsum(dO O) [B, H, rows], in fp32 the probabilities, dS and under soft-capping
      // tanh(S / cap), dS's compute-dtype copy below fp32, and one [B, H, keys, D] matmul result.
      // The largest chunk sets each.
      const bool below_fp32 = d.a != 4, softcap = m_.attn_logit_softcapping > 0;
      auto sum = [](const std::vector<int64_t>& parts) {
        return std::accumulate(parts.begin(), parts.end(), int64_t{0});
      };
      std::vector<int64_t> chunk, bwd_chunk;
      for (const QueryChunk& q_chunk : query_chunks(d.T, window_)) {
        const int64_t bh = d.B * d.H, rows = q_chunk.rows, keys = q_chunk.keys,
                      s = bh * rows * keys;
        // The softmax's row maximum and row sum [B, H, rows] (fp32) stay until the chunk's end.
        // Before them the chunk's causal mask [rows, keys] (bool; with a window, a second one
        // for its lower edge) lives beside the scores only, and is the larger at long keys.
        std::vector<int64_t> fwd{s * 4, bh * rows * 4, bh * rows * 4, below_fp32 ? s * d.a : 0,
                                 bh * rows * d.D * d.a};
        const std::vector<int64_t> masking{s * 4, rows * keys, window_ > 0 ? rows * keys : 0};
        if (sum(masking) > sum(fwd)) fwd = masking;
        std::vector<int64_t> bwd{
            bh * rows * 4,        s * 4, s * 4, softcap ? s * 4 : 0, below_fp32 ? s * d.a : 0,
            bh * keys * d.D * d.a};
        if (sum(fwd) > sum(chunk)) chunk = fwd;
        if (sum(bwd) > sum(bwd_chunk)) bwd_chunk = bwd;
      }
      const int64_t head_layout = d.N * HD * d.a;  // one [B, H, T, D] tensor
      OpDef op{"attn.efficient", {q, k, v}, {o, lse}, {q, k, v, o, lse}, {q, k, v}};
      op.fwd_workspace = {head_layout, head_layout, head_layout};  // Q, K, V layouts
      op.fwd_workspace.insert(op.fwd_workspace.end(), chunk.begin(), chunk.end());
      op.bwd_workspace.assign(7, head_layout);  // Q, K, V, dO layouts; grad Q, K, V
      op.bwd_workspace.insert(op.bwd_workspace.end(), bwd_chunk.begin(), bwd_chunk.end());
      g_.ops.push_back(op);
      return o;
    }
    // Eager: S = Q K^T, P = softmax(S) kept for backward, O = P V.
    // K/V expanded to H heads (repeat_interleave; with Hkv < H it copies its input first).
    // repeat_interleave is an index_select whose index (int64 [H]) autograd keeps for backward.
    const int64_t expand = d.H == d.Hkv ? 0 : d.N * d.Hkv * d.D * d.a;
    auto repeat = [&](const char* tag, const char* index_tag, int x) {
      const int y = elementwise(tag, {x}, {}, d.N * HD * d.a, 0, expand);  // [B, H, T, D] copy
      if (d.H != d.Hkv) {
        const int index = g_.tensor(index_tag, d.H * 8);
        OpDef& op = g_.ops.back();
        op.outputs.insert(op.outputs.begin(), index);
        op.saved.push_back(index);
      }
      return y;
    };
    const int kr = repeat("attn.k_rep", "attn.k_rep.index", k);
    const int vr = repeat("attn.v_rep", "attn.v_rep.index", v);
    const int qt = elementwise("attn.q_t", {q}, {}, d.N * HD * d.a);  // [B, H, T, D] copy
    int s = g_.tensor("attn.scores", scores * d.a);                   // [B, H, T, T]
    g_.ops.push_back({"attn.scores", {qt, kr}, {s}, {qt, kr}, {qt, kr}});
    if (m_.attn_logit_softcapping > 0) {
      // tanh(S / cap) * cap: tanh keeps its output.
      const int capped = g_.tensor("attn.softcap", scores * d.a);
      g_.ops.push_back({"attn.softcap",
                        {s},
                        {capped},
                        {capped},
                        {s},
                        {scores * d.a, scores * d.a},
                        {scores * d.a}});
      s = capped;
    }
    const int p = g_.tensor("attn.probs", scores * d.a);  // [B, H, T, T]
    // On CUDA the backward holds one more [B, H, T, T] in the compute dtype than on the CPU
    // (measured on the H200 with LibTorch 2.11, at every shape and dtype of the CUDA grid).
    OpDef softmax{"attn.softmax", {s}, {p}, {p}, {s}};
    if (c_.device == Device::kCuda) softmax.bwd_temps = {{scores * d.a, 0, 2}};  // beside grad S
    g_.ops.push_back(softmax);
    const int o = g_.tensor("attn.out", d.N * HD * d.a);  // [N, H D], from the [B, H, T, D] result
    g_.ops.push_back(
        {"attn.pv", {p, vr}, {o}, {p, vr}, {p, vr}, {d.N * HD * d.a}, {d.N * HD * d.a}});
    return o;
  }

 private:
  const ModelDesc& m_;
  const TrainConfig& c_;
  const Dims d_;
  const int64_t window_;
  OpGraph g_;
};

}  // namespace

Dims dims_of(const ModelDesc& m, const TrainConfig& c) {
  return {c.micro_batch, c.seq_len,  c.tokens(), m.hidden,    m.intermediate,        m.heads,
          m.kv_heads,    m.head_dim, m.vocab,    c.lora_rank, dtype_bytes(c.compute)};
}

int64_t materialised_weight_bytes(const TrainConfig& c, int64_t out, int64_t in) {
  const WeightFormatInfo& f = weight_format_info(c.weights.format);
  const bool cast = f.quantized() || f.dtype != c.compute;
  return cast ? out * in * dtype_bytes(c.compute) : 0;
}

OpGraph decoder_layer_graph(const ModelDesc& m, const TrainConfig& c, int64_t window) {
  GraphBuilder b(m, c, window);
  const Dims& d = b.d();
  const int64_t N = d.N, C = d.C, I = d.I, a = d.a, HD = d.H * d.D, KD = d.Hkv * d.D;
  const bool gemma = m.sandwich_norms();
  const LayerTable t = layer_table(m);

  // Attention half.
  const int x = b.input("layer.in", N * C * a);                   // [N, C]
  const int h1 = b.norm("attn.norm", "attn.norm.rstd", x, N, C);  // [N, C]
  int q, k, v;
  if (m.fused_qkv) {
    const LayerLinear& p = t.linear(Module::kQkv);
    const int qkv = b.linear("attn.qkv", p, h1);  // [N, (H+2Hkv) D]
    q = b.split("attn.q", qkv, p.parts[0]);
    k = b.split("attn.k", qkv, p.parts[1]);
    v = b.split("attn.v", qkv, p.parts[2]);
  } else {
    q = b.linear("attn.q", t.linear(Module::kQ), h1);  // [N, H D]
    k = b.linear("attn.k", t.linear(Module::kK), h1);  // [N, Hkv D]
    v = b.linear("attn.v", t.linear(Module::kV), h1);  // [N, Hkv D]
  }
  if (t.has(LayerNormKind::kQ)) {
    q = b.norm("attn.q_norm", "attn.q_norm.rstd", q, N * d.H, d.D);
    k = b.norm("attn.k_norm", "attn.k_norm.rstd", k, N * d.Hkv, d.D);
  }
  const int qr = b.rope("attn.q_rot", q, N * HD * a);      // [N, H D]
  const int kr = b.rope("attn.k_rot", k, N * KD * a);      // [N, Hkv D]
  const int o = b.attention(qr, kr, v);                    // [N, H D]
  int attn = b.linear("attn.o", t.linear(Module::kO), o);  // [N, C]
  if (gemma) attn = b.norm("attn.post_norm", "attn.post_norm.rstd", attn, N, C);
  const int x2 = b.residual("attn.residual", x, attn);  // [N, C]

  // MLP half.
  const int h2 = b.norm(gemma ? "mlp.pre_norm" : "mlp.norm", "mlp.norm.rstd", x2, N, C);
  int gate, up;
  if (m.fused_gate_up) {
    const LayerLinear& p = t.linear(Module::kGateUp);
    const int gate_up = b.linear("mlp.gate_up", p, h2);  // [N, 2I]
    gate = b.split("mlp.gate", gate_up, p.parts[0]);     // [N, I] views
    up = b.split("mlp.up", gate_up, p.parts[1]);
  } else {
    gate = b.linear("mlp.gate", t.linear(Module::kGate), h2);  // [N, I]
    up = b.linear("mlp.up", t.linear(Module::kUp), h2);        // [N, I]
  }
  const int act = b.elementwise("mlp.act", {gate}, {gate}, N * I * a);          // silu/gelu(gate)
  const int prod = b.elementwise("mlp.prod", {act, up}, {act, up}, N * I * a);  // act * up
  int down = b.linear("mlp.down", t.linear(Module::kDown), prod);               // [N, C]
  if (gemma) down = b.norm("mlp.post_norm", "mlp.post_norm.rstd", down, N, C);
  b.graph().output = b.residual("mlp.residual", x2, down);  // [N, C]
  return std::move(b.graph());
}

OpGraph head_graph(const ModelDesc& m, const TrainConfig& c) {
  GraphBuilder b(m, c);
  const Dims& d = b.d();
  const int64_t N = d.N, C = d.C, V = d.V, a = d.a;
  OpGraph& g = b.graph();
  const int x = b.input("head.in", N * C * a);
  const int h = b.norm("head.norm", "head.norm.rstd", x, N, C);
  const int loss = g.tensor("loss", 4, Category::kLogits);
  if (c.loss_chunk > 0) {
    // Both forms first mark the labels that count (a bool [N], kept through the forward); each
    // log-sum-exp holds its row max and row sum (fp32) beside its [rows, V] temporary.
    // Chunked: k tokens at a time, recomputed in backward; the normed hidden state and each
    // token's log-sum-exp (fp32) are kept. Forward holds a chunk's fp32 logits and the temporary
    // of its log-sum-exp; backward the fp32 softmax (and tanh(z / cap) under soft-capping), its
    // cast to the compute dtype and the matmul into grad h.
    const int64_t k = std::min(c.loss_chunk, N);
    const int lse = g.tensor("loss.lse", N * 4, Category::kLogits);
    const int64_t capped = m.final_logit_softcapping > 0 ? 4 * k * V : 0;
    g.ops.push_back({"loss.chunked",
                     {h},
                     {lse, loss},
                     {h, lse},
                     {h},
                     {8 * k * V, N, 4 * k, 4 * k},
                     {(4 + a) * k * V + capped + k * C * a}});
  } else {
    // Full: fp32 logits [N, V] turned into log-probabilities in place and kept; Gemma-2's
    // soft-capping keeps tanh(z / cap) too. Backward turns the saved log-probabilities into the
    // gradient in place, casts it to the compute dtype and multiplies into grad h.
    const int logp = g.tensor("log_softmax", N * V * 4, Category::kLogits);
    OpDef op{"loss.full",
             {h},
             {logp, loss},
             {logp},
             {h},
             {std::max<int64_t>(a, 4) * N * V, N, 4 * N, 4 * N},
             {a * N * V + N * C * a}};
    if (m.final_logit_softcapping > 0) {
      const int capped = g.tensor("logits.softcap", N * V * 4, Category::kLogits);
      op.outputs.push_back(capped);
      op.saved.push_back(capped);
    }
    g.ops.push_back(op);
  }
  g.output = loss;
  return std::move(g);
}

}  // namespace loraplan::planner
