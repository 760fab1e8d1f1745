// One optimizer step as alloc/free events: the op graphs of op_graph.cc run forward, backward and
// (for checkpointed layers) forward again, micro-batch by micro-batch, with reference counts
// standing in for autograd's saved tensors.
#include "loraplan/planner/schedule.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <utility>

#include "loraplan/planner/attention.h"
#include "loraplan/planner/inventory.h"
#include "op_graph.h"

namespace loraplan::planner {

std::string_view category_name(Category c) {
  constexpr std::string_view kNames[kCategoryCount] = {
      "weights", "adapters", "optimizer", "gradients",      "activations",
      "batch",   "logits",   "workspace", "offload_staging"};
  return kNames[static_cast<int>(c)];
}

std::string Buffer::name() const {
  std::string s;
  if (micro_batch >= 0) s += "mb" + std::to_string(micro_batch) + " ";
  if (layer >= 0) s += "L" + std::to_string(layer) + " ";
  return s + tag;
}

namespace {

constexpr int kNone = -1;

// Emits events and keeps a reference count per live buffer: one for the producer's hold until
// its last forward use, one for every op that saves it for backward.
class StepBuilder {
 public:
  // `buffers`, `events`: expected counts, reserved up front.
  StepBuilder(Schedule& s, size_t buffers, size_t events) : s_(s) {
    s_.buffers.reserve(buffers);
    s_.events.reserve(events);
    refs_.reserve(buffers);
  }

  void phase(const std::string& name) {
    auto [it, added] = phase_index_.try_emplace(name, static_cast<int32_t>(s_.phases.size()));
    if (added) s_.phases.push_back(name);
    phase_ = it->second;
  }

  // phase(name()) where `id` remembers the phase's index (-1 until it has one).
  template <typename Name>
  void phase(int32_t& id, Name name) {
    if (id < 0) {
      phase(name());
      id = phase_;
    }
    phase_ = id;
  }

  int32_t alloc(const char* tag, int layer, int mb, int64_t bytes, Category category) {
    const auto id = static_cast<int32_t>(s_.buffers.size());
    s_.buffers.push_back({tag, layer, mb, bytes, category});
    s_.events.push_back({true, id, phase_});
    refs_.push_back(1);
    return id;
  }

  void hold(int32_t id) { ++refs_[id]; }
  bool shared(int32_t id) const { return refs_[id] > 1; }

  void drop(int32_t id) {
    if (--refs_[id] == 0) s_.events.push_back({false, id, phase_});
  }

  // A transient: allocated and freed at once (a workspace, an accumulated gradient contribution).
  void transient(const char* tag, int layer, int mb, int64_t bytes, Category category) {
    if (bytes > 0) drop(alloc(tag, layer, mb, bytes, category));
  }

  // A workspace: its parts allocated together, then all released.
  void workspace(const char* tag, int layer, int mb, const std::vector<int64_t>& parts) {
    std::vector<int32_t> ids;
    for (int64_t part : parts) {
      if (part > 0) ids.push_back(alloc(tag, layer, mb, part, Category::kWorkspace));
    }
    for (int32_t id : ids) drop(id);
  }

 private:
  Schedule& s_;
  std::vector<int32_t> refs_;
  std::unordered_map<std::string, int32_t> phase_index_;
  int32_t phase_ = 0;
};

// An op graph and, per tensor, the last op that reads or writes it in forward (-1: none), which
// every forward run of the graph needs.
struct GraphPlan {
  OpGraph g;
  std::vector<int> last_use;

  explicit GraphPlan(OpGraph graph) : g(std::move(graph)), last_use(g.tensors.size(), -1) {
    for (size_t i = 0; i < g.ops.size(); ++i) {
      for (int t : g.ops[i].inputs) last_use[t] = static_cast<int>(i);
      for (int t : g.ops[i].outputs) last_use[t] = std::max(last_use[t], static_cast<int>(i));
    }
  }
};

// One run of an op graph (one layer of one micro-batch): tensor -> buffer, tensor -> gradient.
struct GraphRun {
  const GraphPlan* plan;
  int layer, mb;
  std::vector<int32_t> buf, grad;
  std::vector<char> requires_grad;  // [tensors] the tensor is part of the autograd graph
  std::vector<char> recorded;       // [ops] autograd recorded the op (it keeps its saved tensors)

  GraphRun(const GraphPlan& p, int l, int m)
      : plan(&p),
        layer(l),
        mb(m),
        buf(p.g.tensors.size(), kNone),
        grad(p.g.tensors.size(), kNone),
        requires_grad(p.g.tensors.size(), 0),
        recorded(p.g.ops.size(), 0) {}

  // A fresh run of the same graph (as if constructed again), reusing the storage.
  void restart(int l, int m) {
    layer = l;
    mb = m;
    std::fill(buf.begin(), buf.end(), kNone);
    std::fill(grad.begin(), grad.end(), kNone);
    std::fill(requires_grad.begin(), requires_grad.end(), 0);
    std::fill(recorded.begin(), recorded.end(), 0);
  }
};

bool has_adapter(const OpDef& op) { return op.adapter_grad_bytes[0] > 0; }

// The `n` allocations of one op (forward: its outputs; backward: its gradients) with the op's
// temporaries between them (see Temp); `allocate(k)` makes allocation k. `ids`: scratch.
template <typename Allocate>
void allocate_with_temps(StepBuilder& sb, const GraphRun& run, const char* tag,
                         const std::vector<Temp>& temps, int n, bool input_grad,
                         std::vector<int32_t>& ids, Allocate allocate) {
  ids.assign(temps.size(), kNone);
  for (int k = 0; k <= n + 1; ++k) {
    for (size_t i = 0; i < temps.size(); ++i) {
      if (ids[i] != kNone && temps[i].to == k && temps[i].from < k) {
        sb.drop(ids[i]);
        ids[i] = kNone;
      }
    }
    for (size_t i = 0; i < temps.size(); ++i) {
      const Temp& t = temps[i];
      if (t.from == k && t.bytes > 0 && (input_grad || !t.only_with_input_grad)) {
        ids[i] = sb.alloc(tag, run.layer, run.mb, t.bytes, Category::kWorkspace);
      }
    }
    for (size_t i = 0; i < temps.size(); ++i) {
      if (ids[i] != kNone && temps[i].from == k && temps[i].to == k) {
        sb.drop(ids[i]);
        ids[i] = kNone;
      }
    }
    if (k < n) allocate(k);
  }
}

// `last_use`: scratch storage, overwritten.
// `save`: autograd records ops (not under no_grad); it records only ops with an input in the
// graph or with an adapter, so an op on the frozen embedding's output keeps nothing.
void forward(StepBuilder& sb, GraphRun& run, int32_t input, bool save, bool input_requires_grad,
             std::vector<int>& last_use, std::vector<int32_t>& temp_ids) {
  const OpGraph& g = run.plan->g;
  last_use.assign(run.plan->last_use.begin(), run.plan->last_use.end());
  run.buf[g.input] = input;
  run.requires_grad[g.input] = input_requires_grad;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const OpDef& op = g.ops[i];
    const bool in_graph =
        has_adapter(op) || std::any_of(op.inputs.begin(), op.inputs.end(),
                                       [&](int t) { return run.requires_grad[t]; });
    allocate_with_temps(sb, run, op.tag, op.fwd_temps, static_cast<int>(op.outputs.size()), true,
                        temp_ids, [&](int k) {
                          const int t = op.outputs[k];
                          const TensorDef& td = g.tensors[t];
                          if (td.view_of >= 0) {  // shares its base's buffer
                            run.buf[t] = run.buf[td.view_of];
                            sb.hold(run.buf[t]);
                          } else {
                            run.buf[t] = sb.alloc(td.tag, run.layer, run.mb, td.bytes, td.category);
                          }
                          run.requires_grad[t] = in_graph;
                        });
    sb.workspace(op.tag, run.layer, run.mb, op.fwd_workspace);
    run.recorded[i] = save && in_graph;
    if (run.recorded[i]) {
      for (int t : op.saved) sb.hold(run.buf[t]);
    }
    auto release = [&](int t) {
      if (last_use[t] == static_cast<int>(i) && t != g.output && t != g.input &&
          run.buf[t] != kNone) {
        sb.drop(run.buf[t]);
        last_use[t] = -2;  // released once, even when listed twice (fused views)
      }
    };
    for (int t : op.inputs) release(t);
    for (int t : op.outputs) release(t);
  }
}

struct GradState {
  std::vector<int32_t> adapter_grads;  // persistent buffers of the first micro-batch
  bool first_micro_batch = true;
  // A checkpointed layer's backward (autograd::grad over the recomputed layer) returns all its
  // adapter gradients at once: on later micro-batches they are held here until it ends, then
  // accumulated into the first micro-batch's buffers.
  bool hold_adapter_grads = false;
  std::vector<int32_t> held;
  std::vector<int32_t> added;     // scratch: one op's gradient contributions to accumulate
  std::vector<int> out_of_place;  // scratch: tensors whose accumulated gradient is a new buffer
};

// Runs the graph's backward from the gradient of its output; returns the gradient buffer of its
// input (kNone when the input needs none). Gradient buffers are shared by reference count when
// an op hands its output gradient on unchanged. After an op's backward returns, autograd frees
// its output gradients and saved tensors, then adds each further gradient contribution into the
// buffer already there (and adapter gradients of later micro-batches into .grad) and frees it;
// when that buffer is shared (a checkpoint still holds its output gradient), the sum is new.
int32_t backward(StepBuilder& sb, GraphRun& run, int32_t grad_out, GradState& gs,
                 std::vector<int32_t>& temp_ids) {
  const OpGraph& g = run.plan->g;
  run.grad[g.output] = grad_out;
  std::vector<int32_t>& added = gs.added;
  for (size_t i = g.ops.size(); i-- > 0;) {
    const OpDef& op = g.ops[i];
    const bool reached = std::any_of(op.outputs.begin(), op.outputs.end(),
                                     [&](int t) { return run.grad[t] != kNone; });
    added.clear();
    if (reached) {
      const bool input_grad = std::any_of(op.grad_inputs.begin(), op.grad_inputs.end(),
                                          [&](int t) { return run.requires_grad[t]; });
      sb.workspace(op.tag, run.layer, run.mb, op.bwd_workspace);
      int32_t given = kNone;
      for (int t : op.outputs) {
        if (run.grad[t] != kNone) given = run.grad[t];
      }
      const int inputs = static_cast<int>(op.grad_inputs.size());
      const int n = inputs + (has_adapter(op) ? 2 : 0);
      allocate_with_temps(sb, run, op.tag, op.bwd_temps, n, input_grad, temp_ids, [&](int k) {
        if (k >= inputs) {  // grad B, grad A
          const int64_t bytes = op.adapter_grad_bytes[k - inputs];
          if (gs.first_micro_batch) {
            gs.adapter_grads.push_back(
                sb.alloc("grad:lora", run.layer, -1, bytes, Category::kGradients));
          } else if (gs.hold_adapter_grads) {
            gs.held.push_back(
                sb.alloc("grad:lora", run.layer, run.mb, bytes, Category::kGradients));
          } else {
            added.push_back(sb.alloc("grad:lora", run.layer, run.mb, bytes, Category::kGradients));
          }
          return;
        }
        const int t = op.grad_inputs[k];
        if (!run.requires_grad[t]) return;
        const TensorDef& td = g.tensors[t];
        if (run.grad[t] != kNone) {
          added.push_back(sb.alloc("grad", run.layer, run.mb, td.bytes, td.category));
          // A gradient buffer something else still holds is not added into: the sum is new.
          if (sb.shared(run.grad[t])) gs.out_of_place.push_back(t);
        } else if (op.pass_through_grad) {
          run.grad[t] = given;
          sb.hold(given);
        } else {
          run.grad[t] = sb.alloc("grad", run.layer, run.mb, td.bytes, td.category);
        }
      });
      for (int t : op.outputs) {
        if (run.grad[t] != kNone) {
          sb.drop(run.grad[t]);
          // Fused views share one tensor id: the gradient is consumed once.
          for (int u : op.outputs) {
            if (u != t && run.grad[u] == run.grad[t]) run.grad[u] = kNone;
          }
          run.grad[t] = kNone;
        }
      }
    }
    if (run.recorded[i]) {
      for (int t : op.saved) sb.drop(run.buf[t]);
    }
    for (int t : gs.out_of_place) {
      const TensorDef& td = g.tensors[t];
      const int32_t sum = sb.alloc("grad", run.layer, run.mb, td.bytes, td.category);
      sb.drop(run.grad[t]);
      run.grad[t] = sum;
    }
    gs.out_of_place.clear();
    for (int32_t id : added) sb.drop(id);
  }
  return run.requires_grad[g.input] ? run.grad[g.input] : kNone;
}

// A number an op takes with a tensor is wrapped in a CPU tensor (a double) and cast to fp32 for a
// float op: device memory on the CPU only.
constexpr int64_t kWrappedScalarBytes = 8, kWrappedScalarCastBytes = 4;

// An fp32 scalar [] divided by a number (loss / grad_accum, or its gradient): on the CPU the
// number's wrapped tensors live while the result is allocated.
int32_t scalar_quotient(StepBuilder& sb, const char* tag, int mb, Category category, bool cpu) {
  if (!cpu) return sb.alloc(tag, -1, mb, 4, category);
  const int32_t wrapped =
      sb.alloc("scalar.wrapped", -1, mb, kWrappedScalarBytes, Category::kWorkspace);
  const int32_t cast =
      sb.alloc("scalar.wrapped", -1, mb, kWrappedScalarCastBytes, Category::kWorkspace);
  const int32_t out = sb.alloc(tag, -1, mb, 4, category);
  sb.drop(cast);
  sb.drop(wrapped);
  return out;
}

// Device buffers of one frozen linear weight [out, in] in the configured format.
void alloc_linear_weight(StepBuilder& sb, int layer, int64_t out, int64_t in, const QuantOptions& q,
                         Category category, std::vector<int32_t>* keep) {
  auto add = [&](const char* tag, int64_t bytes) {
    const int32_t id = sb.alloc(tag, layer, -1, bytes, category);
    if (keep) keep->push_back(id);
  };
  const int64_t n = out * in;
  switch (weight_format_info(q.format).layout) {
    case WeightLayout::kBlockwise4bit: {
      const int64_t blocks = (n + q.block - 1) / q.block;
      add("weight.nf4_codes", (n + 1) / 2);  // uint8 [(n+1)/2]
      add("weight.code_map", 16 * 4);        // fp32 [16]
      if (q.double_quant) {
        add("weight.absmax_u8", blocks);                    // uint8 [blocks]
        add("weight.absmax2", 4 * ((blocks + 255) / 256));  // fp32 [blocks / 256]
        add("weight.code_map2", 256 * 4);                   // fp32 [256]
        add("weight.absmax_offset", 4);                     // fp32 scalar
      } else {
        add("weight.absmax", 4 * blocks);  // fp32 [blocks]
      }
      return;
    }
    case WeightLayout::kRowwise8bit:
      add("weight.int8", n);       // int8 [out, in]
      add("weight.scb", 4 * out);  // fp32 [out]
      return;
    case WeightLayout::kPlain:
      add("weight", linear_weight_bytes(out, in, q));
  }
}

// inventory(m), kept per thread for the next schedule of the same model: a plan search builds
// thousands, and the inventory (a name string per tensor) is a good part of one.
const std::vector<TensorSpec>& model_inventory(const ModelDesc& m) {
  struct Cache {
    bool valid = false;
    ModelDesc model;
    std::vector<TensorSpec> tensors;
  };
  thread_local Cache cache;
  if (!cache.valid || !(cache.model == m)) {
    cache.valid = false;
    cache.tensors = inventory(m);
    cache.model = m;
    cache.valid = true;
  }
  return cache.tensors;
}

// How large the last schedule built on this thread was. A plan search builds thousands of
// schedules of one model, each about as large as the one before, so this is what the next one
// reserves.
struct ScheduleSize {
  size_t buffers = 0, events = 0;
};
thread_local ScheduleSize last_schedule_size;

}  // namespace

// The evaluation after the optimizer step: the eval micro-batch's forward under no_grad (nothing
// saved, each tensor freed at its last use, no dropout), its loss, no backward. The gradients are
// gone by then (zero_grad sets them to None); weights, adapters and optimizer state stay.
template <typename Stage, typename Unstage>
void eval_step(StepBuilder& sb, const ModelDesc& m, const TrainConfig& c, Stage& stage,
               Unstage& unstage, std::vector<int>& last_use, std::vector<int32_t>& temp_ids) {
  TrainConfig e = c;
  e.micro_batch = c.eval_micro_batch;
  e.seq_len = c.eval_seq_len;
  e.lora_dropout = 0;  // model.eval(): no dropout masks
  const Dims d = dims_of(m, e);
  const GraphPlan layer(decoder_layer_graph(m, e));
  const bool split = attention_kinds(m, d.T).windowed && e.attention == Attention::kEfficient;
  const std::optional<GraphPlan> windowed =
      split ? std::optional<GraphPlan>(decoder_layer_graph(m, e, m.sliding_window)) : std::nullopt;
  const GraphPlan head(head_graph(m, e));
  sb.phase("eval");
  const int32_t ids = sb.alloc("eval.input_ids", -1, 0, d.N * 8, Category::kBatch);  // int64 [B, T]
  const int32_t labels = sb.alloc("eval.labels", -1, 0, d.N * 8, Category::kBatch);
  int32_t x = sb.alloc("eval.embed.out", -1, 0, d.N * d.C * d.a, Category::kActivations);
  if (m.scales_embedding()) {
    const int32_t scaled =
        sb.alloc("eval.embed.scaled", -1, 0, d.N * d.C * d.a, Category::kActivations);
    sb.drop(x);
    x = scaled;
  }
  for (int l = 0; l < m.layers; ++l) {
    const std::vector<int32_t> staged = stage(l);
    GraphRun run(split && windowed_attention(m, l, d.T) ? *windowed : layer, l, 0);
    forward(sb, run, x, /*save=*/false, /*input_requires_grad=*/false, last_use, temp_ids);
    sb.drop(x);
    unstage(staged);
    x = run.buf[run.plan->g.output];
  }
  GraphRun head_run(head, -1, 0);
  forward(sb, head_run, x, false, false, last_use, temp_ids);
  sb.drop(x);
  sb.drop(head_run.buf[head.g.output]);  // the loss
  sb.drop(ids);
  sb.drop(labels);
}

namespace {

// One optimizer step's schedule, built in the order the executor runs it: the resident state
// (setup), the workspaces and tables every step shares, each simulated micro-batch (batch, embed,
// the layers forward, the loss, the layers backward), the optimizer update, the evaluation.
class StepScheduler {
 public:
  StepScheduler(Schedule& s, const ModelDesc& m, const TrainConfig& c)
      : s_(s),
        sb_(s, last_schedule_size.buffers, last_schedule_size.events),
        m_(m),
        c_(c),
        d_(dims_of(m, c)),
        layer_linears_(m.layers),
        layer_(decoder_layer_graph(m, c)),
        // Efficient attention in windowed layers holds smaller chunks: a graph of its own.
        split_(attention_kinds(m, d_.T).windowed && c.attention == Attention::kEfficient),
        windowed_layer_(split_
                            ? std::optional<GraphPlan>(decoder_layer_graph(m, c, m.sliding_window))
                            : std::nullopt),
        head_(head_graph(m, c)),
        head_run_(head_, -1, 0),
        fwd_phase_(m.layers, -1),
        bwd_phase_(m.layers, -1) {}

  void build(int64_t gemm_workspace_bytes) {
    resident_state();
    device_workspaces(gemm_workspace_bytes);
    shared_tables();
    runs_.reserve(m_.layers);
    s_.simulated_micro_batches = static_cast<int32_t>(std::min<int64_t>(c_.grad_accum, 2));
    for (int mb = 0; mb < s_.simulated_micro_batches; ++mb) micro_batch(mb);
    optimizer_step();
    if (c_.has_eval()) {
      auto stage = [this](int l) { return this->stage(l); };
      auto unstage = [this](const std::vector<int32_t>& staged) { this->unstage(staged); };
      eval_step(sb_, m_, c_, stage, unstage, last_use_, temp_ids_);
    }
    last_schedule_size = {s_.buffers.size(), s_.events.size()};
    // A hint from a much larger schedule would leave most of the storage unused.
    if (s_.buffers.capacity() > 2 * s_.buffers.size() + 1024) s_.buffers.shrink_to_fit();
    if (s_.events.capacity() > 2 * s_.events.size() + 1024) s_.events.shrink_to_fit();
  }

 private:
  // Resident state: weights, adapters, optimizer state.
  void resident_state() {
    sb_.phase("setup");
    const OptimizerInfo& opt = optimizer_info(c_.optimizer);
    for (const TensorSpec& t : model_inventory(m_)) {
      const bool linear = t.is_linear_weight() && t.module != Module::kLmHead;
      if (linear) layer_linears_[t.layer].push_back(&t);
      if (linear && c_.offloaded[t.layer]) {
        s_.host_bytes += linear_weight_bytes(t.shape[0], t.shape[1], c_.weights);
      } else if (linear) {
        alloc_linear_weight(sb_, t.layer, t.shape[0], t.shape[1], c_.weights, Category::kWeights,
                            nullptr);
      } else {
        // Embeddings, norms, biases and lm_head stay in the compute dtype.
        sb_.alloc("weight", t.layer, -1, t.numel() * d_.a, Category::kWeights);
      }
      if (!linear || !c_.lora_targets.contains(t.module)) continue;
      for (int64_t n :
           {c_.lora_rank * t.shape[1], t.shape[0] * c_.lora_rank}) {  // A [r, in], B [out, r]
        sb_.alloc("lora", t.layer, -1, 4 * n, Category::kAdapters);
        const int64_t state = opt.state_bytes(n);
        if (opt.paged) {
          s_.host_optimizer_bytes += state;
        } else if (state > 0) {
          sb_.alloc("optimizer", t.layer, -1, state, Category::kOptimizer);
        }
        // AdamW's update temporaries exist for fp32 state; 8-bit state updates block by block in
        // place (bitsandbytes' kernel, the executor's loop) and leaves none.
        if (!opt.state_8bit(n)) max_adapter_ = std::max(max_adapter_, n);
      }
    }
  }

  // PyTorch 2.x takes a cuBLAS workspace from the caching allocator per thread (handle) and
  // stream at its first GEMM and keeps it: one for the forward, one for the autograd engine's
  // device thread that runs the backward. Measured on an H200 with LibTorch 2.11: allocated bytes
  // exceed the tensors by exactly 2 x 32 MiB (docs/accuracy-cuda.md).
  void device_workspaces(int64_t gemm_workspace_bytes) {
    if (gemm_workspace_bytes <= 0) return;
    sb_.alloc("cublas_workspace.forward", -1, -1, gemm_workspace_bytes, Category::kWorkspace);
    sb_.alloc("cublas_workspace.backward", -1, -1, gemm_workspace_bytes, Category::kWorkspace);
    // A linear with a bias runs as addmm through cuBLASLt, whose 1 MiB workspace is likewise kept
    // per thread: the forward's, and the backward thread's when it recomputes a biased linear
    // (a checkpointed layer). Measured on the H200, LibTorch 2.11 (scripts/cuda_overheads.py).
    if (!(m_.qkv_bias || m_.o_bias || m_.mlp_bias)) return;
    sb_.alloc("cublaslt_workspace.forward", -1, -1, kCublasLtWorkspaceBytes, Category::kWorkspace);
    if (std::find(c_.checkpointed.begin(), c_.checkpointed.end(), true) != c_.checkpointed.end()) {
      sb_.alloc("cublaslt_workspace.backward", -1, -1, kCublasLtWorkspaceBytes,
                Category::kWorkspace);
    }
  }

  // Tables every step shares: cos and sin [T, rotary dim / 2] in the compute dtype, and for eager
  // attention the masks [T, T] (bool): causal for the layers that see every earlier token, causal
  // and windowed for those whose window is shorter than the sequence.
  // They cover c.tables() positions (T, or a dataset run's longest T).
  void shared_tables() {
    const int64_t P = c_.tables();
    sb_.alloc("rope.cos", -1, -1, P * (m_.rotary_dim() / 2) * d_.a, Category::kActivations);
    sb_.alloc("rope.sin", -1, -1, P * (m_.rotary_dim() / 2) * d_.a, Category::kActivations);
    if (c_.attention != Attention::kEager) return;
    const AttentionKinds table_kinds = attention_kinds(m_, P);
    if (table_kinds.full) sb_.alloc("attn.causal_mask", -1, -1, P * P, Category::kActivations);
    if (table_kinds.windowed) sb_.alloc("attn.window_mask", -1, -1, P * P, Category::kActivations);
  }

  const GraphPlan& plan_for(int l) const {
    return split_ && windowed_attention(m_, l, d_.T) ? *windowed_layer_ : layer_;
  }

  // An offloaded layer's frozen weights, staged onto the device for its turn.
  std::vector<int32_t> stage(int l) {
    std::vector<int32_t> staged;
    if (c_.offloaded[l]) {
      for (const TensorSpec* t : layer_linears_[l]) {
        alloc_linear_weight(sb_, l, t->shape[0], t->shape[1], c_.weights, Category::kOffloadStaging,
                            &staged);
      }
    }
    return staged;
  }
  void unstage(const std::vector<int32_t>& staged) {
    for (int32_t id : staged) sb_.drop(id);
  }

  void micro_batch(int mb) {
    gs_.first_micro_batch = mb == 0;
    sb_.phase("batch");
    const int32_t ids = sb_.alloc("input_ids", -1, mb, d_.N * 8, Category::kBatch);  // int64 [B, T]
    const int32_t labels = sb_.alloc("labels", -1, mb, d_.N * 8, Category::kBatch);  // int64 [B, T]

    sb_.phase("embed");
    int32_t x =
        sb_.alloc("embed.out", -1, mb, d_.N * d_.C * d_.a, Category::kActivations);  // [N, C]
    if (m_.scales_embedding()) {  // h * sqrt(C): a scaled copy
      const int32_t scaled =
          sb_.alloc("embed.scaled", -1, mb, d_.N * d_.C * d_.a, Category::kActivations);
      sb_.drop(x);
      x = scaled;
    }
    x = forward_layers(mb, x);

    sb_.phase("loss");
    head_run_.restart(-1, mb);
    forward(sb_, head_run_, x, true, true, last_use_, temp_ids_);
    sb_.drop(x);
    // backward() of loss / grad_accum: the quotient and backward's seed (ones) stay until the
    // micro-batch's backward ends, the loss until the micro-batch's end; the division's gradient
    // is grad:loss. Each division by a number wraps it (and its fp32 cast) in CPU tensors.
    const int32_t loss = head_run_.buf[head_.g.output];
    const bool cpu = c_.device == Device::kCpu;
    const int32_t scaled = scalar_quotient(sb_, "loss.scaled", mb, Category::kLogits, cpu);
    const int32_t seed = sb_.alloc("grad:loss.scaled", -1, mb, 4, Category::kLogits);
    const int32_t g =
        backward(sb_, head_run_, scalar_quotient(sb_, "grad:loss", mb, Category::kLogits, cpu), gs_,
                 temp_ids_);
    backward_layers(mb, g);
    sb_.drop(seed);
    sb_.drop(scaled);
    sb_.drop(loss);
    sb_.drop(ids);
    sb_.drop(labels);
  }

  // The decoder layers forward from the embedding `x`; returns the last layer's output.
  int32_t forward_layers(int mb, int32_t x) {
    for (int l = 0; l < m_.layers; ++l) {
      sb_.phase(fwd_phase_[l], [l] { return "fwd L" + std::to_string(l); });
      const std::vector<int32_t> staged = stage(l);
      if (static_cast<size_t>(l) < runs_.size()) {
        runs_[l].restart(l, mb);
      } else {
        runs_.emplace_back(plan_for(l), l, mb);
      }
      if (c_.checkpointed[l]) sb_.hold(x);  // the checkpoint keeps the layer input
      // Layer 0's input is the frozen embedding's output: it is not part of the graph.
      forward(sb_, runs_[l], x, !c_.checkpointed[l], l > 0, last_use_, temp_ids_);
      sb_.drop(x);
      unstage(staged);
      x = runs_[l].buf[runs_[l].plan->g.output];
    }
    return x;
  }

  // The decoder layers backward from the gradient `g` of the last layer's output; a checkpointed
  // layer first recomputes its forward from the input it kept.
  void backward_layers(int mb, int32_t g) {
    for (int l = static_cast<int>(m_.layers) - 1; l >= 0; --l) {
      sb_.phase(bwd_phase_[l], [l] { return "bwd L" + std::to_string(l); });
      const std::vector<int32_t> staged = stage(l);
      GraphRun& run = runs_[l];
      int32_t recomputed = kNone;
      const int32_t grad_out = g;
      if (c_.checkpointed[l]) {
        const int32_t input = run.buf[run.plan->g.input];
        run.restart(l, mb);
        forward(sb_, run, input, true, l > 0, last_use_, temp_ids_);
        recomputed = run.buf[run.plan->g.output];
        sb_.hold(grad_out);  // the checkpoint's backward holds its output gradient until it returns
      }
      gs_.hold_adapter_grads = c_.checkpointed[l];
      g = backward(sb_, run, g, gs_, temp_ids_);
      if (recomputed != kNone) {
        sb_.drop(recomputed);
        sb_.drop(grad_out);
        for (int32_t id : gs_.held) sb_.drop(id);
        gs_.held.clear();
        sb_.drop(run.buf[run.plan->g.input]);  // the checkpoint's hold
      }
      unstage(staged);
    }
  }

  // Optimizer update: per-tensor temporaries (AdamW: sqrt(v) and its quotient), then the
  // gradients are released (zero_grad with set_to_none).
  void optimizer_step() {
    sb_.phase("optim");
    // AdamW: sqrt(v) and its quotient, fp32 [n], for the largest adapter tensor with fp32 state;
    // SGD updates in place.
    const int64_t update = optimizer_info(c_.optimizer).adam ? 8 : 0;
    // Gradient clipping (train's default --max-grad-norm 1.0): the fp32 sum of the squared norms
    // and one tensor's norm, both 0-d, read once.
    sb_.workspace("optimizer.clip_norm", -1, -1, {4, 4});
    if (c_.device == Device::kCpu) {
      // An in-place multiply by a number (clipping's scale, momentum, weight decay, Adam's betas)
      // wraps it in CPU tensors; then AdamW's sqrt(v), the wrapped bias correction and the
      // quotient.
      sb_.workspace("optimizer.scalar", -1, -1, {kWrappedScalarBytes, kWrappedScalarCastBytes});
      if (update > 0 && max_adapter_ > 0) {
        sb_.workspace(
            "optimizer.update", -1, -1,
            {4 * max_adapter_, kWrappedScalarBytes, kWrappedScalarCastBytes, 4 * max_adapter_});
      }
    } else {
      sb_.transient("optimizer.update", -1, -1, update * max_adapter_, Category::kWorkspace);
    }
    for (int32_t id : gs_.adapter_grads) sb_.drop(id);
  }

  Schedule& s_;
  StepBuilder sb_;
  const ModelDesc& m_;
  const TrainConfig& c_;
  const Dims d_;
  std::vector<std::vector<const TensorSpec*>> layer_linears_;  // [layers] their frozen linears
  int64_t max_adapter_ = 0;  // elements of the largest adapter tensor with fp32 state
  const GraphPlan layer_;
  const bool split_;
  const std::optional<GraphPlan> windowed_layer_;
  const GraphPlan head_;
  GraphRun head_run_;
  std::vector<int> last_use_;      // scratch for forward()
  std::vector<int32_t> temp_ids_;  // scratch for forward() and backward()
  GradState gs_;
  std::vector<GraphRun> runs_;                  // [layers] this micro-batch's run of each layer
  std::vector<int32_t> fwd_phase_, bwd_phase_;  // [layers] their phases' indices
};

}  // namespace

Schedule build_schedule(const ModelDesc& m, const TrainConfig& c, int64_t gemm_workspace_bytes) {
  Schedule s;
  StepScheduler(s, m, c).build(gemm_workspace_bytes);
  return s;
}

}  // namespace loraplan::planner
