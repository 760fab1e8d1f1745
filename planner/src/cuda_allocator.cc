#include "loraplan/planner/cuda_allocator.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

namespace loraplan::planner {
namespace {

// c10/cuda/CUDACachingAllocator.cpp constants (formats.md 4.1), in bytes.
constexpr int64_t kMinBlockSize = 512;        // every size is a multiple of this
constexpr int64_t kSmallSize = 1048576;       // rounded size <= this -> small pool
constexpr int64_t kSmallBuffer = 2097152;     // small-pool segment size
constexpr int64_t kMinLargeAlloc = 10485760;  // large requests below this get kLargeBuffer
constexpr int64_t kLargeBuffer = 20971520;    // segment size for 1-10 MiB requests
constexpr int64_t kRoundLarge = 2097152;      // larger segments round up to this

constexpr int32_t kNoBlock = -1;

int64_t round_up(int64_t bytes, int64_t multiple) {
  return (bytes + multiple - 1) / multiple * multiple;
}

}  // namespace

// Blocks live in one vector and refer to each other by index, so a replay of thousands of
// events reuses the same storage instead of allocating a node per block. The free-block sets
// and the live-buffer map recycle their nodes (extract/insert) for the same reason.
struct CudaAllocatorModel::State {
  enum class Pool : uint8_t { kSmall, kLarge };

  struct Block {
    int64_t address = 0;      // bytes; segment base + offset, unique among live segments
    int64_t size = 0;         // bytes, a multiple of kMinBlockSize
    int64_t requested = 0;    // bytes the caller asked for while allocated; 0 when free
    int32_t prev = kNoBlock;  // neighbour at the next lower address in the same segment
    int32_t next = kNoBlock;  // neighbour at the next higher address in the same segment
    Pool pool = Pool::kLarge;
    bool allocated = false;
  };

  // Best-fit order of the real allocator with one stream: size, then address.
  struct FreeKey {
    int64_t size;     // bytes
    int64_t address;  // bytes
    int32_t block;    // index into blocks_; not part of the order
  };
  struct FreeKeyLess {
    bool operator()(const FreeKey& a, const FreeKey& b) const {
      return a.size != b.size ? a.size < b.size : a.address < b.address;
    }
  };
  using FreeSet = std::set<FreeKey, FreeKeyLess>;
  using LiveMap = std::unordered_map<int64_t, int32_t>;  // buffer id -> block (kNoBlock: 0 B)

  explicit State(int64_t capacity) : capacity_(capacity) {}

  static Pool pool_of(int64_t rounded) {
    return rounded <= kSmallSize ? Pool::kSmall : Pool::kLarge;
  }
  FreeSet& free_set(Pool pool) { return pool == Pool::kSmall ? small_free_ : large_free_; }

  int32_t new_block() {
    if (!spare_blocks_.empty()) {
      int32_t b = spare_blocks_.back();
      spare_blocks_.pop_back();
      blocks_[b] = Block{};
      return b;
    }
    blocks_.emplace_back();
    return static_cast<int32_t>(blocks_.size() - 1);
  }

  void insert_free(int32_t b) {
    const Block& blk = blocks_[b];
    FreeKey key{blk.size, blk.address, b};
    if (spare_free_nodes_.empty()) {
      free_set(blk.pool).insert(key);
      return;
    }
    FreeSet::node_type node = std::move(spare_free_nodes_.back());
    spare_free_nodes_.pop_back();
    node.value() = key;
    free_set(blk.pool).insert(std::move(node));
  }

  void erase_free(FreeSet& set, FreeSet::const_iterator it) {
    spare_free_nodes_.push_back(set.extract(it));
  }

  void erase_free(int32_t b) {
    const Block& blk = blocks_[b];
    FreeSet& set = free_set(blk.pool);
    erase_free(set, set.find(FreeKey{blk.size, blk.address, b}));
  }

  // Smallest cached free block of the pool that holds `rounded` bytes, taken out of the
  // free set; kNoBlock when none fits.
  int32_t take_best_fit(Pool pool, int64_t rounded) {
    FreeSet& set = free_set(pool);
    auto it = set.lower_bound(FreeKey{rounded, 0, kNoBlock});
    if (it == set.end()) return kNoBlock;
    int32_t b = it->block;
    erase_free(set, it);
    return b;
  }

  // A fresh segment as one free-standing block, or kNoBlock when the capacity refuses it even
  // after releasing every fully free segment (the allocator's release_cached_blocks retry).
  int32_t new_segment(Pool pool, int64_t size, CudaAllocatorStats& stats) {
    if (exceeds_capacity(size, stats)) {
      release_free_segments(stats);
      stats.num_alloc_retries += 1;
      if (exceeds_capacity(size, stats)) return kNoBlock;
    }
    int32_t b = new_block();
    Block& blk = blocks_[b];
    blk.address = next_address_;
    blk.size = size;
    blk.pool = pool;
    next_address_ += size;
    stats.reserved_bytes += size;
    stats.reserved_peak = std::max(stats.reserved_peak, stats.reserved_bytes);
    stats.segments += 1;
    return b;
  }

  bool exceeds_capacity(int64_t size, const CudaAllocatorStats& stats) const {
    return capacity_ > 0 && stats.reserved_bytes + size > capacity_;
  }

  // should_split with the default config (max_split_size unlimited, no expandable segments).
  static bool should_split(Pool pool, int64_t remaining) {
    return pool == Pool::kSmall ? remaining >= kMinBlockSize : remaining > kSmallSize;
  }

  // Hands block `b` out for a `requested`-byte request; a large enough remainder is split off
  // at the higher address and returns to the free set, as alloc_found_block does.
  void hand_out(int32_t b, int64_t rounded, int64_t requested, CudaAllocatorStats& stats) {
    int64_t remaining = blocks_[b].size - rounded;
    if (should_split(blocks_[b].pool, remaining)) {
      int32_t r = new_block();  // may reallocate blocks_: index, do not hold references
      blocks_[r].address = blocks_[b].address + rounded;
      blocks_[r].size = remaining;
      blocks_[r].pool = blocks_[b].pool;
      blocks_[r].prev = b;
      blocks_[r].next = blocks_[b].next;
      if (blocks_[b].next != kNoBlock) blocks_[blocks_[b].next].prev = r;
      blocks_[b].next = r;
      blocks_[b].size = rounded;
      insert_free(r);
    }
    Block& blk = blocks_[b];
    blk.allocated = true;
    blk.requested = requested;
    stats.allocated_bytes += blk.size;
    stats.allocated_peak = std::max(stats.allocated_peak, stats.allocated_bytes);
    stats.requested_bytes += requested;
  }

  // Folds free neighbour `src` into `dst` (dst directly below src in the same segment).
  void merge_into(int32_t dst, int32_t src) {
    blocks_[dst].size += blocks_[src].size;
    blocks_[dst].next = blocks_[src].next;
    if (blocks_[src].next != kNoBlock) blocks_[blocks_[src].next].prev = dst;
    spare_blocks_.push_back(src);
  }

  void give_back(int32_t b, CudaAllocatorStats& stats) {
    stats.allocated_bytes -= blocks_[b].size;
    stats.requested_bytes -= blocks_[b].requested;
    blocks_[b].allocated = false;
    blocks_[b].requested = 0;
    int32_t next = blocks_[b].next;
    if (next != kNoBlock && !blocks_[next].allocated) {
      erase_free(next);
      merge_into(b, next);
    }
    int32_t prev = blocks_[b].prev;
    if (prev != kNoBlock && !blocks_[prev].allocated) {
      erase_free(prev);
      merge_into(prev, b);
      b = prev;
    }
    insert_free(b);
  }

  // release_cached_blocks: a free block with no neighbours is a whole, unused segment.
  void release_free_segments(CudaAllocatorStats& stats) {
    for (FreeSet* set : {&small_free_, &large_free_}) {
      for (auto it = set->begin(); it != set->end();) {
        int32_t b = it->block;
        auto next = std::next(it);
        if (blocks_[b].prev == kNoBlock && blocks_[b].next == kNoBlock) {
          stats.reserved_bytes -= blocks_[b].size;
          stats.segments -= 1;
          erase_free(*set, it);
          spare_blocks_.push_back(b);
        }
        it = next;
      }
    }
  }

  void add_live(int64_t id, int32_t b) {
    if (spare_live_nodes_.empty()) {
      live_.emplace(id, b);
      return;
    }
    LiveMap::node_type node = std::move(spare_live_nodes_.back());
    spare_live_nodes_.pop_back();
    node.key() = id;
    node.mapped() = b;
    live_.insert(std::move(node));
  }

  int64_t capacity_;          // bytes the segments may add up to; 0 = unlimited
  int64_t next_address_ = 0;  // bytes; base of the next segment, never reused
  std::vector<Block> blocks_;
  std::vector<int32_t> spare_blocks_;  // indices into blocks_ free for reuse
  FreeSet small_free_;
  FreeSet large_free_;
  std::vector<FreeSet::node_type> spare_free_nodes_;
  LiveMap live_;
  std::vector<LiveMap::node_type> spare_live_nodes_;
};

CudaAllocatorModel::CudaAllocatorModel(int64_t capacity_bytes)
    : state_(std::make_unique<State>(capacity_bytes)) {
  if (capacity_bytes < 0) {
    throw std::invalid_argument("creating the CUDA allocator model: capacity " +
                                std::to_string(capacity_bytes) + " bytes is negative");
  }
}

CudaAllocatorModel::~CudaAllocatorModel() = default;

bool CudaAllocatorModel::malloc(int64_t id, int64_t bytes) {
  if (bytes < 0) {
    throw std::invalid_argument("allocating buffer " + std::to_string(id) + ": size " +
                                std::to_string(bytes) + " bytes is negative");
  }
  State& s = *state_;
  if (s.live_.contains(id)) {
    throw std::logic_error("allocating buffer " + std::to_string(id) +
                           ": the id is already live (allocated and not freed)");
  }
  // A 0-byte tensor gets a null pointer and no block, but the caller will still free it.
  if (bytes == 0) {
    s.add_live(id, kNoBlock);
    return true;
  }
  int64_t rounded = round_size(bytes);
  State::Pool pool = State::pool_of(rounded);
  int32_t b = s.take_best_fit(pool, rounded);
  if (b == kNoBlock) b = s.new_segment(pool, allocation_size(rounded), stats_);
  if (b == kNoBlock) {
    stats_.num_ooms += 1;
    return false;
  }
  s.hand_out(b, rounded, bytes, stats_);
  s.add_live(id, b);
  return true;
}

void CudaAllocatorModel::free(int64_t id) {
  State& s = *state_;
  auto it = s.live_.find(id);
  if (it == s.live_.end()) {
    throw std::logic_error("freeing buffer " + std::to_string(id) +
                           ": the id is not live (never allocated, already freed, or its "
                           "allocation failed)");
  }
  int32_t b = it->second;
  s.spare_live_nodes_.push_back(s.live_.extract(it));
  if (b != kNoBlock) s.give_back(b, stats_);
}

void CudaAllocatorModel::reset_peaks() {
  stats_.allocated_peak = stats_.allocated_bytes;
  stats_.reserved_peak = stats_.reserved_bytes;
}

void CudaAllocatorModel::empty_cache() { state_->release_free_segments(stats_); }

int64_t CudaAllocatorModel::round_size(int64_t bytes) {
  if (bytes < kMinBlockSize) return kMinBlockSize;
  return round_up(bytes, kMinBlockSize);
}

int64_t CudaAllocatorModel::allocation_size(int64_t rounded) {
  if (rounded <= kSmallSize) return kSmallBuffer;
  if (rounded < kMinLargeAlloc) return kLargeBuffer;
  return round_up(rounded, kRoundLarge);
}

}  // namespace loraplan::planner
