#include "memory_meter.h"

#include <algorithm>
#include <stdexcept>

#include "tracking_allocator.h"

namespace loraplan::executor {
namespace {

// The tracking allocator behind the meter interface. It frees at once, so reserved = allocated.
class CpuMeter final : public MemoryMeter {
 public:
  CpuMeter() : mem_(TrackingAllocator::install()) {}

  void set_budget(int64_t bytes) override { mem_.set_budget(bytes); }
  void set_phase(const std::string& name) override { mem_.set_phase(name); }
  void reset_peak() override { mem_.reset_peak(); }
  void clear_phases() override { mem_.clear_phases(); }
  int64_t live_bytes() const override { return mem_.live_bytes(); }
  int64_t peak_bytes() const override { return mem_.peak_bytes(); }
  int64_t reserved_peak_bytes() const override { return mem_.peak_bytes(); }
  std::vector<PhaseMeasure> phases() const override {
    std::vector<PhaseMeasure> out = mem_.phases();
    for (PhaseMeasure& p : out) p.reserved_peak_bytes = p.peak_bytes;
    return out;
  }
  bool start_timeline() override {
    mem_.record(std::make_unique<TimelineRecorder>());
    return true;
  }
  MeasuredTimeline stop_timeline() override {
    std::unique_ptr<TimelineRecorder> r = mem_.record(nullptr);
    if (!r) return {};
    std::vector<std::string> names;
    for (const PhaseMeasure& p : mem_.phases()) names.push_back(p.name);
    return r->finish(std::move(names));
  }

 private:
  TrackingAllocator& mem_;
};

}  // namespace

TimelineRecorder::TimelineRecorder(size_t max_points)
    : max_points_(std::max<size_t>(max_points, 8)) {}

void TimelineRecorder::add(int64_t live, int32_t phase) {
  const MeasuredPoint p{events_++, live, phase};
  if (in_bucket_ == 0 || live < lo_.live) lo_ = p;
  if (in_bucket_ == 0 || live > hi_.live) hi_ = p;
  if (++in_bucket_ == per_) close_bucket();
}

void TimelineRecorder::push_bucket() {
  const int64_t bucket = (events_ - 1) / per_;
  const MeasuredPoint& first = lo_.event <= hi_.event ? lo_ : hi_;
  const MeasuredPoint& second = lo_.event <= hi_.event ? hi_ : lo_;
  points_.push_back(first);
  bucket_of_.push_back(bucket);
  if (second.event != first.event) {
    points_.push_back(second);
    bucket_of_.push_back(bucket);
  }
  in_bucket_ = 0;
}

void TimelineRecorder::close_bucket() {
  push_bucket();
  // Nearly full, at the end of a pair of buckets (so the doubled buckets stay aligned to the
  // events): pairs of buckets become one, keeping the low and the high of the pair.
  if (points_.size() + 4 <= max_points_ || events_ % (2 * per_) != 0) return;
  per_ *= 2;
  std::vector<MeasuredPoint> merged;
  std::vector<int64_t> merged_bucket;
  for (size_t i = 0; i < points_.size();) {
    const int64_t b = bucket_of_[i] / 2;
    MeasuredPoint lo = points_[i], hi = points_[i];
    size_t j = i;
    for (; j < points_.size() && bucket_of_[j] / 2 == b; ++j) {
      if (points_[j].live < lo.live) lo = points_[j];
      if (points_[j].live > hi.live) hi = points_[j];
    }
    merged.push_back(lo.event <= hi.event ? lo : hi);
    merged_bucket.push_back(b);
    if (lo.event != hi.event) {
      merged.push_back(lo.event <= hi.event ? hi : lo);
      merged_bucket.push_back(b);
    }
    i = j;
  }
  points_ = std::move(merged);
  bucket_of_ = std::move(merged_bucket);
}

MeasuredTimeline TimelineRecorder::finish(std::vector<std::string> phases) {
  if (in_bucket_ > 0) push_bucket();  // the last bucket, partly filled
  MeasuredTimeline t;
  t.events = events_;
  t.bucket_events = per_;
  t.phases = std::move(phases);
  t.points = std::move(points_);
  return t;
}

std::unique_ptr<MemoryMeter> make_memory_meter(c10::Device device) {
  if (device.is_cpu()) return std::make_unique<CpuMeter>();
  if (device.is_cuda()) return make_cuda_meter(device.has_index() ? device.index() : 0);
  throw std::invalid_argument("measuring memory: no meter for device " + device.str());
}

}  // namespace loraplan::executor
