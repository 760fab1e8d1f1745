// Batching policies: every row in exactly one micro-batch, shapes as each policy promises, and
// padding as counted.
#include "loraplan/data/batching.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "loraplan/planner/errors.h"

namespace loraplan::data {
namespace {

// Skewed lengths: many short rows and a few near T, as real instruction data is.
std::vector<int64_t> skewed_lengths(int n, int64_t seq_len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> shorts(3, 200), longs(seq_len / 2, seq_len);
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(i % 97 == 5 ? longs(rng) : shorts(rng));
  return out;
}

BatchingOptions options_for(const char* batching, int64_t micro_batch = 4) {
  BatchingOptions o;
  o.batching = Batching::parse(batching);
  o.seq_len = 1024;
  o.micro_batch = micro_batch;
  o.pad_multiple = 8;
  o.seed = 7;
  return o;
}

void expect_every_row_once(const std::vector<MicroBatch>& batches, size_t rows) {
  std::vector<int> seen(rows, 0);
  for (const MicroBatch& b : batches) {
    for (const int64_t r : b.rows) ++seen[static_cast<size_t>(r)];
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
}

class Policies : public ::testing::TestWithParam<const char*> {};

TEST_P(Policies, EveryRowIsInExactlyOneMicroBatchAndFitsItsShape) {
  const std::vector<int64_t> lengths = skewed_lengths(1000, 1024, 1);
  const BatchingOptions o = options_for(GetParam());
  const std::vector<MicroBatch> batches = make_batches(lengths, o);
  expect_every_row_once(batches, lengths.size());
  int64_t total = 0;
  for (const MicroBatch& b : batches) {
    int64_t tokens = 0, longest = 0;
    for (const int64_t r : b.rows) tokens += lengths[r], longest = std::max(longest, lengths[r]);
    EXPECT_EQ(b.tokens, tokens);
    EXPECT_LE(b.tokens, b.padded());  // padding is never negative
    EXPECT_LE(longest, b.seq_len);
    EXPECT_LE(b.seq_len, o.seq_len);
    total += tokens;
  }
  EXPECT_EQ(total, std::accumulate(lengths.begin(), lengths.end(), int64_t{0}));
}

INSTANTIATE_TEST_SUITE_P(All, Policies,
                         ::testing::Values("fixed", "longest", "tokens:4096", "packed"));

TEST(Batching, FixedPadsEverySequenceToT) {
  const std::vector<int64_t> lengths = {10, 20, 30, 40, 50};
  const auto batches = make_batches(lengths, options_for("fixed", 2));
  ASSERT_EQ(batches.size(), 3u);  // 2 + 2 + 1
  for (const MicroBatch& b : batches) EXPECT_EQ(b.seq_len, 1024);
  EXPECT_EQ(batches.back().sequences, 1);
}

TEST(Batching, LongestPadsToTheLongestRoundedUpToK) {
  const std::vector<int64_t> lengths = {10, 17, 1020, 3};
  BatchingOptions o = options_for("longest", 4);
  const auto one = make_batches(lengths, o);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].seq_len, 1024);  // 1020 -> 1024
  o.micro_batch = 1;
  for (const MicroBatch& b : make_batches(lengths, o)) {
    const int64_t len = lengths[b.rows[0]];
    EXPECT_EQ(b.seq_len, (len + 7) / 8 * 8) << len;  // 10 -> 16, 17 -> 24, 3 -> 8
  }
  // A T that is not a multiple of K caps the rounding: 1020 stays 1020 under T 1020.
  o.seq_len = 1020;
  o.micro_batch = 4;
  EXPECT_EQ(make_batches(lengths, o)[0].seq_len, 1020);
}

TEST(Batching, TokenBudgetHoldsAsManySequencesAsFitAndGroupsByLength) {
  const std::vector<int64_t> lengths = skewed_lengths(1000, 1024, 2);
  const auto batches = make_batches(lengths, options_for("tokens:4096"));
  for (const MicroBatch& b : batches) {
    EXPECT_LE(b.padded(), 4096);
    EXPECT_GE(b.sequences, 1);
  }
  // Grouped by length, padding stays low: under 10% here (fixed would pad ~90%).
  int64_t padded = 0, tokens = 0;
  for (const MicroBatch& b : batches) padded += b.padded(), tokens += b.tokens;
  EXPECT_LT(double(padded - tokens) / double(padded), 0.10);
}

TEST(Batching, PackedRowsHoldWholeDocumentsUpToT) {
  const std::vector<int64_t> lengths = {600, 500, 400, 300, 200, 100};
  BatchingOptions o = options_for("packed", 1);
  o.seed = 0;
  const auto batches = make_batches(lengths, o);
  int64_t tokens = 0;
  for (const MicroBatch& b : batches) {
    EXPECT_EQ(b.seq_len, 1024);
    EXPECT_EQ(b.sequences, 1);
    EXPECT_LE(b.tokens, 1024);
    tokens += b.tokens;
  }
  EXPECT_EQ(tokens, 2100);
  // Each sequence says how many documents it holds; together they are the micro-batch's rows.
  o.micro_batch = 2;
  for (const MicroBatch& b : make_batches(lengths, o)) {
    ASSERT_EQ(static_cast<int64_t>(b.documents.size()), b.sequences);
    size_t at = 0;
    for (const int64_t n : b.documents) {
      ASSERT_GE(n, 1);
      int64_t used = 0;
      for (int64_t k = 0; k < n; ++k) used += lengths[b.rows[at++]];
      EXPECT_LE(used, 1024);
    }
    EXPECT_EQ(at, b.rows.size());
  }
  EXPECT_GE(batches.size(), 3u);  // 2100 tokens need at least 3 rows of 1024
}

TEST(Batching, TheSeedDecidesTheOrderAndLongestFirstPutsTheLargestFirst) {
  const std::vector<int64_t> lengths = skewed_lengths(300, 1024, 3);
  BatchingOptions o = options_for("longest");
  const auto a = make_batches(lengths, o);
  const auto b = make_batches(lengths, o);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].rows, b[i].rows);
  o.seed = 8;
  EXPECT_NE(make_batches(lengths, o)[0].rows, a[0].rows);
  o.longest_first = true;
  const auto first = make_batches(lengths, o);
  const size_t largest = largest_batch(first);
  EXPECT_EQ(first[largest].padded(), first[0].padded());
  EXPECT_EQ(largest, 0u);
}

TEST(Batching, TheFrontierKeepsOnlyShapesNoOtherDominates) {
  // Shapes (B, T): (4, 64) (4, 128) (2, 512) (1, 512) (1, 1024) (8, 32) (4, 32)
  std::vector<MicroBatch> batches;
  for (const auto& [b, t] : std::vector<std::pair<int64_t, int64_t>>{
           {4, 64}, {4, 128}, {2, 512}, {1, 512}, {1, 1024}, {8, 32}, {4, 32}}) {
    MicroBatch m;
    m.sequences = b;
    m.seq_len = t;
    batches.push_back(m);
  }
  const auto frontier = shape_frontier(batches);
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (const BatchShape& s : frontier) shapes.emplace_back(s.sequences, s.seq_len);
  // (4, 64), (1, 512) and (4, 32) are dominated by (4, 128), (2, 512) and (8, 32).
  EXPECT_EQ(shapes,
            (std::vector<std::pair<int64_t, int64_t>>{{8, 32}, {4, 128}, {2, 512}, {1, 1024}}));
  EXPECT_EQ(frontier[1].batch, 1u);
}

TEST(Batching, BadPolicyNamesAreRefusedWithTheFlag) {
  const auto message = [](const std::string& text) {
    try {
      Batching::parse(text);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message("dynamic"),
            "--batching: must be fixed, longest, tokens:N or packed, got \"dynamic\"");
  EXPECT_EQ(message("tokens:0"),
            "--batching: tokens:N needs a positive number of tokens, got \"tokens:0\"");
  EXPECT_EQ(message("tokens:x"),
            "--batching: tokens:N needs a positive number of tokens, got \"tokens:x\"");
  EXPECT_EQ(Batching::parse("tokens:4096").name(), "tokens:4096");
}

}  // namespace
}  // namespace loraplan::data
