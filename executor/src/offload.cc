#include "offload.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace loraplan::executor {
namespace {

// CPU: malloc'd memory outside the tracking allocator.
at::Tensor malloc_copy(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const size_t bytes = static_cast<size_t>(c.numel()) * c.element_size();
  void* p = std::malloc(std::max<size_t>(bytes, 1));
  TORCH_CHECK(p, "out of host memory: ", bytes, " bytes for an offloaded weight");
  std::memcpy(p, c.data_ptr(), bytes);
  return at::from_blob(
      p, c.sizes(), [](void* q) { std::free(q); }, c.options());
}

// GPU: pinned CPU memory (LibTorch's host allocator, not the device's caching allocator), so
// that the copies to the device can be asynchronous.
at::Tensor pinned_copy(const at::Tensor& t) {
  at::Tensor p = at::empty(t.sizes(), t.options().device(c10::kCPU).pinned_memory(true));
  p.copy_(t);
  return p;
}

}  // namespace

QuantizedWeight to_host(const QuantizedWeight& q, c10::Device device) {
  return device.is_cpu() ? q.map(malloc_copy) : q.map(pinned_copy);
}

QuantizedWeight to_device(const QuantizedWeight& q, c10::Device device) {
  if (device.is_cpu()) return q.map([](const at::Tensor& t) { return t.clone(); });
  return q.map([&](const at::Tensor& t) { return t.to(device, /*non_blocking=*/true); });
}

}  // namespace loraplan::executor
