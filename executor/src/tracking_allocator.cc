#include "tracking_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <cstdlib>

namespace loraplan::executor {

TrackingAllocator& TrackingAllocator::install() {
  static TrackingAllocator* instance = [] {
    auto* a = new TrackingAllocator();  // lives as long as LibTorch may free through it
    if (const char* path = std::getenv("LORAPLAN_ALLOC_TRACE"); path && *path)
      a->trace_ = std::fopen(path, "w");
    c10::SetCPUAllocator(a, /*priority=*/100);
    return a;
  }();
  return *instance;
}

c10::DataPtr TrackingAllocator::allocate(size_t bytes) LORAPLAN_ALLOCATE_CONST {
  std::lock_guard<std::mutex> lock(mu_);
  const auto n = static_cast<int64_t>(bytes);
  TORCH_CHECK_WITH(OutOfMemoryError, budget_ == 0 || live_ + n <= budget_,
                   "out of memory: tried to allocate ", n, " bytes with ", live_, " of ", budget_,
                   " bytes in use (phase ",
                   phase_ >= 0 ? phases_[phase_].name : std::string("none"), ")");
  void* ptr = nullptr;
  // 64-byte alignment, as LibTorch's default CPU allocator uses.
  if (bytes > 0 && posix_memalign(&ptr, 64, bytes) != 0) ptr = nullptr;
  TORCH_CHECK_WITH(OutOfMemoryError, bytes == 0 || ptr, "out of host memory: ", n, " bytes");
  if (ptr) {
    sizes_[ptr] = bytes;
    live_ += n;
    peak_ = std::max(peak_, live_);
    if (phase_ >= 0) phases_[phase_].peak_bytes = std::max(phases_[phase_].peak_bytes, live_);
    if (recorder_) recorder_->add(live_, phase_);
    if (trace_) {
      std::fprintf(trace_, "+ %lld %lld %s\n", static_cast<long long>(n),
                   static_cast<long long>(live_),
                   phase_ >= 0 ? phases_[phase_].name.c_str() : "none");
    }
  }
  // The context is the pointer itself: oneDNN allocates through raw_allocate and checks it.
  return {ptr, ptr, &TrackingAllocator::release, c10::Device(c10::DeviceType::CPU)};
}

c10::DeleterFnPtr TrackingAllocator::raw_deleter() const { return &TrackingAllocator::release; }

void TrackingAllocator::release(void* ptr) {
  if (!ptr) return;
  TrackingAllocator& self = install();
  {
    std::lock_guard<std::mutex> lock(self.mu_);
    auto it = self.sizes_.find(ptr);
    if (it != self.sizes_.end()) {
      self.live_ -= static_cast<int64_t>(it->second);
      if (self.recorder_) self.recorder_->add(self.live_, self.phase_);
      if (self.trace_) {
        std::fprintf(self.trace_, "- %lld %lld %s\n", static_cast<long long>(it->second),
                     static_cast<long long>(self.live_),
                     self.phase_ >= 0 ? self.phases_[self.phase_].name.c_str() : "none");
      }
      self.sizes_.erase(it);
    }
  }
  std::free(ptr);
}

void TrackingAllocator::set_budget(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  budget_ = bytes;
}

void TrackingAllocator::set_phase(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = phase_index_.try_emplace(name, static_cast<int>(phases_.size()));
  if (added) phases_.push_back({name, 0});
  phase_ = it->second;
  phases_[phase_].peak_bytes = std::max(phases_[phase_].peak_bytes, live_);
}

std::unique_ptr<TimelineRecorder> TrackingAllocator::record(std::unique_ptr<TimelineRecorder> r) {
  std::lock_guard<std::mutex> lock(mu_);
  std::swap(r, recorder_);
  return r;
}

void TrackingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_ = live_;
}

void TrackingAllocator::clear_phases() {
  std::lock_guard<std::mutex> lock(mu_);
  phases_.clear();
  phase_index_.clear();
  phase_ = -1;
}

int64_t TrackingAllocator::live_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_;
}

int64_t TrackingAllocator::peak_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}

std::vector<PhaseMeasure> TrackingAllocator::phases() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phases_;
}

}  // namespace loraplan::executor
