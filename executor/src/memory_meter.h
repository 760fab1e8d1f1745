#pragma once
// What the trainer measures memory through, one interface for both devices:
//   CPU:  the tracking allocator (tracking_allocator.h): every tensor byte, exact; nothing is
//         cached, so reserved bytes equal allocated bytes.
//   CUDA: the caching allocator's own counters (cuda_meter.cc): allocated bytes (live tensor
//         blocks, rounded as the allocator rounds them) and reserved bytes (segments obtained with
//         cudaMalloc, free or not), each current and peak.
// Vocabulary: live = allocated now; peak = most allocated since the last reset_peak(); a phase's
// peak = most allocated while that phase was current (max over its occurrences).

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loraplan/executor/backend.h"

namespace loraplan::executor {

// Keeps a step's live bytes after each event within `max_points`: buckets of `per_` events, each
// keeping its low and high point in event order; when full, adjacent buckets merge (the low of
// their lows, the high of their highs) and the buckets double.
class TimelineRecorder {
 public:
  explicit TimelineRecorder(size_t max_points = 1 << 16);
  void add(int64_t live, int32_t phase);
  MeasuredTimeline finish(std::vector<std::string> phases);

 private:
  void push_bucket();
  void close_bucket();  // pushes the bucket and merges buckets when full
  size_t max_points_;
  int64_t per_ = 1, events_ = 0, in_bucket_ = 0;
  MeasuredPoint lo_, hi_;
  std::vector<MeasuredPoint> points_;  // two per closed bucket (one when lo is hi)
  std::vector<int64_t> bucket_of_;     // each point's bucket, to merge buckets
};

class MemoryMeter {
 public:
  virtual ~MemoryMeter() = default;

  // An allocation that would take the device past `bytes` throws c10::OutOfMemoryError.
  // 0 = no limit. CPU: bounds allocated bytes; CUDA: bounds reserved bytes (what the GPU gives).
  virtual void set_budget(int64_t bytes) = 0;
  // Later allocations count toward this phase (created on first use, in order). Called from
  // autograd hooks too, on the autograd engine's thread.
  virtual void set_phase(const std::string& name) = 0;
  virtual void reset_peak() = 0;  // peak := live (allocated and reserved)
  virtual void clear_phases() = 0;

  virtual int64_t live_bytes() const = 0;                // allocated now
  virtual int64_t peak_bytes() const = 0;                // allocated, since reset_peak()
  virtual int64_t reserved_peak_bytes() const = 0;       // reserved, since reset_peak()
  virtual std::vector<PhaseMeasure> phases() const = 0;  // in order of first occurrence
  // Records every allocation and free until stop_timeline(); false when this meter cannot (CUDA).
  virtual bool start_timeline() { return false; }
  virtual MeasuredTimeline stop_timeline() { return {}; }
};

// The meter for the device the model trains on. Throws std::invalid_argument for a device this
// build cannot measure (CUDA in an executor built against a LibTorch without CUDA) or that is not
// there (no visible GPU).
std::unique_ptr<MemoryMeter> make_memory_meter(c10::Device device);

// The CUDA meter for GPU `index`; in a build without CUDA, a stub that throws the refusal.
std::unique_ptr<MemoryMeter> make_cuda_meter(c10::DeviceIndex index);

}  // namespace loraplan::executor
