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
#include "ops.h"

namespace loraplan::executor {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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

Tensor FrozenLinear::forward(const Tensor& x) const { return linear_lora(*this, x); }

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
  Tensor h1 = rms_norm(x, d.input_norm, adds_one, eps);
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
    q = rms_norm(q, d.q_norm, false, eps);
    k = rms_norm(k, d.k_norm, false, eps);
  }
  // The tables cover the run's T; a shorter micro-batch (a dataset's) takes their first T rows.
  const Tensor cos = T == cos_.size(0) ? cos_ : cos_.narrow(0, 0, T);
  const Tensor sin = T == sin_.size(0) ? sin_ : sin_.narrow(0, 0, T);
  const Documents* docs = documents_.packed() ? &documents_ : nullptr;
  q = rope(q, cos, sin, docs);
  k = rope(k, cos, sin, docs);
  const double scale = m.attention_scale();
  const bool windowed = planner::windowed_attention(m, d.index, T);
  Tensor o;
  if (c_.attention == planner::Attention::kEfficient) {
    o = efficient_attention(q, k, v, scale, m.attn_logit_softcapping,
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
    mask_documents(s, 0, 0, docs, T);
    Tensor p = at::softmax(s, -1);
    s.reset();
    o = at::matmul(p, vr).transpose(1, 2).reshape(
        {B, T, HD});  // the [B, H, T, D] product is a temporary
  }
  Tensor attn = d.attn[next].forward(o.reshape({B, T, HD}));
  o.reset();
  if (sandwich) attn = rms_norm(attn, d.post_attn_norm, adds_one, eps);
  Tensor x2 = x + attn;
  attn.reset();

  // MLP half.
  Tensor h2 = rms_norm(x2, sandwich ? d.pre_ff_norm : d.post_attn_norm, adds_one, eps);
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
  if (sandwich) down = rms_norm(down, d.post_ff_norm, adds_one, eps);
  return x2 + down;
}

Tensor Model::loss(const Tensor& x, const Tensor& labels) const {
  const Tensor h = rms_norm(x, final_norm_, m_.norm_adds_one(), m_.rms_norm_eps);
  return cross_entropy(h.reshape({-1, m_.hidden}), lm_head_, labels.reshape(-1), c_.loss_chunk,
                       m_.final_logit_softcapping);
}

Tensor Model::eval_loss(const Tensor& ids, const Tensor& labels) const {
  torch::NoGradGuard no_grad;
  const EvalMode eval_mode;
  Tensor x = embed(ids);
  for (const DecoderLayer& d : layers_) {
    if (d.offloaded) d.stage();
    x = layer_forward(d, x);
    if (d.offloaded) d.unstage();
  }
  return loss(x, labels);
}

Tensor Model::logits(const Tensor& x) const {
  const Tensor h = rms_norm(x, final_norm_, m_.norm_adds_one(), m_.rms_norm_eps);
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
