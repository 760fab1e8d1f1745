#pragma once
// Offloaded frozen weights: kept in host memory outside the tracked device pool, and copied into
// it (staged) for each use. On the CPU, host memory is memory the tracking allocator does not
// count: buffers from malloc wrapped with at::from_blob. With a CUDA device it is pinned
// (page-locked) CPU memory, from which the staging copies run asynchronously on the current
// stream, ahead of the kernels that read them.

#include "quant.h"

namespace loraplan::executor {

// A copy of every buffer of q in host memory, for staging to `device` (not counted as device
// memory on either).
QuantizedWeight to_host(const QuantizedWeight& q, c10::Device device);

// A copy of every buffer of q in `device` memory (counted): the staged weight.
QuantizedWeight to_device(const QuantizedWeight& q, c10::Device device);

}  // namespace loraplan::executor
