#pragma once
// The CPU memory counter: a c10 allocator that counts every tensor byte LibTorch allocates on the
// CPU, keeps the peak overall and per phase, and can enforce a budget (an allocation past it
// throws c10::OutOfMemoryError, as a GPU would). BLAS workspaces are not tensor allocations and
// are not seen.
//
// LORAPLAN_ALLOC_TRACE=path writes every allocation and release to `path`, one line each:
// "+ bytes live phase" or "- bytes live phase" (live: tensor bytes after the event). It is the
// measured counterpart of the simulator's event trace.

#include <c10/core/Allocator.h>
#include <torch/version.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "loraplan/executor/backend.h"
#include "memory_meter.h"

// LibTorch 2.3 made c10::Allocator::allocate non-const and added the pure virtual copy_data.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define LORAPLAN_ALLOCATE_CONST
#define LORAPLAN_ALLOCATOR_COPY_DATA 1
#else
#define LORAPLAN_ALLOCATE_CONST const
#define LORAPLAN_ALLOCATOR_COPY_DATA 0
#endif

namespace loraplan::executor {

class TrackingAllocator final : public c10::Allocator {
 public:
  // The process-wide instance, installed as LibTorch's CPU allocator on first use.
  static TrackingAllocator& install();

  c10::DataPtr allocate(size_t bytes) LORAPLAN_ALLOCATE_CONST override;
  c10::DeleterFnPtr raw_deleter() const override;
#if LORAPLAN_ALLOCATOR_COPY_DATA
  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }
#endif

  void set_budget(int64_t bytes);           // 0 = none
  void set_phase(const std::string& name);  // later allocations count toward this phase
  void reset_peak();                        // peak := live
  void clear_phases();
  // Every later allocation and free goes to `r` as well (null: none); returns the one before.
  std::unique_ptr<TimelineRecorder> record(std::unique_ptr<TimelineRecorder> r);

  int64_t live_bytes() const;
  int64_t peak_bytes() const;
  std::vector<PhaseMeasure> phases() const;  // in order of first occurrence

 private:
  TrackingAllocator() = default;
  static void release(void* ptr);

  mutable std::mutex mu_;
  mutable std::unordered_map<void*, size_t> sizes_;  // pointer -> bytes
  mutable int64_t live_ = 0;
  mutable int64_t peak_ = 0;
  int64_t budget_ = 0;
  int phase_ = -1;
  mutable std::vector<PhaseMeasure> phases_;
  std::FILE* trace_ = nullptr;  // LORAPLAN_ALLOC_TRACE, or null
  mutable std::unique_ptr<TimelineRecorder> recorder_;
  std::unordered_map<std::string, int> phase_index_;
};

}  // namespace loraplan::executor
