// Out of memory inside a micro-batch: train splits it and goes on with the same gradient. With a
// CPU budget that micro-batch 4 passes and 2 does not, the run ends with the losses and the
// adapter of a run made at micro-batch 2 with twice the accumulation; when even one sequence does
// not fit it stops saying what the planner predicts would.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "fixtures/model_files.h"
#include "run_train_cli.h"

namespace loraplan::cli {
namespace {

using loraplan::testing::read_text;
using loraplan::testing::TempDir;
using loraplan::testing::write_text;

testing::Result run(const std::vector<std::string>& args) {
  return testing::run_with_executor(args);
}

// tiny-llama, T 64, fp32, no dropout (the masks would differ with the micro-batch's shape). The
// planner predicts 2,657,948 B at micro-batch 4 and 1,735,324 B at 2 (x 2 and x 4 accumulated).
std::vector<std::string> args(const std::string& out, const std::string& micro_batch,
                              const std::string& grad_accum, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"train",    "--model",         "tiny-llama", "--seq-len",
                                "64",       "--compute-dtype", "fp32",       "--lora-dropout",
                                "0",        "--steps",         "6",          "--seed",
                                "2",        "--micro-batch",   micro_batch,  "--grad-accum",
                                grad_accum, "--out",           out};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// The adapter's tensors as floats, by name.
std::map<std::string, std::vector<float>> adapter(const std::string& dir) {
  const std::string d = read_text(dir + "/adapter_model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, d.data(), 8);
  const nlohmann::json h = nlohmann::json::parse(d.substr(8, n));
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, e] : h.items()) {
    if (name == "__metadata__") continue;
    const int64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
    std::vector<float> v(static_cast<size_t>(end - b) / 4);
    std::memcpy(v.data(), d.data() + 8 + n + b, static_cast<size_t>(end - b));
    out[name] = v;
  }
  return out;
}

void expect_same_run(const std::string& split_dir, const std::string& reference_dir) {
  const nlohmann::json a = nlohmann::json::parse(read_text(split_dir + "/report.json"));
  const nlohmann::json b = nlohmann::json::parse(read_text(reference_dir + "/report.json"));
  ASSERT_EQ(a["steps"].size(), b["steps"].size());
  for (size_t i = 0; i < a["steps"].size(); ++i) {
    const double x = a["steps"][i]["loss"], y = b["steps"][i]["loss"];
    EXPECT_NEAR(x, y, 1e-6 * std::abs(y)) << "step " << i + 1;
    EXPECT_EQ(a["steps"][i]["tokens"], b["steps"][i]["tokens"]) << "step " << i + 1;
  }
  const auto p = adapter(split_dir), q = adapter(reference_dir);
  ASSERT_EQ(p.size(), q.size());
  for (const auto& [name, v] : q) {
    const std::vector<float>& u = p.at(name);
    ASSERT_EQ(u.size(), v.size());
    double scale = 0, diff = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      scale = std::max(scale, std::abs(static_cast<double>(v[i])));
      diff = std::max(diff, std::abs(static_cast<double>(u[i]) - v[i]));
    }
    EXPECT_LE(diff, 1e-6 * scale) << name;
  }
}

TEST(OomSplit, AMicroBatchTooLargeIsSplitAndTheRunEqualsOneMadeAtHalfTheSize) {
  TempDir dir;
  const testing::Result r = run(args(dir.file("split"), "4", "2", {"--budget", "2000000B"}));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("out of memory in step 1, micro-batch 1 (4 sequences): split into pieces "
                       "of 2 with the same gradient"),
            std::string::npos)
      << r.out;
  const nlohmann::json report = nlohmann::json::parse(read_text(dir.file("split/report.json")));
  EXPECT_EQ(report["oom_splits"],
            nlohmann::json::parse(
                R"([{"step": 1, "micro_batch": 1, "from": 4, "to": 2, "eval": false}])"));
  EXPECT_EQ(report["out_of_memory"], false);
  for (const auto& s : report["steps"]) EXPECT_LE(s["peak_bytes"].get<int64_t>(), 2000000);
  ASSERT_EQ(run(args(dir.file("half"), "2", "4")).code, 0);
  expect_same_run(dir.file("split"), dir.file("half"));
  // Its phases mix the failed attempt and the halves: verify does not pass them off as either.
  const testing::Result v = run({"verify", "--run", dir.file("split/report.json")});
  EXPECT_EQ(v.code, 2);
  EXPECT_EQ(v.err, "loraplan: error: " + dir.file("split/report.json") +
                       ": the run split its micro-batches after an out-of-memory (step 1, "
                       "micro-batch 1: 4 -> 2 sequences): its phases mix the failed attempt and "
                       "the smaller size, no measurement of one configuration to verify\n");
}

// Rows of unequal length: each piece is weighted by its share of the micro-batch's labelled
// tokens, so the split run is the unsplit run (a run at micro-batch 2 would weight every
// micro-batch alike, another mean).
TEST(OomSplit, PackedRowsOfUnequalTokensSplitIntoTheSameStep) {
  TempDir dir;
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> len(5, 40), id(0, 255);
  std::string rows;
  for (int i = 0; i < 40; ++i) {
    nlohmann::json ids = nlohmann::json::array();
    for (int k = len(rng); k > 0; --k) ids.push_back(id(rng));
    rows += nlohmann::json({{"input_ids", ids}}).dump() + "\n";
  }
  write_text(dir.file("d.jsonl"), rows);
  // SGD: AdamW's m / sqrt(v) turns the last-bit differences of a gradient summed in another
  // order into whole updates where a gradient is near 0; SGD keeps them last-bit.
  const std::vector<std::string> data = {"--data", dir.file("d.jsonl"), "--batching",
                                         "packed", "--optimizer",       "sgd"};
  std::vector<std::string> split = data;
  split.insert(split.end(), {"--budget", "2000000B"});
  const testing::Result r = run(args(dir.file("split"), "4", "2", split));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const nlohmann::json report = nlohmann::json::parse(read_text(dir.file("split/report.json")));
  ASSERT_EQ(report["oom_splits"].size(), 1u);
  ASSERT_EQ(run(args(dir.file("whole"), "4", "2", data)).code, 0);
  expect_same_run(dir.file("split"), dir.file("whole"));
}

// The evaluation runs out of memory where training does not (eval micro-batches of 8, training
// ones of 1; the eval phase peaks at 2,253,456 B unbudgeted, training at 1,260,188 B): it is
// split like training's, to the same eval loss, and training's micro-batches stay whole.
TEST(OomSplit, AnEvalMicroBatchTooLargeIsSplitToTheSameEvalLoss) {
  TempDir dir;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> id(0, 255);
  std::string rows;
  for (int i = 0; i < 16; ++i) {
    nlohmann::json ids = nlohmann::json::array();
    for (int k = 0; k < 64; ++k) ids.push_back(id(rng));
    rows += nlohmann::json({{"input_ids", ids}}).dump() + "\n";
  }
  write_text(dir.file("eval.jsonl"), rows);
  const std::vector<std::string> eval = {"--eval-data", dir.file("eval.jsonl"), "--eval-batch",
                                         "8"};
  std::vector<std::string> budgeted = eval;
  budgeted.insert(budgeted.end(), {"--budget", "1600000B"});
  const testing::Result r = run(args(dir.file("split"), "1", "2", budgeted));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("out of memory in step 6's evaluation, eval micro-batch 1 (8 sequences): "
                       "split into pieces of 4 with the same eval loss"),
            std::string::npos)
      << r.out;
  const nlohmann::json split = nlohmann::json::parse(read_text(dir.file("split/report.json")));
  EXPECT_EQ(split["oom_splits"], nlohmann::json::parse(
                                     R"([{"step": 6, "micro_batch": 1, "from": 8, "to": 4,
                                          "eval": true}])"));
  ASSERT_EQ(run(args(dir.file("whole"), "1", "2", eval)).code, 0);
  const nlohmann::json whole = nlohmann::json::parse(read_text(dir.file("whole/report.json")));
  EXPECT_TRUE(whole["oom_splits"].empty());
  const double a = split["steps"][5]["eval_loss"], b = whole["steps"][5]["eval_loss"];
  EXPECT_NEAR(a, b, 1e-6 * b);
  expect_same_run(dir.file("split"), dir.file("whole"));
  const testing::Result v = run({"verify", "--run", dir.file("split/report.json")});
  EXPECT_EQ(v.code, 2);
  EXPECT_NE(v.err.find("(step 6, eval micro-batch 1: 8 -> 4 sequences)"), std::string::npos)
      << v.err;
}

TEST(OomSplit, WhenOneSequenceDoesNotFitTheRunStopsWithWhatThePlannerPredicts) {
  TempDir dir;
  testing::Result r = run(args(dir.file("tiny"), "4", "2", {"--budget", "1000000B"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("the planner predicts even micro-batch 1 x 64 needs 1.2 MiB, over the "
                       "budget of 976.6 KiB"),
            std::string::npos)
      << r.out;
  nlohmann::json report = nlohmann::json::parse(read_text(dir.file("tiny/report.json")));
  EXPECT_EQ(report["out_of_memory"], true);
  EXPECT_EQ(report["oom_splits"].size(), 2u);  // 4 -> 2 -> 1
  // --on-oom stop: the first out-of-memory ends the run, with the micro-batch that would fit.
  r = run(args(dir.file("stop"), "4", "2", {"--budget", "2000000B", "--on-oom", "stop"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("the planner predicts micro-batch 2 x 64 fits (peak 1.7 MiB of 1.9 MiB): "
                       "--micro-batch 2 --grad-accum 4 keeps the batch"),
            std::string::npos)
      << r.out;
  report = nlohmann::json::parse(read_text(dir.file("stop/report.json")));
  EXPECT_EQ(report["oom_splits"].size(), 0u);
}

}  // namespace
}  // namespace loraplan::cli
