#include "offload.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace loraplan::executor {
namespace {

// The same weight with every defined buffer passed through f.
template <typename F>
QuantizedWeight map_buffers(const QuantizedWeight& q, F f) {
  QuantizedWeight out = q;
  for (at::Tensor* t : {&out.data, &out.code, &out.absmax, &out.absmax2, &out.code2, &out.offset, &out.scb}) {
    if (t->defined()) *t = f(*t);
  }
  return out;
}

at::Tensor host_copy(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const size_t bytes = static_cast<size_t>(c.numel()) * c.element_size();
  void* p = std::malloc(std::max<size_t>(bytes, 1));
  TORCH_CHECK(p, "out of host memory: ", bytes, " bytes for an offloaded weight");
  std::memcpy(p, c.data_ptr(), bytes);
  return at::from_blob(p, c.sizes(), [](void* q) { std::free(q); }, c.options());
}

}  // namespace

QuantizedWeight to_host(const QuantizedWeight& q) { return map_buffers(q, host_copy); }

QuantizedWeight to_device(const QuantizedWeight& q) {
  return map_buffers(q, [](const at::Tensor& t) { return t.clone(); });
}

}  // namespace loraplan::executor
