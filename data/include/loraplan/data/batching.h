#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loraplan::data {

// How sequences become micro-batches (--batching):
//   fixed      every sequence padded to --seq-len, --micro-batch sequences each
//   longest    --micro-batch sequences, padded to the longest of them (rounded up to K)
//   tokens:N   as many sequences as fit N padded tokens, grouped by length (B varies)
//   packed     documents laid end to end in rows of --seq-len (no document split), positions
//              restarting per document and no attention across documents
enum class BatchingKind { kFixed, kLongest, kTokens, kPacked };

struct Batching {
  BatchingKind kind = BatchingKind::kFixed;
  int64_t token_budget = 0;  // N of tokens:N

  // "fixed", "longest", "tokens:4096", "packed"; InputError naming `flag` otherwise.
  static Batching parse(const std::string& text, const std::string& flag = "--batching");
  std::string name() const;
};

struct BatchingOptions {
  Batching batching;
  int64_t seq_len = 1024;      // T: the longest sequence (sequences are cut to it before)
  int64_t micro_batch = 1;     // B for fixed, longest and packed
  int64_t pad_multiple = 8;    // K: padded lengths are rounded up to a multiple of it
  uint64_t seed = 0;           // the epoch's order
  bool longest_first = false;  // the biggest micro-batch first, so an OOM comes at step 1
};

// One micro-batch: B sequences of T tokens (padded), made of these rows.
struct MicroBatch {
  std::vector<int64_t> rows;  // dataset rows in it (for packed: every document of every row)
  // Packed: how many of `rows` each sequence holds, in order (sums to rows.size()); empty: one
  // row per sequence.
  std::vector<int64_t> documents;
  int64_t sequences = 0;  // B
  int64_t seq_len = 0;    // T, padded
  int64_t tokens = 0;     // real (unpadded) tokens
  int64_t padded() const { return sequences * seq_len; }
};

// An epoch's micro-batches over sequences of these lengths (lengths[i] is row i's, each at most
// seq_len), in training order. Every row is in exactly one micro-batch.
std::vector<MicroBatch> make_batches(std::span<const int64_t> lengths,
                                     const BatchingOptions& options);

// The micro-batch that needs the most memory by its shape: the most padded tokens B*T, then the
// longest T (attention's T^2), then the most real tokens. The planner simulates the frontier;
// this is the table's answer.
size_t largest_batch(const std::vector<MicroBatch>& batches);

// Every shape (B, T) no other micro-batch dominates (another with B' >= B and T' >= T): the
// candidates for the peak, since memory grows with B*T, T^2 and B*T*V. Sorted by T.
struct BatchShape {
  int64_t sequences = 0;
  int64_t seq_len = 0;
  size_t batch = 0;  // index of one micro-batch of this shape
  bool operator==(const BatchShape&) const = default;
};
std::vector<BatchShape> shape_frontier(const std::vector<MicroBatch>& batches);

}  // namespace loraplan::data
