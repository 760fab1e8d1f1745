// Cost of replaying one alloc/free event through CudaAllocatorModel. The planner replays about
// 20k events per estimate and a plan search runs thousands of estimates, so this is the inner
// loop of the whole search.
//
// Run:
//   cmake -S . -B build-alloc && cmake --build build-alloc --target cuda_allocator_bench
//   build-alloc/bench/cuda_allocator_bench
// The "per_event" counter is seconds per event (e.g. "95n" = 95 ns).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "loraplan/planner/cuda_allocator.h"

namespace loraplan::planner {
namespace {

constexpr int64_t kMiB = 1048576;
constexpr int kEventCount = 20000;

enum class EventKind { kAlloc, kFree };

struct Event {
  EventKind kind;
  int64_t id;     // buffer id, dense from 0 in allocation order
  int64_t bytes;  // request size for kAlloc; unused for kFree
};

// Shapes repeat every step, as in training: one table of sizes per layer, drawn log-uniformly
// from 512 B to 200 MiB so both pools and all segment classes are hit.
struct LayerSizes {
  std::vector<int64_t> saved;  // bytes; activations kept from forward to backward
  std::vector<int64_t> temps;  // bytes; freed before the layer ends
};

constexpr int kLayers = 24;
constexpr int kSavedPerLayer = 4;
constexpr int kTempsPerLayer = 2;

std::vector<LayerSizes> layer_table(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> log_size(std::log(512.0), std::log(200.0 * kMiB));
  auto draw = [&] { return static_cast<int64_t>(std::exp(log_size(rng))); };
  std::vector<LayerSizes> layers(kLayers);
  for (LayerSizes& layer : layers) {
    for (int i = 0; i < kSavedPerLayer; ++i) layer.saved.push_back(draw());
    for (int i = 0; i < kTempsPerLayer; ++i) layer.temps.push_back(draw());
  }
  return layers;
}

class ScheduleBuilder {
 public:
  void alloc(int64_t bytes, std::vector<int64_t>& into) {
    events_.push_back({EventKind::kAlloc, next_id_, bytes});
    into.push_back(next_id_++);
  }
  void free(int64_t id) { events_.push_back({EventKind::kFree, id, 0}); }
  std::vector<Event>& events() { return events_; }

 private:
  std::vector<Event> events_;
  int64_t next_id_ = 0;
};

// Forward pushes saved activations layer by layer (temporaries come and go); backward pops
// them in reverse, LIFO-ish: one free in five swaps with its neighbour, as autograd does not
// release strictly in reverse order.
std::vector<Event> training_like_events() {
  std::mt19937_64 rng(20240611);
  const std::vector<LayerSizes> layers = layer_table(rng);
  std::bernoulli_distribution swap(0.2);
  ScheduleBuilder b;
  while (b.events().size() < kEventCount) {
    std::vector<int64_t> saved;  // ids, oldest first
    for (const LayerSizes& layer : layers) {
      std::vector<int64_t> temps;
      for (int64_t bytes : layer.temps) b.alloc(bytes, temps);
      for (int64_t bytes : layer.saved) b.alloc(bytes, saved);
      for (auto it = temps.rbegin(); it != temps.rend(); ++it) b.free(*it);
    }
    for (auto layer = layers.rbegin(); layer != layers.rend(); ++layer) {
      std::vector<int64_t> grads;
      for (int64_t bytes : layer->temps) b.alloc(bytes, grads);
      for (int i = 0; i < kSavedPerLayer; ++i) {
        if (saved.size() >= 2 && swap(rng)) std::swap(saved.back(), saved[saved.size() - 2]);
        b.free(saved.back());
        saved.pop_back();
      }
      for (auto it = grads.rbegin(); it != grads.rend(); ++it) b.free(*it);
    }
  }
  b.events().resize(kEventCount);  // a cut schedule only leaves buffers live, never frees early
  return b.events();
}

// Replays the schedule; frees of requests that failed (out of memory) are skipped.
void replay(const std::vector<Event>& events, CudaAllocatorModel& model,
            std::vector<uint8_t>& live) {
  std::fill(live.begin(), live.end(), 0);
  for (const Event& e : events) {
    if (e.kind == EventKind::kAlloc) {
      live[e.id] = model.malloc(e.id, e.bytes) ? 1 : 0;
    } else if (live[e.id]) {
      model.free(e.id);
    }
  }
}

void run(benchmark::State& state, int64_t capacity) {
  const std::vector<Event> events = training_like_events();
  std::vector<uint8_t> live(events.size());
  CudaAllocatorStats last;
  for (auto _ : state) {
    CudaAllocatorModel model(capacity);
    replay(events, model, live);
    last = model.stats();
    benchmark::DoNotOptimize(last);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(events.size()));
  state.counters["per_event"] = benchmark::Counter(
      static_cast<double>(events.size()),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["reserved_peak_MiB"] = static_cast<double>(last.reserved_peak) / kMiB;
  state.counters["allocated_peak_MiB"] = static_cast<double>(last.allocated_peak) / kMiB;
  state.counters["retries"] = static_cast<double>(last.num_alloc_retries);
  state.counters["ooms"] = static_cast<double>(last.num_ooms);
}

int64_t unlimited_reserved_peak() {
  const std::vector<Event> events = training_like_events();
  std::vector<uint8_t> live(events.size());
  CudaAllocatorModel model;
  replay(events, model, live);
  return model.stats().reserved_peak;
}

void BM_ReplayUnlimited(benchmark::State& state) { run(state, 0); }

// Capacity at 80% of the unlimited peak: exercises the release-and-retry path and OOMs.
void BM_ReplayTightCapacity(benchmark::State& state) {
  run(state, unlimited_reserved_peak() / 5 * 4);
}

BENCHMARK(BM_ReplayUnlimited)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ReplayTightCapacity)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace loraplan::planner

BENCHMARK_MAIN();
