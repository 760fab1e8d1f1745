#pragma once
// Offloaded frozen weights: kept in host memory outside the tracked device pool, and copied into
// it (staged) for each use. On the CPU, host memory is memory the tracking allocator does not
// count: buffers from malloc wrapped with at::from_blob.

#include "quant.h"

namespace loraplan::executor {

// A copy of every buffer of q in host memory (not counted by the tracking allocator).
QuantizedWeight to_host(const QuantizedWeight& q);

// A copy of every buffer of q in device memory (counted): the staged weight.
QuantizedWeight to_device(const QuantizedWeight& q);

}  // namespace loraplan::executor
