#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

namespace loraplan::planner {

// A model of PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp, default
// configuration, one stream), replayed over the simulator's alloc/free events. It answers what
// memory_allocated() and memory_reserved() would read, and whether a cudaMalloc would fail.
// Rules (shared/reference formats.md section 4):
//   - sizes round up to a multiple of 512 (minimum 512); 0 bytes allocates nothing;
//   - rounded <= 1 MiB: small pool, 2 MiB segments; else large pool: < 10 MiB -> 20 MiB
//     segment, else the size rounded up to a multiple of 2 MiB;
//   - best fit among cached free blocks of the pool (smallest size, then lowest address);
//   - split when remaining >= 512 (small pool) or remaining > 1 MiB (large pool); otherwise
//     the whole block is handed out (and counted as allocated);
//   - freed blocks merge with free neighbours in the same segment; segments stay reserved;
//   - when a new segment would exceed the capacity, every fully free segment is released
//     (as on the allocator's OOM retry path) and the request retried; then it fails.
struct CudaAllocatorStats {
  int64_t allocated_bytes = 0;  // sum of handed-out block sizes (rounded), now
  int64_t allocated_peak = 0;
  int64_t reserved_bytes = 0;  // sum of segment sizes, now
  int64_t reserved_peak = 0;
  int64_t requested_bytes = 0;    // sum of the unrounded request sizes, now
  int64_t segments = 0;           // segments now
  int64_t num_alloc_retries = 0;  // times cached segments were released to satisfy a request
  int64_t num_ooms = 0;           // requests that failed
};

class CudaAllocatorModel {
 public:
  // capacity_bytes: device memory the allocator may reserve (total - context - outside use);
  // 0 = unlimited.
  explicit CudaAllocatorModel(int64_t capacity_bytes = 0);
  ~CudaAllocatorModel();
  // The model's working storage is recycled per thread: a model built after another one on the
  // same thread was destroyed reuses its buffers instead of allocating them again.
  CudaAllocatorModel(const CudaAllocatorModel&) = delete;
  CudaAllocatorModel& operator=(const CudaAllocatorModel&) = delete;

  // Allocates `bytes` for buffer `id` (ids are the caller's, unique among live buffers).
  // Returns false on out-of-memory (stats.num_ooms counts it; nothing is allocated).
  bool malloc(int64_t id, int64_t bytes);
  // Frees buffer `id`; freeing an unknown id is a logic error (throws std::logic_error).
  void free(int64_t id);
  // torch.cuda.reset_peak_memory_stats(): peaks become the current values.
  void reset_peaks();
  // torch.cuda.empty_cache(): releases every fully free segment.
  void empty_cache();
  // Optional capacity hint: the caller's ids will mostly lie in [0, ids), so the id table is
  // sized once instead of growing. Changes no result.
  void reserve(int64_t ids);

  const CudaAllocatorStats& stats() const { return stats_; }

  static int64_t round_size(int64_t bytes);         // 512-multiple, minimum 512
  static int64_t allocation_size(int64_t rounded);  // segment size for a new cudaMalloc

 private:
  struct State;
  std::unique_ptr<State> state_;
  CudaAllocatorStats stats_;
};

}  // namespace loraplan::planner
