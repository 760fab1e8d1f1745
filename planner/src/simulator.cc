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
    r.phase_peak[e.phase] = std::max(r.phase_peak[e.phase], live);
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
  for (const Event& e : s.events) {
    if (e.alloc) {
      if (!alloc.malloc(e.buffer, s.buffers[e.buffer].bytes)) {
        r.oom = true;
        break;
      }
    } else {
      alloc.free(e.buffer);
    }
    r.phase_allocated[e.phase] = std::max(r.phase_allocated[e.phase], alloc.stats().allocated_bytes);
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
    const int64_t capacity = d.budget_bytes > 0 ? std::max<int64_t>(1, d.budget_bytes - e.context_bytes) : 0;
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

std::vector<Suggestion> suggest_fixes(const ModelDesc& m, const TrainConfig& c, const DeviceModel& d,
                                      size_t max_count) {
  std::vector<Suggestion> out;
  auto try_change = [&](const std::string& change, const std::string& why,
                        const std::function<void(TrainConfig&)>& edit) {
    if (out.size() >= max_count) return false;
    TrainConfig t = c;
    edit(t);
    const Estimate e = estimate(m, t, d);
    if (e.fits) out.push_back({change, why, e.peak_bytes});
    return e.fits;
  };
  const int64_t L = m.layers;
  if (c.loss_chunk == 0) {
    try_change("--loss chunked:1024", "never materialise all B*T*V logits", [](TrainConfig& t) { t.loss_chunk = 1024; });
  }
  if (c.attention == Attention::kEager) {
    try_change("--attention efficient", "no B*H*T*T probabilities kept", [](TrainConfig& t) { t.attention = Attention::kEfficient; });
  }
  if (c.optimizer == Optimizer::kAdamW) {
    try_change("--optimizer adamw-8bit", "8-bit optimizer states", [](TrainConfig& t) { t.optimizer = Optimizer::kAdamW8bit; });
  }
  if (std::count(c.checkpointed.begin(), c.checkpointed.end(), true) < L) {
    try_change("--checkpoint all", "recompute activations in backward",
               [L](TrainConfig& t) { t.checkpointed.assign(L, true); });
  }
  if (c.weights.format != WeightFormat::kNf4 && c.weights.format != WeightFormat::kFp4) {
    try_change("--weights nf4", "4-bit frozen weights", [](TrainConfig& t) { t.weights = {}; });
  }
  for (int64_t b = c.micro_batch / 2; b >= 1; b /= 2) {
    const int64_t accum = c.grad_accum * c.micro_batch / b;
    if (try_change("--micro-batch " + std::to_string(b) + " --grad-accum " + std::to_string(accum),
                   "same effective batch, fewer activations at once", [&](TrainConfig& t) {
                     t.micro_batch = b;
                     t.grad_accum = accum;
                   })) {
      break;
    }
  }
  // Fewest offloaded layers that fit (the peak does not rise with more offloaded layers).
  if (out.size() < max_count) {
    auto offload = [&](int64_t n) {
      TrainConfig t = c;
      for (int64_t l = 0; l < n; ++l) t.offloaded[l] = true;
      return t;
    };
    int64_t lo = 1, hi = L;
    if (estimate(m, offload(hi), d).fits) {
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (estimate(m, offload(mid), d).fits) hi = mid; else lo = mid + 1;
      }
      try_change("--offload " + std::to_string(lo), "frozen weights of " + std::to_string(lo) + " layers in host memory",
                 [&](TrainConfig& t) { t = offload(lo); });
    }
  }
  for (int64_t T = c.seq_len / 2; T >= 64; T /= 2) {
    if (try_change("--seq-len " + std::to_string(T), "shorter sequences", [T](TrainConfig& t) { t.seq_len = T; })) break;
  }
  return out;
}

}  // namespace loraplan::planner
