#include "memory_meter.h"

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

 private:
  TrackingAllocator& mem_;
};

}  // namespace

std::unique_ptr<MemoryMeter> make_memory_meter(c10::Device device) {
  if (device.is_cpu()) return std::make_unique<CpuMeter>();
  if (device.is_cuda()) return make_cuda_meter(device.has_index() ? device.index() : 0);
  throw std::invalid_argument("measuring memory: no meter for device " + device.str());
}

}  // namespace loraplan::executor
