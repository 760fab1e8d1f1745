#include "loraplan/planner/cuda_allocator.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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
// events reuses the same storage instead of allocating a node per block. The free blocks of a
// pool are indexed by exact size (FreeIndex) and live buffers by id in a table, so no event
// allocates once the arrays have grown; and a destroyed model hands its State to the next
// model made on the same thread, so the next replay starts with grown arrays and known sizes.
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

  // A free block. Best-fit order of the real allocator with one stream: size, then address.
  struct FreeKey {
    int64_t size;     // bytes
    int64_t address;  // bytes
    int32_t block;    // index into blocks_; not part of the order
  };

  // The free blocks of one pool in best-fit order (size, then address), grouped by exact size.
  //
  // A training step allocates and frees the same sizes layer after layer, and a plan search
  // replays step after step of the same model. So a size class, once made, stays, empty or not
  // (across replays too: clear() only empties the classes). A class is found by hashing its
  // size; a free or a split touches only its class's bucket; a best-fit lookup starts at the
  // request's own class (made for it the first time) and takes the next class with blocks from
  // a bitmap kept in size order. Only a new size bisects the sorted sizes and shifts the arrays;
  // empty classes are dropped in bulk when they pile up. Nothing here allocates once the arrays
  // have grown to a step's needs.
  class FreeIndex {
   public:
    struct Entry {
      int64_t address;  // bytes
      int32_t block;    // index into blocks_
    };
    using Bucket = std::vector<Entry>;  // by address, highest first: the lowest is at the back
    struct SizeClass {
      int64_t size;   // bytes
      uint32_t rank;  // position in ranked_sizes_
      Bucket blocks;
    };

    FreeIndex() : table_(kMinSlots) {}

    // Empties every class.
    void clear() {
      for (SizeClass& c : classes_) c.blocks.clear();
      std::fill(nonempty_.begin(), nonempty_.end(), 0);
      if (!consistent_) {
        // An exception (bad_alloc) cut a change to the classes short: start afresh.
        drop_classes([](const SizeClass&) { return true; });
      }
    }

    void insert(const FreeKey& k) {
      SizeClass& c = classes_[class_of(k.size)];
      if (c.blocks.empty()) {
        set_nonempty(c.rank);
        c.blocks.push_back(Entry{k.address, k.block});
      } else if (k.address < c.blocks.back().address) {
        c.blocks.push_back(Entry{k.address, k.block});
      } else {
        insert_above_lowest(c.blocks, Entry{k.address, k.block});
      }
    }

    // The class of the best fit for `size` (the smallest size >= `size` that has blocks; its
    // lowest address is the fit), or nullptr when no block is that large.
    SizeClass* best_fit(int64_t size) {
      const size_t rank = next_nonempty(classes_[class_of(size)].rank);
      return rank == kNoRank ? nullptr : &classes_[ranked_ids_[rank]];
    }

    // Removes the lowest-address block of class `c` (one with blocks) and returns it.
    int32_t take_lowest(SizeClass& c) {
      const int32_t b = c.blocks.back().block;
      c.blocks.pop_back();
      if (c.blocks.empty()) became_empty(c);
      return b;
    }

    // Removes the block at `address` of `size`, which must be present.
    void erase(int64_t size, int64_t address) {
      const uint32_t id = find(size);
      if (id != kNoClass && !classes_[id].blocks.empty()) {
        SizeClass& c = classes_[id];
        if (c.blocks.back().address == address) {
          c.blocks.pop_back();
          if (c.blocks.empty()) became_empty(c);
          return;
        }
        if (erase_above_lowest(c.blocks, address)) return;
      }
      throw std::logic_error("CUDA allocator model: a free block is missing from its pool");
    }

    // Removes every block for which `pred(FreeKey)` holds, visiting blocks in best-fit order.
    template <typename Pred>
    void erase_if(Pred pred) {
      for (uint32_t id : ranked_ids_) {
        SizeClass& c = classes_[id];
        if (c.blocks.empty()) continue;
        // Lowest address first: walk the bucket from the back, compacting towards it.
        Bucket& blocks = c.blocks;
        size_t w = blocks.size();
        for (size_t r = blocks.size(); r-- > 0;) {
          if (!pred(FreeKey{c.size, blocks[r].address, blocks[r].block})) blocks[--w] = blocks[r];
        }
        blocks.erase(blocks.begin(), blocks.begin() + static_cast<std::ptrdiff_t>(w));
        if (blocks.empty()) became_empty(c);
      }
    }

   private:
    static constexpr uint32_t kNoClass = UINT32_MAX;
    static constexpr size_t kNoRank = SIZE_MAX;
    static constexpr size_t kMinSlots = 64;
    // Empty classes are dropped when there are more than this many and twice as many as the
    // others (sizes that never repeat would otherwise pile up).
    static constexpr size_t kMaxEmptyClasses = 1024;

    struct Slot {        // hash table entry: size -> class id
      int64_t size = 0;  // 0: unused (block sizes are at least kMinBlockSize)
      uint32_t id = kNoClass;
    };

    size_t slot_of(int64_t size) const {
      const uint64_t h = (static_cast<uint64_t>(size) >> 9) * 0x9E3779B97F4A7C15ULL;
      return static_cast<size_t>(h >> 32) & mask_;
    }

    uint32_t find(int64_t size) const {
      for (size_t i = slot_of(size);; i = (i + 1) & mask_) {
        if (table_[i].size == size) return table_[i].id;
        if (table_[i].size == 0) return kNoClass;
      }
    }

    void put(int64_t size, uint32_t id) {
      size_t i = slot_of(size);
      while (table_[i].size != 0) i = (i + 1) & mask_;
      table_[i] = Slot{size, id};
    }

    // The class of `size`, made (empty) if there is none.
    uint32_t class_of(int64_t size) {
      const uint32_t id = find(size);
      return id != kNoClass ? id : add_class(size);
    }

    [[gnu::noinline]] uint32_t add_class(int64_t size) {
      size_t nonempty_classes = 0;
      for (uint64_t w : nonempty_) nonempty_classes += static_cast<size_t>(std::popcount(w));
      const size_t empty_classes = classes_.size() - nonempty_classes;
      if (empty_classes > kMaxEmptyClasses && empty_classes > 2 * nonempty_classes) {
        drop_classes([](const SizeClass& c) { return c.blocks.empty(); });
      }
      consistent_ = false;
      const auto id = static_cast<uint32_t>(classes_.size());
      const size_t rank = lower_rank(size);
      classes_.push_back(SizeClass{size, static_cast<uint32_t>(rank), new_bucket()});
      ranked_sizes_.insert(ranked_sizes_.begin() + static_cast<std::ptrdiff_t>(rank), size);
      ranked_ids_.insert(ranked_ids_.begin() + static_cast<std::ptrdiff_t>(rank), id);
      for (size_t r = rank + 1; r < ranked_ids_.size(); ++r) {
        classes_[ranked_ids_[r]].rank = static_cast<uint32_t>(r);
      }
      insert_bit(rank);
      if (2 * classes_.size() > table_.size()) {
        rehash();
      } else {
        put(size, id);
      }
      consistent_ = true;
      return id;
    }

    // Drops the classes for which `drop(class)` holds (they must be empty); the others are
    // renumbered in rank order.
    template <typename Drop>
    void drop_classes(Drop drop) {
      consistent_ = false;
      std::vector<SizeClass> kept;
      kept.reserve(classes_.size());
      for (uint32_t id : ranked_ids_) {
        SizeClass& c = classes_[id];
        if (drop(c)) {
          recycle(c.blocks);
        } else {
          kept.push_back(std::move(c));
        }
      }
      classes_ = std::move(kept);
      ranked_sizes_.clear();
      ranked_ids_.clear();
      nonempty_.assign((classes_.size() + 63) / 64, 0);
      for (size_t id = 0; id < classes_.size(); ++id) {
        classes_[id].rank = static_cast<uint32_t>(id);
        ranked_sizes_.push_back(classes_[id].size);
        ranked_ids_.push_back(static_cast<uint32_t>(id));
        if (!classes_[id].blocks.empty()) set_nonempty(id);
      }
      rehash();
      consistent_ = true;
    }

    void rehash() {
      table_.assign(std::bit_ceil(std::max(kMinSlots, 4 * classes_.size())), Slot{});
      mask_ = table_.size() - 1;
      for (size_t id = 0; id < classes_.size(); ++id) {
        put(classes_[id].size, static_cast<uint32_t>(id));
      }
    }

    // Makes room for a clear bit at `rank`, moving the bits of higher ranks up by one.
    void insert_bit(size_t rank) {
      if (nonempty_.size() * 64 < ranked_ids_.size()) nonempty_.push_back(0);
      const size_t k = rank / 64;
      for (size_t w = nonempty_.size() - 1; w > k; --w) {
        nonempty_[w] = (nonempty_[w] << 1) | (nonempty_[w - 1] >> 63);
      }
      const uint64_t low = (uint64_t{1} << (rank % 64)) - 1;
      nonempty_[k] = (nonempty_[k] & low) | ((nonempty_[k] & ~low) << 1);
    }

    void set_nonempty(size_t rank) { nonempty_[rank / 64] |= uint64_t{1} << (rank % 64); }

    void became_empty(const SizeClass& c) {
      nonempty_[c.rank / 64] &= ~(uint64_t{1} << (c.rank % 64));
    }

    // Rank of the first class whose size is >= size (branch-free bisection).
    size_t lower_rank(int64_t size) const {
      size_t n = ranked_sizes_.size();
      if (n == 0) return 0;
      const int64_t* base = ranked_sizes_.data();
      while (n > 1) {
        const size_t half = n / 2;
        base = base[half] < size ? base + half : base;
        n -= half;
      }
      return static_cast<size_t>(base - ranked_sizes_.data()) + (*base < size ? 1 : 0);
    }

    // The first rank >= `rank` whose class has blocks; kNoRank when none.
    size_t next_nonempty(size_t rank) const {
      size_t word = rank / 64;
      uint64_t bits = nonempty_[word] & (~uint64_t{0} << (rank % 64));
      while (bits == 0) {
        if (++word == nonempty_.size()) return kNoRank;
        bits = nonempty_[word];
      }
      return word * 64 + static_cast<size_t>(std::countr_zero(bits));
    }

    // First entry of the bucket whose address is not above `address`: the block itself, or
    // where it goes.
    static Bucket::iterator address_position(Bucket& bucket, int64_t address) {
      return std::partition_point(bucket.begin(), bucket.end(),
                                  [address](const Entry& e) { return e.address > address; });
    }

    // Adds `e` to a bucket whose lowest address is below e's (rare: out of line).
    [[gnu::noinline]] static void insert_above_lowest(Bucket& bucket, const Entry& e) {
      bucket.insert(address_position(bucket, e.address), e);
    }

    // Removes the entry at `address` from a bucket whose lowest address is another's; false
    // when there is none (rare: out of line).
    [[gnu::noinline]] static bool erase_above_lowest(Bucket& bucket, int64_t address) {
      const auto it = address_position(bucket, address);
      if (it == bucket.end() || it->address != address) return false;
      bucket.erase(it);
      return true;
    }

    Bucket new_bucket() {
      if (spare_buckets_.empty()) return Bucket{};
      Bucket b = std::move(spare_buckets_.back());
      spare_buckets_.pop_back();
      return b;
    }

    void recycle(Bucket& b) {
      b.clear();
      if (b.capacity() > 0) spare_buckets_.push_back(std::move(b));
    }

    std::vector<SizeClass> classes_;     // by id
    std::vector<int64_t> ranked_sizes_;  // the classes' sizes, ascending
    std::vector<uint32_t> ranked_ids_;   // their ids, in the same order
    std::vector<uint64_t> nonempty_;     // bit r: the class of rank r has blocks
    std::vector<Slot> table_;      // open addressing: a power of two of slots, at most half used
    size_t mask_ = kMinSlots - 1;  // table_.size() - 1
    std::vector<Bucket> spare_buckets_;  // emptied buckets kept for their capacity
    bool consistent_ = true;             // false while the classes are being changed
  };

  // Buffer id -> block while the buffer is live. Ids are usually dense from 0 (the simulator's
  // buffer indices), so they index a table; any other id goes to a hash map.
  class LiveTable {
   public:
    static constexpr int32_t kNotLive = -2;  // kNoBlock marks a live 0-byte buffer

    void clear() {
      std::fill(dense_.begin(), dense_.begin() + static_cast<std::ptrdiff_t>(used_), kNotLive);
      used_ = 0;
      sparse_.clear();
    }

    void reserve(int64_t ids) {
      if (ids > static_cast<int64_t>(dense_.size()) && ids <= kMaxReserve) {
        grow(static_cast<size_t>(ids));
      }
    }

    // The block of live buffer `id`, or kNotLive.
    int32_t find(int64_t id) const {
      if (static_cast<uint64_t>(id) < dense_.size()) return dense_[static_cast<size_t>(id)];
      if (sparse_.empty()) return kNotLive;
      const auto it = sparse_.find(id);
      return it == sparse_.end() ? kNotLive : it->second;
    }

    // Marks `id` (not live) live with block `b`.
    [[gnu::always_inline]] void add(int64_t id, int32_t b) {
      if (static_cast<uint64_t>(id) >= dense_.size()) {
        add_outside(id, b);
        return;
      }
      dense_[static_cast<size_t>(id)] = b;
      if (static_cast<size_t>(id) >= used_) used_ = static_cast<size_t>(id) + 1;
    }

    // Marks live buffer `id` freed.
    void remove(int64_t id) {
      if (static_cast<uint64_t>(id) < dense_.size()) {
        dense_[static_cast<size_t>(id)] = kNotLive;
      } else {
        sparse_.erase(id);
      }
    }

   private:
    static constexpr int64_t kMinDense = 65536;               // ids below this use the table
    static constexpr int64_t kMaxReserve = int64_t{1} << 22;  // reserve() ignores more

    // add() of an id the table does not cover.
    [[gnu::noinline]] void add_outside(int64_t id, int32_t b) {
      if (id < 0 || id >= dense_limit()) {
        sparse_.emplace(id, b);
        return;
      }
      grow(std::max(static_cast<size_t>(id) + 1, 2 * dense_.size()));
      dense_[static_cast<size_t>(id)] = b;
      if (static_cast<size_t>(id) >= used_) used_ = static_cast<size_t>(id) + 1;
    }

    // Ids below this grow the table (at most doubling it) rather than go to the map.
    int64_t dense_limit() const {
      return std::max<int64_t>(kMinDense, 2 * static_cast<int64_t>(dense_.size()));
    }

    void grow(size_t n) {
      dense_.resize(n, kNotLive);
      // Ids kept in the map that the table now covers move into it.
      for (auto it = sparse_.begin(); it != sparse_.end();) {
        if (it->first >= 0 && it->first < static_cast<int64_t>(n)) {
          dense_[static_cast<size_t>(it->first)] = it->second;
          used_ = std::max(used_, static_cast<size_t>(it->first) + 1);
          it = sparse_.erase(it);
        } else {
          ++it;
        }
      }
    }

    std::vector<int32_t> dense_;  // id -> block or kNotLive
    size_t used_ = 0;             // entries of dense_ set since clear(): [0, used_) may be live
    std::unordered_map<int64_t, int32_t> sparse_;
  };

  explicit State(int64_t capacity) : capacity_(capacity) {}

  // A State for a new model: the one the last model destroyed on this thread left, cleared, or
  // a new one.
  static std::unique_ptr<State> acquire(int64_t capacity) {
    std::unique_ptr<State> s;
    if (!cache_closed_) s = std::move(cache().spare);
    if (!s) return std::make_unique<State>(capacity);
    s->reset(capacity);
    return s;
  }

  static void release(std::unique_ptr<State> s) {
    if (s && !cache_closed_) cache().spare = std::move(s);
  }

  void reset(int64_t capacity) {
    capacity_ = capacity;
    next_address_ = 0;
    blocks_.clear();
    spare_blocks_.clear();
    for (FreeIndex& index : free_) index.clear();
    pending_[0] = pending_[1] = kNoBlock;
    live_.clear();
  }

  static Pool pool_of(int64_t rounded) {
    return rounded <= kSmallSize ? Pool::kSmall : Pool::kLarge;
  }
  FreeIndex& free_index(Pool pool) { return free_[static_cast<int>(pool)]; }

  [[gnu::always_inline]] int32_t new_block() {
    if (!spare_blocks_.empty()) {
      int32_t b = spare_blocks_.back();
      spare_blocks_.pop_back();
      blocks_[b] = Block{};
      return b;
    }
    blocks_.emplace_back();
    return static_cast<int32_t>(blocks_.size() - 1);
  }

  // The free blocks of a pool are those in its index and its pending block, the one freed (or
  // split off) last, which goes into the index only when the next one comes. Often the pending
  // block is taken straight back, or merged again, without touching the index: a transient's
  // remainder merges back into it, a step carves several buffers in a row off the top of the
  // same free block, and the next request of a size takes the block of that size just freed.
  void insert_free(int32_t b) {
    int32_t& pending = pending_[static_cast<int>(blocks_[b].pool)];
    if (pending != kNoBlock) flush(pending);
    pending = b;
  }

  void erase_free(int32_t b) {
    const Block& blk = blocks_[b];
    int32_t& pending = pending_[static_cast<int>(blk.pool)];
    if (b == pending) {
      pending = kNoBlock;
      return;
    }
    free_index(blk.pool).erase(blk.size, blk.address);
  }

  // Moves pending block `b` into its index; `pending` (a reference to it) becomes kNoBlock.
  void flush(int32_t& pending) {
    const Block& blk = blocks_[pending];
    free_index(blk.pool).insert(FreeKey{blk.size, blk.address, pending});
    pending = kNoBlock;
  }

  // Smallest cached free block of the pool that holds `rounded` bytes (lowest address among
  // equals), taken out of the free set; kNoBlock when none fits.
  [[gnu::always_inline]] int32_t take_best_fit(Pool pool, int64_t rounded) {
    FreeIndex& index = free_index(pool);
    FreeIndex::SizeClass* c = index.best_fit(rounded);
    int32_t& pending = pending_[static_cast<int>(pool)];
    if (pending != kNoBlock) {
      const Block& p = blocks_[pending];
      if (p.size >= rounded && (c == nullptr || p.size < c->size ||
                                (p.size == c->size && p.address < c->blocks.back().address))) {
        const int32_t b = pending;
        pending = kNoBlock;
        return b;
      }
    }
    return c == nullptr ? kNoBlock : index.take_lowest(*c);
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
    // small pool: remaining >= kMinBlockSize; large pool: remaining > kSmallSize
    constexpr int64_t kLeast[2] = {kMinBlockSize, kSmallSize + 1};
    return remaining >= kLeast[static_cast<int>(pool)];
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
  [[gnu::always_inline]] void merge_into(int32_t dst, int32_t src) {
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
    for (int32_t& pending : pending_) {
      if (pending != kNoBlock) flush(pending);
    }
    for (FreeIndex* index : {&free_index(Pool::kSmall), &free_index(Pool::kLarge)}) {
      index->erase_if([&](const FreeKey& k) {
        const Block& blk = blocks_[k.block];
        if (blk.prev != kNoBlock || blk.next != kNoBlock) return false;
        stats.reserved_bytes -= blk.size;
        stats.segments -= 1;
        spare_blocks_.push_back(k.block);
        return true;
      });
    }
  }

  int64_t capacity_;          // bytes the segments may add up to; 0 = unlimited
  int64_t next_address_ = 0;  // bytes; base of the next segment, never reused
  std::vector<Block> blocks_;
  std::vector<int32_t> spare_blocks_;          // indices into blocks_ free for reuse
  FreeIndex free_[2];                          // by Pool
  int32_t pending_[2] = {kNoBlock, kNoBlock};  // by Pool: a free block not in the index
  LiveTable live_;

 private:
  // The State of the last model destroyed on this thread, kept for the next one.
  struct Cache {
    std::unique_ptr<State> spare;
    ~Cache() { cache_closed_ = true; }
  };
  static Cache& cache() {
    thread_local Cache c;
    return c;
  }
  // Set once the thread's cache is destroyed (at thread exit): models destroyed later free their
  // State. Trivially destructible, so it can be read at any point of the thread's exit.
  static thread_local bool cache_closed_;
};

thread_local bool CudaAllocatorModel::State::cache_closed_ = false;

CudaAllocatorModel::CudaAllocatorModel(int64_t capacity_bytes) {
  if (capacity_bytes < 0) {
    throw std::invalid_argument("creating the CUDA allocator model: capacity " +
                                std::to_string(capacity_bytes) + " bytes is negative");
  }
  state_ = State::acquire(capacity_bytes);
}

CudaAllocatorModel::~CudaAllocatorModel() { State::release(std::move(state_)); }

bool CudaAllocatorModel::malloc(int64_t id, int64_t bytes) {
  if (bytes < 0) {
    throw std::invalid_argument("allocating buffer " + std::to_string(id) + ": size " +
                                std::to_string(bytes) + " bytes is negative");
  }
  State& s = *state_;
  if (s.live_.find(id) != State::LiveTable::kNotLive) {
    throw std::logic_error("allocating buffer " + std::to_string(id) +
                           ": the id is already live (allocated and not freed)");
  }
  // A 0-byte tensor gets a null pointer and no block, but the caller will still free it.
  if (bytes == 0) {
    s.live_.add(id, kNoBlock);
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
  s.live_.add(id, b);
  return true;
}

void CudaAllocatorModel::free(int64_t id) {
  State& s = *state_;
  const int32_t b = s.live_.find(id);
  if (b == State::LiveTable::kNotLive) {
    throw std::logic_error("freeing buffer " + std::to_string(id) +
                           ": the id is not live (never allocated, already freed, or its "
                           "allocation failed)");
  }
  s.live_.remove(id);
  if (b != kNoBlock) s.give_back(b, stats_);
}

void CudaAllocatorModel::reset_peaks() {
  stats_.allocated_peak = stats_.allocated_bytes;
  stats_.reserved_peak = stats_.reserved_bytes;
}

void CudaAllocatorModel::empty_cache() { state_->release_free_segments(stats_); }

void CudaAllocatorModel::reserve(int64_t ids) { state_->live_.reserve(ids); }

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
