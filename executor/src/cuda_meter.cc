// The CUDA memory meter: the caching allocator's own counters, read at each phase boundary.
// Compiled only against a LibTorch with CUDA (LORAPLAN_TORCH_CUDA); otherwise a stub that
// refuses --device cuda.
#include <stdexcept>

#include "memory_meter.h"

#ifdef LORAPLAN_TORCH_CUDA
#include <ATen/Context.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>
#endif

namespace loraplan::executor {

#ifdef LORAPLAN_TORCH_CUDA
namespace {

namespace alloc = c10::cuda::CUDACachingAllocator;

// The caching allocator's byte counters for one GPU (both pools together).
struct Counters {
  int64_t allocated = 0, allocated_peak = 0;  // bytes of live blocks (requests rounded up)
  int64_t reserved = 0, reserved_peak = 0;    // bytes of segments held from cudaMalloc
};

Counters read_counters(c10::DeviceIndex index) {
  const auto stats = alloc::getDeviceStats(index);
  // Element 0 is StatType::AGGREGATE in LibTorch 1.13 and 2.x alike (2.x moved the enum to
  // c10::CachingAllocator; its first value stayed).
  const auto& a = stats.allocated_bytes[0];
  const auto& r = stats.reserved_bytes[0];
  return {a.current, a.peak, r.current, r.peak};
}

// The allocator keeps one peak per counter, reset by resetPeakStats. At each phase boundary the
// peaks since the last boundary are folded into the phase that just ended (and into the running
// peak since reset_peak()), then reset, so that each phase's peak is its own.
class CudaMeter final : public MemoryMeter {
 public:
  explicit CudaMeter(c10::DeviceIndex index) : index_(index) {}
  ~CudaMeter() override {
    try {
      set_budget(0);
    } catch (...) {  // a destructor must not throw; the fraction only matters to this process
    }
  }

  void set_budget(int64_t bytes) override {
    const c10::cuda::CUDAGuard guard(index_);
    size_t free = 0, total = 0;
    C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    // The allocator then refuses to grow its reserved bytes past fraction * total: it releases
    // its free cached segments once and throws c10::OutOfMemoryError, as on a full GPU.
    const double fraction =
        bytes <= 0 ? 1.0 : std::min(1.0, static_cast<double>(bytes) / static_cast<double>(total));
    alloc::setMemoryFraction(fraction, index_);
  }

  void set_phase(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    fold();
    auto [it, added] = phase_index_.try_emplace(name, static_cast<int>(phases_.size()));
    if (added) phases_.push_back({name, 0, 0});
    phase_ = it->second;
    alloc::resetPeakStats(index_);  // peaks := current: from here on they are this phase's
    const Counters c = read_counters(index_);
    phases_[phase_].peak_bytes = std::max(phases_[phase_].peak_bytes, c.allocated);
    phases_[phase_].reserved_peak_bytes = std::max(phases_[phase_].reserved_peak_bytes, c.reserved);
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    fold();  // the current phase keeps what it reached so far
    alloc::resetPeakStats(index_);
    const Counters c = read_counters(index_);
    peak_ = c.allocated;
    reserved_peak_ = c.reserved;
  }

  void clear_phases() override {
    std::lock_guard<std::mutex> lock(mu_);
    phases_.clear();
    phase_index_.clear();
    phase_ = -1;
  }

  int64_t live_bytes() const override { return read_counters(index_).allocated; }

  int64_t peak_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::max(peak_, read_counters(index_).allocated_peak);
  }

  int64_t reserved_peak_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::max(reserved_peak_, read_counters(index_).reserved_peak);
  }

  std::vector<PhaseMeasure> phases() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<PhaseMeasure> out = phases_;
    if (phase_ >= 0) {  // the phase still open: its peaks are still in the allocator
      const Counters c = read_counters(index_);
      out[phase_].peak_bytes = std::max(out[phase_].peak_bytes, c.allocated_peak);
      out[phase_].reserved_peak_bytes = std::max(out[phase_].reserved_peak_bytes, c.reserved_peak);
    }
    return out;
  }

 private:
  // The allocator's peaks since its last reset, into the current phase and the running peak.
  void fold() {
    const Counters c = read_counters(index_);
    peak_ = std::max(peak_, c.allocated_peak);
    reserved_peak_ = std::max(reserved_peak_, c.reserved_peak);
    if (phase_ < 0) return;
    phases_[phase_].peak_bytes = std::max(phases_[phase_].peak_bytes, c.allocated_peak);
    phases_[phase_].reserved_peak_bytes =
        std::max(phases_[phase_].reserved_peak_bytes, c.reserved_peak);
  }

  const c10::DeviceIndex index_;
  mutable std::mutex mu_;
  int64_t peak_ = 0;           // allocated bytes, most since reset_peak() up to the last fold
  int64_t reserved_peak_ = 0;  // reserved bytes, likewise
  int phase_ = -1;
  std::vector<PhaseMeasure> phases_;
  std::unordered_map<std::string, int> phase_index_;
};

}  // namespace

std::unique_ptr<MemoryMeter> make_cuda_meter(c10::DeviceIndex index) {
  const c10::DeviceIndex count = c10::cuda::device_count();
  if (count == 0) {
    throw std::invalid_argument("--device cuda: no CUDA device is visible to this process");
  }
  if (index < 0 || index >= count) {
    throw std::invalid_argument("--device cuda:" + std::to_string(index) + ": only " +
                                std::to_string(count) + " CUDA devices are visible");
  }
  // The caching allocator sets up its per-device state in LibTorch's lazy CUDA start; before it,
  // setMemoryFraction and getDeviceStats fail ("Allocator not initialized"). Asking for the
  // device's generator runs that start (in 1.13 and 2.x alike) without allocating.
  (void)at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, index));
  return std::make_unique<CudaMeter>(index);
}

#else

std::unique_ptr<MemoryMeter> make_cuda_meter(c10::DeviceIndex /*index*/) {
  throw std::invalid_argument(
      "--device cuda: this executor runs on the CPU (its LibTorch has no CUDA)");
}

#endif

}  // namespace loraplan::executor
