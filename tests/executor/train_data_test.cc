// train --data over a whole epoch of a skewed dataset: every step's measured peak against the
// predicted worst micro-batch, and verify over the shapes the run ran.
#include <gtest/gtest.h>

#include <cstdlib>
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

// Many short rows and a few near T (tiny-llama's vocabulary of 256).
std::string skewed_rows(int n, int64_t seq_len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> shorts(4, 30),
      longs(static_cast<int>(seq_len) - 28, static_cast<int>(seq_len)), id(0, 255);
  std::string out;
  for (int i = 0; i < n; ++i) {
    const int len = i % 25 == 7 ? longs(rng) : shorts(rng);
    nlohmann::json ids = nlohmann::json::array();
    for (int k = 0; k < len; ++k) ids.push_back(id(rng));
    out += nlohmann::json({{"input_ids", ids}}).dump() + "\n";
  }
  return out;
}

struct EpochCase {
  const char* name;
  std::vector<std::string> flags;
  size_t shapes = 3;  // at least this many (B, T, first) run through the epoch
};

void PrintTo(const EpochCase& c, std::ostream* os) { *os << c.name; }

class TrainData : public ::testing::TestWithParam<EpochCase> {};

TEST_P(TrainData, AnEpochPeaksAtThePredictedWorstMicroBatchAndVerifies) {
  TempDir dir;
  write_text(dir.file("d.jsonl"), skewed_rows(120, 128, 3));
  // 120 rows, 4 per micro-batch (longest) or by a token budget; 2 per step.
  std::vector<std::string> args = {"train",
                                   "--model",
                                   "tiny-llama",
                                   "--data",
                                   dir.file("d.jsonl"),
                                   "--seq-len",
                                   "128",
                                   "--micro-batch",
                                   "4",
                                   "--grad-accum",
                                   "2",
                                   "--steps",
                                   "1",
                                   "--out",
                                   dir.file("run")};
  args.insert(args.end(), GetParam().flags.begin(), GetParam().flags.end());
  // First learn how many steps an epoch is, then run exactly one epoch.
  testing::Result r = run(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const int64_t epoch_steps =
      nlohmann::json::parse(read_text(dir.file("run/report.json")))["data"]["epoch_steps"];
  args[args.size() - 3 - GetParam().flags.size()] = std::to_string(epoch_steps);
  r = run(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(read_text(dir.file("run/report.json")));
  const int64_t predicted = report["data"]["worst_batch"]["predicted_peak_bytes"];
  ASSERT_EQ(report["steps"].size(), static_cast<size_t>(epoch_steps));
  int64_t highest = 0;
  for (const auto& s : report["steps"]) {
    // No step needs a byte more than the predicted worst.
    EXPECT_LE(s["peak_bytes"].get<int64_t>(), predicted) << "step " << s["step"];
    highest = std::max(highest, s["peak_bytes"].get<int64_t>());
  }
  // The worst step is the worst micro-batch's, to the byte on the CPU (1% is the bound).
  EXPECT_EQ(highest, predicted);
  // Shapes differ through the epoch, and verify predicts over the ones that ran.
  EXPECT_GE(report["data"]["shapes_run"].size(), GetParam().shapes);
  const testing::Result v = run({"verify", "--run", dir.file("run/report.json")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

INSTANTIATE_TEST_SUITE_P(Batchings, TrainData,
                         ::testing::Values(EpochCase{"longest", {"--batching", "longest"}},
                                           EpochCase{"tokens", {"--batching", "tokens:512"}},
                                           EpochCase{"packed", {"--batching", "packed"}, 2},
                                           EpochCase{"longest_first_eager",
                                                     {"--longest-first", "--attention", "eager"}}),
                         [](const auto& info) { return std::string(info.param.name); });

// Three documents packed into one row of T learn exactly what they learn as three padded rows:
// the same tokens take loss and each document attends to itself only (without the document mask
// every step's loss differs). Positions restart too, as transformers' position_ids do; under
// rotary embeddings that changes nothing but rounding, since scores depend on relative positions.
struct PackedCase {
  const char* name;
  std::vector<std::string> flags;
};
void PrintTo(const PackedCase& c, std::ostream* os) { *os << c.name; }
class TrainPacked : public ::testing::TestWithParam<PackedCase> {};

TEST_P(TrainPacked, APackedRowTrainsAsItsDocumentsApart) {
  TempDir dir;
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> id(0, 255);
  std::string rows;
  for (const int len : {50, 61, 13}) {
    nlohmann::json ids = nlohmann::json::array();
    for (int k = 0; k < len; ++k) ids.push_back(id(rng));
    rows += nlohmann::json({{"input_ids", ids}}).dump() + "\n";
  }
  write_text(dir.file("d.jsonl"), rows);
  auto train = [&](const std::string& batching, const std::string& micro_batch,
                   const std::string& out) {
    std::vector<std::string> args = {"train",
                                     "--model",
                                     "tiny-llama",
                                     "--data",
                                     dir.file("d.jsonl"),
                                     "--seq-len",
                                     "128",
                                     "--steps",
                                     "4",
                                     "--lr",
                                     "1e-2",
                                     "--lora-dropout",
                                     "0",
                                     "--compute-dtype",
                                     "fp32",
                                     "--batching",
                                     batching,
                                     "--micro-batch",
                                     micro_batch,
                                     "--grad-accum",
                                     "1",
                                     "--out",
                                     dir.file(out)};
    args.insert(args.end(), GetParam().flags.begin(), GetParam().flags.end());
    const testing::Result r = run(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(read_text(dir.file(out + "/report.json")));
  };
  const nlohmann::json packed = train("packed", "1", "packed");
  const nlohmann::json apart = train("longest", "3", "apart");
  // All three documents fit one row of 128 (124 tokens): one micro-batch per step either way.
  EXPECT_EQ(packed["data"]["micro_batches"], 1);
  EXPECT_EQ(apart["data"]["micro_batches"], 1);
  ASSERT_EQ(packed["steps"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const double a = packed["steps"][i]["loss"], b = apart["steps"][i]["loss"];
    EXPECT_NEAR(a, b, 1e-5 * std::abs(b)) << "step " << i + 1;
    EXPECT_EQ(packed["steps"][i]["tokens"], 124);
    EXPECT_EQ(apart["steps"][i]["tokens"], 124);
  }
  const testing::Result v = run({"verify", "--run", dir.file("packed/report.json")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

INSTANTIATE_TEST_SUITE_P(Attention, TrainPacked,
                         ::testing::Values(PackedCase{"efficient", {}},
                                           PackedCase{"eager", {"--attention", "eager"}},
                                           PackedCase{"checkpointed", {"--checkpoint", "all"}}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(TrainDataPlan, APlanMadeForDataRunsOnlyThatDataBatchedItsWay) {
  TempDir dir;
  write_text(dir.file("d.jsonl"), skewed_rows(120, 128, 3));
  write_text(dir.file("other.jsonl"), skewed_rows(60, 128, 4));
  const std::string plan = dir.file("plan.json");
  const testing::Result made = run({"plan", "--model", "tiny-llama", "--device", "cpu", "--budget",
                                    "8MiB", "--compute-dtype", "fp32", "--seq-len", "128", "--data",
                                    dir.file("d.jsonl"), "-o", plan});
  ASSERT_EQ(made.code, 0) << made.err;
  const nlohmann::json p = nlohmann::json::parse(read_text(plan));
  const std::string batching = p["data"]["batching"];
  const testing::Result r = run({"train", "--plan", plan, "--data", dir.file("d.jsonl"), "--steps",
                                 "2", "--out", dir.file("run")});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(read_text(dir.file("run/report.json")));
  EXPECT_EQ(report["data"]["batching"], batching);
  EXPECT_EQ(report["data"]["worst_batch"]["predicted_peak_bytes"].get<int64_t>() > 0, true);
  // The plan's worst micro-batch is the one train predicts for the same data and order.
  EXPECT_EQ(report["data"]["worst_batch"]["seq_len"], p["data"]["worst_batch"]["seq_len"]);
  EXPECT_EQ(report["data"]["worst_batch"]["micro_batch"], p["data"]["worst_batch"]["micro_batch"]);

  testing::Result refused = run({"train", "--plan", plan, "--out", dir.file("run2")});
  EXPECT_EQ(refused.code, 2);
  EXPECT_EQ(refused.err, "loraplan: error: --plan: " + plan + " was made for the data " +
                             dir.file("d.jsonl") + " (batching " + batching +
                             "); give it as --data\n");
  refused =
      run({"train", "--plan", plan, "--data", dir.file("other.jsonl"), "--out", dir.file("run2")});
  EXPECT_EQ(refused.code, 2);
  EXPECT_EQ(refused.err, "loraplan: error: --data: " + dir.file("other.jsonl") +
                             " is not the data " + plan + " was made for (" + dir.file("d.jsonl") +
                             "); plan again with this data\n");
  const std::string other = batching == "longest" ? "fixed" : "longest";
  refused = run({"train", "--plan", plan, "--data", dir.file("d.jsonl"), "--batching", other,
                 "--out", dir.file("run2")});
  EXPECT_EQ(refused.code, 2);
  EXPECT_EQ(refused.err, "loraplan: error: --batching: " + plan + " was made for --batching " +
                             batching + ", not " + other + "\n");
}

TEST(TrainDataEval, TheEvalStepIsPredictedMeasuredAndVerified) {
  TempDir dir;
  write_text(dir.file("d.jsonl"), skewed_rows(120, 128, 3));
  write_text(dir.file("eval.jsonl"), skewed_rows(30, 128, 5));
  const testing::Result r =
      run({"train", "--model", "tiny-llama", "--data", dir.file("d.jsonl"), "--eval-data",
           dir.file("eval.jsonl"), "--eval-every", "3", "--seq-len", "128", "--micro-batch", "4",
           "--grad-accum", "2", "--steps", "7", "--out", dir.file("run")});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(read_text(dir.file("run/report.json")));
  // Rows longest first, 4 at a time: the first eval micro-batch holds the longest row.
  EXPECT_EQ(report["config"]["eval"]["micro_batch"], 4);
  EXPECT_GE(report["config"]["eval"]["seq_len"].get<int64_t>(), 100);
  // Evaluated after steps 3 and 6 and after the last (7).
  std::vector<int64_t> evaluated;
  for (const auto& s : report["steps"]) {
    if (!s["eval_loss"].is_null()) {
      evaluated.push_back(s["step"]);
      EXPECT_GT(s["eval_loss"].get<double>(), 0);
    }
  }
  EXPECT_EQ(evaluated, (std::vector<int64_t>{3, 6, 7}));
  bool measured_eval = false;
  for (const auto& p : report["measured"]["phases"]) measured_eval |= p["name"] == "eval";
  EXPECT_TRUE(measured_eval);
  const testing::Result v = run({"verify", "--run", dir.file("run/report.json")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("  eval "), std::string::npos) << v.out;
}

TEST(TrainDataEval, AWideEvalBatchCanBeThePeak) {
  TempDir dir;
  write_text(dir.file("eval.jsonl"), skewed_rows(30, 128, 5));
  const auto estimate = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"estimate", "--model",   "tiny-llama", "--gpu",
                                     "6GB",      "--seq-len", "128",        "--micro-batch",
                                     "1",        "--format",  "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const testing::Result r = run(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const nlohmann::json plain = estimate({});
  const nlohmann::json with_eval =
      estimate({"--eval-data", dir.file("eval.jsonl"), "--eval-batch", "16"});
  EXPECT_EQ(with_eval["peak_phase"], "eval");
  EXPECT_GT(with_eval["peak_bytes"].get<int64_t>(), plain["peak_bytes"].get<int64_t>());
  EXPECT_EQ(with_eval["config"]["eval"]["micro_batch"], 16);
}

}  // namespace
}  // namespace loraplan::cli
