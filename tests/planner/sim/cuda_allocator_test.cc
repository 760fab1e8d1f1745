#include "loraplan/planner/cuda_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>

namespace loraplan::planner {
namespace {

constexpr int64_t kMiB = 1048576;

// What a test checks after each step: memory_allocated(), memory_reserved() and the number of
// cudaMalloc'd segments, all as of now.
struct Usage {
  int64_t allocated;  // bytes
  int64_t reserved;   // bytes
  int64_t segments;   // count
  bool operator==(const Usage&) const = default;
};

void PrintTo(const Usage& u, std::ostream* os) {
  *os << "{allocated " << u.allocated << ", reserved " << u.reserved << ", segments " << u.segments
      << "}";
}

Usage usage(const CudaAllocatorModel& a) {
  const CudaAllocatorStats& s = a.stats();
  return {s.allocated_bytes, s.reserved_bytes, s.segments};
}

TEST(CudaAllocatorRounding, RoundSizeIsA512MultipleOfAtLeast512) {
  EXPECT_EQ(CudaAllocatorModel::round_size(1), 512);
  EXPECT_EQ(CudaAllocatorModel::round_size(511), 512);
  EXPECT_EQ(CudaAllocatorModel::round_size(512), 512);
  EXPECT_EQ(CudaAllocatorModel::round_size(513), 1024);
  EXPECT_EQ(CudaAllocatorModel::round_size(kMiB), kMiB);
  EXPECT_EQ(CudaAllocatorModel::round_size(kMiB + 1), kMiB + 512);
}

TEST(CudaAllocatorRounding, AllocationSizeFollowsPoolAndSizeClass) {
  EXPECT_EQ(CudaAllocatorModel::allocation_size(512), 2 * kMiB);          // small pool
  EXPECT_EQ(CudaAllocatorModel::allocation_size(kMiB), 2 * kMiB);         // still small
  EXPECT_EQ(CudaAllocatorModel::allocation_size(kMiB + 512), 20 * kMiB);  // large, < 10 MiB
  EXPECT_EQ(CudaAllocatorModel::allocation_size(10 * kMiB - 512), 20 * kMiB);
  EXPECT_EQ(CudaAllocatorModel::allocation_size(10 * kMiB), 10 * kMiB);      // own segment
  EXPECT_EQ(CudaAllocatorModel::allocation_size(10 * kMiB + 1), 12 * kMiB);  // 2 MiB multiple
  EXPECT_EQ(CudaAllocatorModel::allocation_size(32 * kMiB), 32 * kMiB);
}

// formats.md 4.2 worked example: 8,519,680 B -> large pool, 20 MiB segment, split.
TEST(CudaAllocatorWorkedExample, EightMiBRequestSplitsATwentyMiBSegment) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 8519680));  // +20 MiB segment, split -> free remainder 12451840
  EXPECT_EQ(usage(a), (Usage{8519680, 20971520, 1}));
  EXPECT_EQ(a.stats().requested_bytes, 8519680);
  ASSERT_TRUE(a.malloc(2, 12451840));  // exactly the remainder -> no new segment
  EXPECT_EQ(usage(a), (Usage{20971520, 20971520, 1}));
}

// The remainder is 11.875 MiB, so a full 12 MiB request does not fit it: it gets its own
// 12 MiB segment while the remainder stays cached.
TEST(CudaAllocatorWorkedExample, TwelveMiBDoesNotFitTheRemainder) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 8519680));    // +20 MiB segment -> reserved 20971520
  ASSERT_TRUE(a.malloc(2, 12 * kMiB));  // 12582912 > 12451840: +12 MiB -> reserved 33554432
  EXPECT_EQ(usage(a), (Usage{8519680 + 12582912, 33554432, 2}));
}

TEST(CudaAllocatorWorkedExample, ThirtyTwoMiBGetsItsOwnSegmentUnsplit) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 33554432));  // +32 MiB segment, remaining 0 -> reserved 33554432
  EXPECT_EQ(usage(a), (Usage{33554432, 33554432, 1}));
  ASSERT_TRUE(a.malloc(2, 2 * kMiB));  // nothing cached: +20 MiB -> reserved 54525952
  EXPECT_EQ(usage(a), (Usage{33554432 + 2097152, 54525952, 2}));
}

TEST(CudaAllocatorWorkedExample, OneMiBGoesToTheSmallPoolAndSplits) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, kMiB));  // small pool: +2 MiB segment, split -> free 1 MiB
  EXPECT_EQ(usage(a), (Usage{1048576, 2097152, 1}));
  ASSERT_TRUE(a.malloc(2, kMiB));  // takes the 1 MiB remainder -> no new segment
  EXPECT_EQ(usage(a), (Usage{2097152, 2097152, 1}));
  ASSERT_TRUE(a.malloc(3, 1));  // segment full: +2 MiB small segment -> reserved 4194304
  EXPECT_EQ(usage(a), (Usage{2097152 + 512, 4194304, 2}));
}

TEST(CudaAllocatorSplit, SmallPoolSplitsDownTo512Bytes) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, kMiB));        // +2 MiB small segment, free 1048576
  ASSERT_TRUE(a.malloc(2, kMiB - 512));  // remaining 512 >= 512 -> split, free 512
  EXPECT_EQ(usage(a), (Usage{2096640, 2097152, 1}));
  ASSERT_TRUE(a.malloc(3, 100));  // rounds to 512 = the last free block
  EXPECT_EQ(usage(a), (Usage{2097152, 2097152, 1}));
  EXPECT_EQ(a.stats().requested_bytes, kMiB + (kMiB - 512) + 100);
}

TEST(CudaAllocatorSplit, LargePoolHandsOutAWholeBlockWhenOneMiBOrLessRemains) {
  CudaAllocatorModel a;
  // 19.5 MiB -> a 20 MiB segment; remaining 512 KiB is not > 1 MiB, so the block is whole.
  ASSERT_TRUE(a.malloc(1, 20447232));
  EXPECT_EQ(usage(a), (Usage{20971520, 20971520, 1}));
  EXPECT_EQ(a.stats().requested_bytes, 20447232);
  a.free(1);                            // -> allocated 0, the 20 MiB block cached
  ASSERT_TRUE(a.malloc(2, 19 * kMiB));  // remaining exactly 1 MiB: still whole
  EXPECT_EQ(usage(a), (Usage{20971520, 20971520, 1}));
  a.free(2);
  ASSERT_TRUE(a.malloc(3, 19 * kMiB - 512));  // remaining 1 MiB + 512 > 1 MiB: split
  EXPECT_EQ(usage(a), (Usage{19922432, 20971520, 1}));
}

TEST(CudaAllocatorSplit, WholeBlockHandOutAfterASplit) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 8519680));    // +20 MiB, free remainder 12451840
  ASSERT_TRUE(a.malloc(2, 11 * kMiB));  // 12451840 - 11534336 = 917504 <= 1 MiB: whole block
  EXPECT_EQ(usage(a), (Usage{20971520, 20971520, 1}));
  EXPECT_EQ(a.stats().requested_bytes, 8519680 + 11534336);
}

TEST(CudaAllocatorPools, SmallRequestsDoNotUseLargePoolBlocks) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 8519680));  // +20 MiB large segment, 12451840 free there
  ASSERT_TRUE(a.malloc(2, 512));      // small pool is empty: +2 MiB -> reserved 23068672
  EXPECT_EQ(usage(a), (Usage{8519680 + 512, 23068672, 2}));
}

TEST(CudaAllocatorReuse, FreedBlockServesTheSameSizeAgain) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 50 * kMiB));  // +50 MiB segment -> reserved 52428800
  a.free(1);                            // -> allocated 0, reserved stays 52428800
  EXPECT_EQ(usage(a), (Usage{0, 52428800, 1}));
  ASSERT_TRUE(a.malloc(2, 50 * kMiB));  // the cached block, no new segment
  EXPECT_EQ(usage(a), (Usage{52428800, 52428800, 1}));
}

TEST(CudaAllocatorReuse, AdjacentFreesMergeAndServeTheirCombinedSize) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 4 * kMiB));  // +20 MiB segment: [1:4][free 16]
  ASSERT_TRUE(a.malloc(2, 4 * kMiB));  // [1:4][2:4][free 12]
  ASSERT_TRUE(a.malloc(3, 4 * kMiB));  // [1:4][2:4][3:4][free 8]
  ASSERT_TRUE(a.malloc(4, 8 * kMiB));  // [1:4][2:4][3:4][4:8], segment full
  EXPECT_EQ(usage(a), (Usage{20971520, 20971520, 1}));
  a.free(1);  // [free 4][2:4][3:4][4:8]
  a.free(2);  // merges with its lower neighbour: [free 8][3:4][4:8]
  EXPECT_EQ(usage(a), (Usage{12582912, 20971520, 1}));
  ASSERT_TRUE(a.malloc(5, 8 * kMiB));  // fits the merged 8 MiB: no new segment
  EXPECT_EQ(usage(a), (Usage{20971520, 20971520, 1}));
}

TEST(CudaAllocatorReuse, FreeMergesWithBothNeighboursIntoAWholeSegment) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 4 * kMiB));  // +20 MiB segment: [1:4][free 16]
  ASSERT_TRUE(a.malloc(2, 4 * kMiB));  // [1:4][2:4][free 12]
  a.free(1);                           // [free 4][2:4][free 12]
  a.free(2);                           // merges both sides: [free 20]
  EXPECT_EQ(usage(a), (Usage{0, 20971520, 1}));
  ASSERT_TRUE(a.malloc(3, 20 * kMiB));  // the whole segment again
  EXPECT_EQ(usage(a), (Usage{20971520, 20971520, 1}));
}

TEST(CudaAllocatorReuse, BestFitPicksTheSmallestFittingBlock) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 30 * kMiB));  // +30 MiB segment -> reserved 31457280
  ASSERT_TRUE(a.malloc(2, 12 * kMiB));  // +12 MiB segment -> reserved 44040192
  a.free(1);                            // cached: 30 MiB and 12 MiB blocks
  a.free(2);
  // 11 MiB fits both; best fit takes the 12 MiB one, whole (remaining 1 MiB is not > 1 MiB).
  // Taking the 30 MiB one would have split it and counted only 11 MiB.
  ASSERT_TRUE(a.malloc(3, 11 * kMiB));
  EXPECT_EQ(usage(a), (Usage{12582912, 44040192, 2}));
  ASSERT_TRUE(a.malloc(4, 30 * kMiB));  // the 30 MiB block is still there
  EXPECT_EQ(usage(a), (Usage{12582912 + 31457280, 44040192, 2}));
}

TEST(CudaAllocatorReuse, EqualSizesTieBreakOnTheLowestAddress) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(2, 12 * kMiB));  // segment A, 12 MiB, lowest address
  ASSERT_TRUE(a.malloc(1, 8 * kMiB));   // segment B, 20 MiB: [1:8][free 12]
  a.free(2);                            // two free 12 MiB blocks: all of A, the tail of B
  ASSERT_TRUE(a.malloc(3, 12 * kMiB));  // tie -> A (lower address)
  EXPECT_EQ(usage(a), (Usage{20971520, 33554432, 2}));
  a.empty_cache();  // A is in use and B is split: nothing to release
  EXPECT_EQ(usage(a), (Usage{20971520, 33554432, 2}));
  a.free(3);
  a.empty_cache();  // now A is fully free -> reserved 20971520
  EXPECT_EQ(usage(a), (Usage{8388608, 20971520, 1}));
}

TEST(CudaAllocatorCapacity, RequestBeyondCapacityFailsAndCountsAnOom) {
  CudaAllocatorModel a(64 * kMiB);
  ASSERT_TRUE(a.malloc(1, 40 * kMiB));  // +40 MiB -> reserved 41943040
  // 40 + 30 > 64 MiB; nothing cached to release, so the retry fails too.
  EXPECT_FALSE(a.malloc(2, 30 * kMiB));
  EXPECT_EQ(usage(a), (Usage{41943040, 41943040, 1}));
  EXPECT_EQ(a.stats().num_alloc_retries, 1);
  EXPECT_EQ(a.stats().num_ooms, 1);
  EXPECT_EQ(a.stats().requested_bytes, 41943040);
  EXPECT_THROW(a.free(2), std::logic_error);  // a failed allocation leaves nothing to free
}

TEST(CudaAllocatorCapacity, ExactlyFullCapacityNeedsNoRetry) {
  CudaAllocatorModel a(64 * kMiB);
  ASSERT_TRUE(a.malloc(1, 40 * kMiB));  // reserved 40 MiB
  ASSERT_TRUE(a.malloc(2, 24 * kMiB));  // 40 + 24 = 64 MiB, not beyond
  EXPECT_EQ(usage(a), (Usage{67108864, 67108864, 2}));
  EXPECT_EQ(a.stats().num_alloc_retries, 0);
}

TEST(CudaAllocatorCapacity, RetryReleasesCachedSegmentsAndSucceeds) {
  CudaAllocatorModel a(64 * kMiB);
  ASSERT_TRUE(a.malloc(1, 40 * kMiB));  // +40 MiB -> reserved 41943040
  a.free(1);                            // cached, too small for 50 MiB
  // 40 + 50 > 64 MiB: release the free 40 MiB segment, retry: 50 MiB fits.
  ASSERT_TRUE(a.malloc(2, 50 * kMiB));
  EXPECT_EQ(usage(a), (Usage{52428800, 52428800, 1}));
  EXPECT_EQ(a.stats().num_alloc_retries, 1);
  EXPECT_EQ(a.stats().num_ooms, 0);
  EXPECT_EQ(a.stats().reserved_peak, 52428800);
}

TEST(CudaAllocatorCapacity, RetryKeepsSegmentsThatAreSplit) {
  CudaAllocatorModel a(36 * kMiB);
  ASSERT_TRUE(a.malloc(1, 8 * kMiB));  // +20 MiB large segment: [1:8][free 12]
  ASSERT_TRUE(a.malloc(2, 512));       // +2 MiB small segment -> reserved 23068672
  a.free(2);                           // small segment fully free again
  // 16 MiB fits no free block; 22 + 16 > 36 MiB -> release the small segment only (the large
  // one holds buffer 1) -> 20 + 16 = 36 MiB fits.
  ASSERT_TRUE(a.malloc(3, 16 * kMiB));
  EXPECT_EQ(usage(a), (Usage{8388608 + 16777216, 37748736, 2}));
  EXPECT_EQ(a.stats().num_alloc_retries, 1);
}

TEST(CudaAllocatorCache, EmptyCacheReleasesOnlyFullyFreeSegments) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 8 * kMiB));   // +20 MiB: [1:8][free 12] -> reserved 20971520
  ASSERT_TRUE(a.malloc(2, 30 * kMiB));  // +30 MiB -> reserved 52428800
  ASSERT_TRUE(a.malloc(3, 512));        // +2 MiB small -> reserved 54525952
  a.free(2);
  a.free(3);
  a.empty_cache();  // releases the 30 MiB and 2 MiB segments; the split 20 MiB one stays
  EXPECT_EQ(usage(a), (Usage{8388608, 20971520, 1}));
  a.free(1);  // merges back into a whole 20 MiB free segment
  a.empty_cache();
  EXPECT_EQ(usage(a), (Usage{0, 0, 0}));
  EXPECT_EQ(a.stats().reserved_peak, 54525952);  // release does not touch peaks
  EXPECT_EQ(a.stats().num_alloc_retries, 0);
}

TEST(CudaAllocatorCache, ResetPeaksMakesPeaksTheCurrentValues) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 30 * kMiB));  // allocated 30 MiB, reserved 30 MiB
  ASSERT_TRUE(a.malloc(2, 40 * kMiB));  // allocated 70 MiB, reserved 70 MiB
  a.free(2);                            // allocated 30 MiB, reserved 70 MiB (cached)
  EXPECT_EQ(a.stats().allocated_peak, 73400320);
  EXPECT_EQ(a.stats().reserved_peak, 73400320);
  a.empty_cache();  // reserved 30 MiB
  a.reset_peaks();
  EXPECT_EQ(a.stats().allocated_peak, 31457280);
  EXPECT_EQ(a.stats().reserved_peak, 31457280);
  ASSERT_TRUE(a.malloc(3, 10 * kMiB));  // +10 MiB segment: both peaks 40 MiB
  EXPECT_EQ(a.stats().allocated_peak, 41943040);
  EXPECT_EQ(a.stats().reserved_peak, 41943040);
}

TEST(CudaAllocatorStats, RequestedBytesTracksUnroundedSizes) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 1));     // rounded 512
  ASSERT_TRUE(a.malloc(2, 1000));  // rounded 1024
  EXPECT_EQ(a.stats().requested_bytes, 1001);
  EXPECT_EQ(a.stats().allocated_bytes, 1536);
  a.free(1);
  EXPECT_EQ(a.stats().requested_bytes, 1000);
  EXPECT_EQ(a.stats().allocated_bytes, 1024);
}

TEST(CudaAllocatorErrors, FreeOfAnUnknownIdThrows) {
  CudaAllocatorModel a;
  try {
    a.free(42);
    FAIL() << "expected std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "freeing buffer 42: the id is not live (never allocated, already freed, or its "
              "allocation failed)");
  }
}

TEST(CudaAllocatorErrors, DoubleFreeThrows) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 4096));
  a.free(1);
  EXPECT_THROW(a.free(1), std::logic_error);
  EXPECT_EQ(usage(a), (Usage{0, 2097152, 1}));
}

TEST(CudaAllocatorErrors, AllocatingALiveIdAgainThrows) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(1, 4096));
  try {
    a.malloc(1, 4096);
    FAIL() << "expected std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "allocating buffer 1: the id is already live (allocated and not freed)");
  }
  EXPECT_EQ(usage(a), (Usage{4096, 2097152, 1}));
}

TEST(CudaAllocatorErrors, NegativeSizeThrows) {
  CudaAllocatorModel a;
  try {
    a.malloc(3, -1);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "allocating buffer 3: size -1 bytes is negative");
  }
}

TEST(CudaAllocatorZero, ZeroBytesAllocatesNothingButCanBeFreed) {
  CudaAllocatorModel a;
  ASSERT_TRUE(a.malloc(7, 0));  // null pointer: no block, no segment
  EXPECT_EQ(usage(a), (Usage{0, 0, 0}));
  EXPECT_EQ(a.stats().requested_bytes, 0);
  a.free(7);
  EXPECT_EQ(usage(a), (Usage{0, 0, 0}));
  EXPECT_THROW(a.free(7), std::logic_error);
}

TEST(CudaAllocatorZero, ZeroBytesNeverFailsAtFullCapacity) {
  CudaAllocatorModel a(20 * kMiB);
  ASSERT_TRUE(a.malloc(1, 20 * kMiB));  // reserved = capacity
  EXPECT_TRUE(a.malloc(2, 0));
  EXPECT_EQ(a.stats().num_ooms, 0);
}

}  // namespace
}  // namespace loraplan::planner
