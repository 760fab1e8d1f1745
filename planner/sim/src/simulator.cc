#include "loraplan/planner/simulator.h"

#include <algorithm>
#include <functional>

#include "loraplan/planner/cuda_allocator.h"

namespace loraplan::planner {

Replay replay(const Schedule& s) {
  Replay r;
  r.phase_peak.assign(s.phases.size(), 0);
  CategoryBytes live_by{};
  int64_t live = 0;
  for (size_t i = 0; i < s.events.size(); ++i) {
    const Event& e = s.events[i];
    const Buffer& b = s.buffers[e.buffer];
    const int64_t delta = e.alloc ? b.bytes : -b.bytes;
    live += delta;
    live_by[static_cast<int>(b.category)] += delta;
    // A phase's peak counts what is live when it begins (its first event may be a free).
    r.phase_peak[e.phase] = std::max({r.phase_peak[e.phase], live - delta, live});
    if (live > r.peak_bytes) {
      r.peak_bytes = live;
      r.peak_event = static_cast<int32_t>(i);
      r.peak_phase = e.phase;
      r.at_peak = live_by;
    }
  }
  r.resident_bytes = live;
  return r;
}

DeviceModel cuda_device(const GpuProfile& gpu, int64_t budget) {
  return {Device::kCuda, budget > 0 ? budget : gpu.memory_bytes, gpu.cuda_context_bytes,
          gpu.cublas_workspace_bytes, gpu.name};
}

DeviceModel cpu_device(int64_t budget) { return {Device::kCpu, budget, 0, 0, "cpu"}; }

namespace {

struct AllocatorRun {
  bool oom = false;
  int64_t allocated_peak = 0, reserved_peak = 0;
  std::vector<int64_t> phase_allocated;
};

// Replays the schedule through the caching-allocator model; capacity 0 = unlimited.
AllocatorRun run_allocator(const Schedule& s, int64_t capacity) {
  AllocatorRun r;
  r.phase_allocated.assign(s.phases.size(), 0);
  CudaAllocatorModel alloc(capacity);
  alloc.reserve(static_cast<int64_t>(s.buffers.size()));  // ids are buffer indices
  for (const Event& e : s.events) {
    if (e.alloc) {
      if (!alloc.malloc(e.buffer, s.buffers[e.buffer].bytes)) {
        r.oom = true;
        break;
      }
    } else {
      alloc.free(e.buffer);
    }
    r.phase_allocated[e.phase] =
        std::max(r.phase_allocated[e.phase], alloc.stats().allocated_bytes);
  }
  r.allocated_peak = alloc.stats().allocated_peak;
  r.reserved_peak = alloc.stats().reserved_peak;
  return r;
}

}  // namespace

Estimate estimate(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d) {
  Estimate e;
  e.schedule = build_schedule(m, c, d.device == Device::kCuda ? d.gemm_workspace_bytes : 0);
  const Schedule& s = e.schedule;
  e.lower_bound = replay(s);
  e.budget_bytes = d.budget_bytes;
  e.host_bytes = s.host_bytes + s.host_optimizer_bytes;
  e.peak_phase = s.phases[e.lower_bound.peak_phase];
  std::vector<int64_t> phase_allocated = e.lower_bound.phase_peak;
  if (d.device == Device::kCuda) {
    e.context_bytes = d.cuda_context_bytes;
    // Under a budget the allocator releases cached segments before it fails, as PyTorch's does;
    // when it fails anyway, the unlimited run tells how much the step would need.
    const int64_t capacity =
        d.budget_bytes > 0 ? std::max<int64_t>(1, d.budget_bytes - e.context_bytes) : 0;
    AllocatorRun run = run_allocator(s, capacity);
    e.fits = !run.oom;
    if (run.oom) run = run_allocator(s, 0);
    e.allocated_peak = run.allocated_peak;
    e.reserved_peak = run.reserved_peak;
    phase_allocated = run.phase_allocated;
  } else {
    e.allocated_peak = e.reserved_peak = e.lower_bound.peak_bytes;
  }
  e.peak_bytes = e.reserved_peak + e.context_bytes;
  if (d.budget_bytes > 0) e.fits = e.fits && e.peak_bytes <= d.budget_bytes;
  for (size_t i = 0; i < s.phases.size(); ++i) {
    e.phases.push_back({s.phases[i], e.lower_bound.phase_peak[i], phase_allocated[i]});
  }
  return e;
}

int64_t suggested_loss_chunk(const ModelDesc& m, const TrainConfig& c) {
  const int64_t per_token = m.vocab * (dtype_bytes(c.compute) + 8);  // logits, fp32 copy, log-probs
  int64_t k = 64;
  while (2 * k * per_token <= (int64_t{256} << 20) && 2 * k <= c.tokens()) k *= 2;
  return k;
}

FitCheck check_fit(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d) {
  const Schedule s = build_schedule(m, c, d.device == Device::kCuda ? d.gemm_workspace_bytes : 0);
  const Replay lb = replay(s);
  const int64_t context = d.device == Device::kCuda ? d.cuda_context_bytes : 0;
  FitCheck f{false, lb.peak_bytes + context, lb.peak_bytes + context};
  if (d.budget_bytes > 0 && f.peak_bytes > d.budget_bytes) return f;  // over even without rounding
  if (d.device == Device::kCpu) {
    f.fits = true;
    return f;
  }
  const int64_t capacity = d.budget_bytes > 0 ? std::max<int64_t>(1, d.budget_bytes - context) : 0;
  const AllocatorRun run = run_allocator(s, capacity);
  if (run.oom) return f;
  f.peak_bytes = run.reserved_peak + context;
  f.fits = d.budget_bytes <= 0 || f.peak_bytes <= d.budget_bytes;
  return f;
}

namespace {

// One change to a configuration, in the order of what it costs in speed or quality.
struct Fix {
  std::string flags;  // as the user would type it
  std::string why;
  std::function<bool(const TrainConfig&)> applies;
  std::function<void(TrainConfig&)> apply;
};

std::vector<Fix> fixes_by_cost(const ModelDesc& m, const TrainConfig& c) {
  const int64_t L = m.layers;
  const int64_t chunk = suggested_loss_chunk(m, c);
  std::vector<Fix> f = {
      {"--loss chunked:" + std::to_string(chunk), "never hold all B*T*V logits",
       [](const TrainConfig& t) { return t.loss_chunk == 0; },
       [chunk](TrainConfig& t) { t.loss_chunk = chunk; }},
      {"--attention efficient", "no B*H*T*T probabilities kept",
       [](const TrainConfig& t) { return t.attention == Attention::kEager; },
       [](TrainConfig& t) { t.attention = Attention::kEfficient; }},
      {"--optimizer adamw-8bit", "8-bit optimizer states",
       [](const TrainConfig& t) { return t.optimizer == Optimizer::kAdamW; },
       [](TrainConfig& t) { t.optimizer = Optimizer::kAdamW8bit; }},
      {"--checkpoint all", "recompute activations in backward",
       [L](const TrainConfig& t) {
         return std::count(t.checkpointed.begin(), t.checkpointed.end(), true) < L;
       },
       [L](TrainConfig& t) { t.checkpointed.assign(L, true); }},
      {"--weights nf4", "4-bit frozen weights",
       [](const TrainConfig& t) { return !weight_format_info(t.weights.format).four_bit(); },
       [](TrainConfig& t) { t.weights = {}; }},
  };
  // Smaller micro-batches, same effective batch.
  for (int64_t b = c.micro_batch / 2; b >= 1; b /= 2) {
    const int64_t accum = c.grad_accum * c.micro_batch / b;
    f.push_back({"--micro-batch " + std::to_string(b) + " --grad-accum " + std::to_string(accum),
                 "same effective batch, fewer activations at once",
                 [b](const TrainConfig& t) { return t.micro_batch > b; },
                 [b, accum](TrainConfig& t) {
                   t.micro_batch = b;
                   t.grad_accum = accum;
                 }});
  }
  return f;
}

// The fewest offloaded layers (the first n) under which `c` fits, or 0 if none does. The peak
// does not rise as more layers are offloaded, so a bisection finds it.
int64_t layers_to_offload(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d) {
  auto fits_with = [&](int64_t n) {
    TrainConfig t = c;
    for (int64_t l = 0; l < n; ++l) t.offloaded[l] = true;
    return estimate(m, t, d).fits;
  };
  if (!fits_with(m.layers)) return 0;
  int64_t lo = 1, hi = m.layers;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (fits_with(mid))
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

}  // namespace

std::vector<Suggestion> suggest_fixes(const ModelDesc& m, const TrainConfig& c,
                                      const DeviceModel& d, size_t max_count) {
  std::vector<Suggestion> out;
  auto fits = [&](const TrainConfig& t, const std::string& flags, const std::string& why) {
    const Estimate e = estimate(m, t, d);
    if (e.fits && out.size() < max_count) out.push_back({flags, why, e.peak_bytes});
    return e.fits;
  };
  const std::vector<Fix> fixes = fixes_by_cost(m, c);
  // Single changes first.
  for (const Fix& f : fixes) {
    if (!f.applies(c)) continue;
    TrainConfig t = c;
    f.apply(t);
    if (fits(t, f.flags, f.why) && f.flags.starts_with("--micro-batch"))
      break;  // the largest that fits
  }
  // Then the cheap changes together, in order, until the step fits (offloading layers when they
  // are not enough), dropping those the rest does not need.
  struct Combo {
    TrainConfig config;
    int64_t offload = -1;  // layers to offload; -1: does not fit at all
  };
  auto evaluate = [&](const std::vector<const Fix*>& picked) {
    Combo k{c};
    for (const Fix* f : picked) {
      if (f->applies(k.config)) f->apply(k.config);
    }
    k.offload = estimate(m, k.config, d).fits ? 0 : layers_to_offload(m, k.config, d);
    if (k.offload == 0 && !estimate(m, k.config, d).fits) k.offload = -1;
    for (int64_t l = 0; l < std::max<int64_t>(k.offload, 0); ++l) k.config.offloaded[l] = true;
    return k;
  };
  std::vector<const Fix*> chosen;
  for (const Fix& f : fixes) {
    if (!f.applies(evaluate(chosen).config)) continue;
    chosen.push_back(&f);
    TrainConfig t = evaluate(chosen).config;
    if (estimate(m, t, d).fits &&
        std::none_of(t.offloaded.begin(), t.offloaded.end(), [](bool b) { return b; }))
      break;
  }
  Combo best = evaluate(chosen);
  for (size_t i = chosen.size(); i-- > 0 && best.offload >= 0;) {
    std::vector<const Fix*> without;
    for (size_t j = 0; j < chosen.size(); ++j) {
      if (j != i) without.push_back(chosen[j]);
    }
    const Combo k = evaluate(without);
    if (k.offload >= 0 && k.offload <= best.offload) {
      chosen = without;
      best = k;
    }
  }
  const TrainConfig& t = best.config;
  std::string flags;
  for (const Fix* f : chosen) flags += (flags.empty() ? "" : " ") + f->flags;
  if (best.offload > 0)
    flags += (flags.empty() ? "" : " ") + std::string("--offload ") + std::to_string(best.offload);
  const bool combined_is_new =
      std::none_of(out.begin(), out.end(), [&](const Suggestion& s) { return s.change == flags; });
  if (combined_is_new && !flags.empty() && best.offload >= 0)
    fits(t, flags, "these changes together");
  if (out.empty()) {
    if (const int64_t n = layers_to_offload(m, c, d); n > 0) {
      TrainConfig o = c;
      for (int64_t l = 0; l < n; ++l) o.offloaded[l] = true;
      fits(o, "--offload " + std::to_string(n),
           "frozen weights of " + std::to_string(n) + " layers in host memory");
    }
  }
  if (out.empty()) {
    for (int64_t T = c.seq_len / 2; T >= 64; T /= 2) {
      TrainConfig shorter = c;
      shorter.seq_len = T;
      if (fits(shorter, "--seq-len " + std::to_string(T), "shorter sequences")) break;
    }
  }
  return out;
}

}  // namespace loraplan::planner
