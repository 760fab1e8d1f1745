// The loraplan command line, run in-process: exit codes, stdout and the one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fixtures/model_files.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/run_report.h"
#include "run_cli.h"

namespace loraplan::cli {
namespace {

using testing::Result;
using testing::run_cli;

TEST(Cli, InspectDefaultModelTable) {
  const Result r = run_cli({"inspect"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("phi-4-mini-instruct (microsoft/Phi-4-mini-instruct)"), std::string::npos);
  EXPECT_NE(r.out.find("total       3,836,021,760  3.84B"), std::string::npos) << r.out;
}

TEST(Cli, InspectJsonHasExactTotal) {
  const Result r =
      run_cli({"inspect", "--model", "smollm2-135m", "--format", "json", "--lora-rank", "16"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["total_params"].get<int64_t>(), 134515008);
  EXPECT_EQ(j["architecture"]["num_key_value_heads"], 3);
  // 30 layers x 16 x (q 1152 + k 768 + v 768 + o 1152 + gate 2112 + up 2112 + down 2112)
  EXPECT_EQ(j["lora"]["trainable_params"].get<int64_t>(), 30 * 16 * 10176);
  EXPECT_EQ(j["params_by_role"]["embedding"].get<int64_t>(), 49152 * 576);
}

TEST(Cli, InspectShowsPositionsAndAttentionSpan) {
  const Result llama = run_cli({"inspect", "--model", "llama-3.2-1b"});
  ASSERT_EQ(llama.code, 0) << llama.err;
  EXPECT_NE(llama.out.find("\n  rope theta 500000, llama3 x32 (original context 8192)\n"),
            std::string::npos)
      << llama.out;
  const Result gemma = run_cli({"inspect", "--model", "gemma-2-2b", "--format", "json"});
  ASSERT_EQ(gemma.code, 0) << gemma.err;
  const nlohmann::json j = nlohmann::json::parse(gemma.out);
  EXPECT_EQ(j["architecture"]["sliding_window"], 4096);
  EXPECT_TRUE(j["architecture"]["rope_scaling"].is_null());
}

TEST(Cli, InspectMarkdownAndTensorList) {
  const Result r = run_cli({"inspect", "--model", "tiny-llama", "--format", "md", "--tensors"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("# tiny-llama\n"), std::string::npos);
  EXPECT_NE(r.out.find("| model.layers.1.mlp.down_proj.weight | [64, 176] | fp32 | mlp | 11,264 |"),
            std::string::npos)
      << r.out;
}

TEST(Cli, VersionAndHelp) {
  const Result v = run_cli({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out.rfind("loraplan 0.1.0 (executor: ", 0), 0u) << v.out;
  const Result h = run_cli({"--help"});
  EXPECT_EQ(h.code, 0);
  for (const Command& c : commands()) EXPECT_NE(h.out.find(c.name), std::string::npos) << c.name;
  const Result sub = run_cli({"inspect", "--help"});
  EXPECT_EQ(sub.code, 0);
  EXPECT_NE(sub.out.find("--lora-rank"), std::string::npos);
}

TEST(Cli, ProfilesListsModelsAndGpus) {
  const Result r = run_cli({"profiles", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GE(j["models"].size(), 22u);
  EXPECT_EQ(j["gpus"].size(), 24u);
}

TEST(Cli, BadInputIsOneLineAndExitTwo) {
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("config.json"),
                                "{\"model_type\": \"llama\",\n\"vocab_size\": }\n");
  loraplan::testing::write_text(dir.file("weights.bin"), "x");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"inspect", "--model", "phi-5"},
       "loraplan: error: --model: \"phi-5\" is neither a file nor a model profile; closest: "
       "phi-3-mini-4k-instruct, phi-4-mini-instruct, gemma-2-2b (see loraplan profiles)\n"},
      {{"inspect", "--model", dir.file("config.json")},
       "loraplan: error: " + dir.file("config.json") +
           ": malformed JSON: parse error at line 2, column 15: syntax error while parsing value - "
           "unexpected '}'; expected '[', '{', or a literal\n"},
      {{"inspect", "--model", dir.file("weights.bin")},
       "loraplan: error: " + dir.file("weights.bin") +
           ": unknown model file type (expected config.json, .safetensors, "
           "model.safetensors.index.json or .onnx)\n"},
      {{"inspect", "--lora-rank", "0"},
       "loraplan: error: --lora-rank: must be a positive integer, got \"0\" (see loraplan "
       "--help)\n"},
      {{"inspect", "--lora-rank", "8x"},
       "loraplan: error: --lora-rank: must be a positive integer, got \"8x\" (see loraplan "
       "--help)\n"},
      {{"inspect", "--format", "xml"},
       "loraplan: error: --format: xml not in {table,json,md} (see loraplan --help)\n"},
      {{"estimat"},
       "loraplan: error: The following argument was not expected: estimat (see loraplan --help)\n"},
  };
  for (const auto& [args, expected] : cases) {
    const Result r = run_cli(args);
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, expected);
  }
}

TEST(Cli, EstimateDefaultCaseJson) {
  const Result r = run_cli({"estimate", "--format", "json"});
  ASSERT_TRUE(r.code == 0 || r.code == 1) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"], "phi-4-mini-instruct");
  EXPECT_EQ(j["budget_bytes"].get<int64_t>(), 6442450944);  // 6GB = 6144 MiB
  EXPECT_EQ(j["config"]["weights"], "nf4");
  EXPECT_EQ(j["config"]["checkpoint"], "all");
  EXPECT_EQ(j["config"]["compute_dtype"], "fp16");
  EXPECT_EQ(j["fits"].get<bool>(), r.code == 0);
  int64_t sum = 0;
  for (const auto& [key, bytes] : j["breakdown"].items()) sum += bytes.get<int64_t>();
  EXPECT_EQ(sum, j["peak_bytes"].get<int64_t>());
  EXPECT_EQ(j["breakdown"]["cuda_context"].get<int64_t>(), 314572800);
  EXPECT_EQ(j["phases"].size(),
            1u + 1 + 1 + 32 + 1 + 32 + 1);  // setup batch embed fwd loss bwd optim
  EXPECT_EQ(j["phases"][3]["name"], "fwd L0");
}

TEST(Cli, EstimateNotesASequencePastTheModelsContext) {
  const char* note =
      "seq-len 8192 is longer than the model's context (max_position_embeddings 4096)";
  const Result past =
      run_cli({"estimate", "--model", "llama-2-7b-hf", "--gpu", "24GB", "--seq-len", "8192"});
  ASSERT_EQ(past.code, 0) << past.err;
  EXPECT_NE(past.out.find(std::string("  note: ") + note), std::string::npos) << past.out;
  const Result json = run_cli({"estimate", "--model", "llama-2-7b-hf", "--gpu", "24GB", "--seq-len",
                               "4096", "--format", "json"});
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["notes"], nlohmann::json::array());
}

TEST(Cli, EstimateCpuHasNoBudgetUnlessGiven) {
  const Result r = run_cli({"estimate", "--model", "tiny-llama", "--device", "cpu",
                            "--compute-dtype", "fp32", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["budget_bytes"].is_null());
  EXPECT_TRUE(j["gpu"].is_null());
  EXPECT_EQ(j["peak_bytes"], j["lower_bound_bytes"]);
}

TEST(Cli, EstimateThatDoesNotFitExitsOneWithFixes) {
  const Result r = run_cli({"estimate", "--model", "llama-3.1-8b", "--gpu", "rtx-4060",
                            "--checkpoint", "none", "--seq-len", "2048", "--micro-batch", "2"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("DOES NOT FIT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("changes that make it fit:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--checkpoint all"), std::string::npos) << r.out;
}

TEST(Cli, TrainWithoutTheExecutorModuleSaysSo) {
  // The test binary has no libloraplan_torch.so beside it.
  loraplan::testing::TempDir dir;
  const Result r = run_cli({"train", "--out", dir.path(), "--steps", "1"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "loraplan: error: train: built without LibTorch; install libtorch-dev "
            "(scripts/install-deps.sh) and rebuild\n");
  const Result bad = run_cli({"train", "--steps", "1"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.err, "loraplan: error: --out is required (see loraplan --help)\n");
}

TEST(Cli, VerifyComparesEveryPhaseWithTheRun) {
  // A report as `loraplan train` writes it, with the prediction of the same flags as its
  // measurement, and then with one phase 5% off.
  const std::vector<std::string> flags = {"--model", "tiny-llama",   "--seq-len",
                                          "16",      "--grad-accum", "1"};
  std::vector<std::string> est = {"estimate", "--device", "cpu", "--compute-dtype",
                                  "fp32",     "--format", "json"};
  est.insert(est.end(), flags.begin(), flags.end());
  const nlohmann::json prediction = nlohmann::json::parse(run_cli(est).out);
  nlohmann::json report;
  report["model"] =
      reports::run_model_json(reports::run_model("tiny-llama", planner::load_model("tiny-llama")));
  report["config"] = prediction["config"];
  report["measured"]["peak_bytes"] = prediction["peak_bytes"];
  report["measured"]["phases"] = prediction["phases"];
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("report.json"), report.dump());
  std::vector<std::string> verify = {"verify", "--run", dir.file("report.json"), "--format",
                                     "json"};
  verify.insert(verify.end(), flags.begin(), flags.end());
  Result r = run_cli(verify);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["max_rel_error"].get<double>(), 0.0);

  report["measured"]["phases"][4]["peak_bytes"] =
      prediction["phases"][4]["peak_bytes"].get<int64_t>() * 100 / 105;
  loraplan::testing::write_text(dir.file("report.json"), report.dump());
  r = run_cli(verify);
  EXPECT_EQ(r.code, 1);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["pass"].get<bool>());
  EXPECT_NEAR(j["max_rel_error"].get<double>(), 0.05, 0.001);

  std::vector<std::string> other = verify;
  other[std::find(other.begin(), other.end(), "16") - other.begin()] = "32";
  r = run_cli(other);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "loraplan: error: " + dir.file("report.json") +
                       ": the run's \"seq_len\" is 16, the flags say 32\n");
}

TEST(Cli, EstimateBadFlags) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--lora-rank", "0"},
       "--lora-rank: must be a positive integer, got \"0\" (see loraplan --help)"},
      {{"--seq-len", "-1"},
       "--seq-len: must be a positive integer, got \"-1\" (see loraplan --help)"},
      {{"--checkpoint", "every:0"}, "--checkpoint: \"every:0\": K in every:K must be positive"},
      {{"--checkpoint", "layers:0,32"},
       "--checkpoint: layer 32 does not exist (the model has layers 0..31)"},
      {{"--compute-dtype", "fp8"},
       "--compute-dtype: fp8 not in {bf16,fp16,fp32} (see loraplan --help)"},
      {{"--weights", "nf3"},
       "--weights: nf3 not in {nf4,fp4,int8,bf16,fp16,fp32} (see loraplan --help)"},
      {{"--gpu", "0GB"}, "--gpu: size must be positive, got \"0GB\""},
      {{"--gpu", "6XB"}, "--gpu: \"6XB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)"},
      {{"--budget", "lots"},
       "--budget: \"lots\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)"},
      {{"--lora-dropout", "1.5"},
       "--lora-dropout: must be a number in [0, 1), got \"1.5\" (see loraplan --help)"},
      {{"--device", "cpu", "--compute-dtype", "fp16"},
       "--compute-dtype: fp16 has no matrix products on CPU in LibTorch 1.13; use bf16 or fp32 "
       "with --device cpu"},
      {{"--lora-targets", "q,gate_up"},
       "--lora-targets: target \"gate_up\" needs a fused layout (phi3); this model has separate "
       "projections"},
  };
  for (const auto& [flags, expected] : cases) {
    std::vector<std::string> args = {"estimate"};
    if (flags[0] == "--lora-targets") args.insert(args.end(), {"--model", "llama-3.2-1b"});
    args.insert(args.end(), flags.begin(), flags.end());
    const Result r = run_cli(args);
    EXPECT_EQ(r.code, 2) << flags[0];
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "loraplan: error: " + expected + "\n");
  }
}

TEST(Cli, PlanWritesTheSamePlanItPrints) {
  loraplan::testing::TempDir dir;
  const std::vector<std::string> args = {"plan", "--model",   "tiny-llama", "--device",
                                         "cpu",  "--budget",  "3MiB",       "--compute-dtype",
                                         "fp32", "--seq-len", "64"};
  std::vector<std::string> write = args;
  write.insert(write.end(), {"-o", dir.file("plan.json")});
  const Result table = run_cli(write);
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("tiny-llama on cpu: budget 3.0 MiB, plans must stay under 2.9 MiB"),
            std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("  wrote " + dir.file("plan.json") + "\n"), std::string::npos);
  std::vector<std::string> json = args;
  json.insert(json.end(), {"--format", "json"});
  const Result j = run_cli(json);
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(j.out, loraplan::testing::read_text(dir.file("plan.json")));  // byte for byte
  const nlohmann::json plan = nlohmann::json::parse(j.out);
  EXPECT_EQ(plan["version"], 1);
  EXPECT_EQ(plan["config"]["micro_batch"].get<int>() * plan["config"]["grad_accum"].get<int>(), 8);
  EXPECT_LE(plan["prediction"]["peak_bytes"].get<int64_t>(),
            plan["hardware"]["limit_bytes"].get<int64_t>());
  EXPECT_EQ(plan["hardware"]["budget_bytes"], 3 << 20);

  // The plan sets the configuration: a flag beside it is refused, naming it.
  const Result both = run_cli({"verify", "--plan", dir.file("plan.json"), "--run",
                               dir.file("plan.json"), "--seq-len", "32"});
  EXPECT_EQ(both.code, 2);
  EXPECT_EQ(both.err,
            "loraplan: error: --seq-len: the plan sets the configuration; give either --plan or "
            "--seq-len\n");
  const Result not_a_run =
      run_cli({"verify", "--plan", dir.file("plan.json"), "--run", dir.file("plan.json")});
  EXPECT_EQ(not_a_run.code, 2);
  EXPECT_NE(not_a_run.err.find("not a loraplan run report"), std::string::npos) << not_a_run.err;
}

TEST(Cli, PlanThatCannotFitExitsOneAndWritesNothing) {
  loraplan::testing::TempDir dir;
  const Result r = run_cli({"plan", "--model", "llama-3.1-8b", "--gpu", "2GB", "--no-offload", "-o",
                            dir.file("plan.json")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("NO PLAN FITS."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("with every layer checkpointed"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("plan.json")));
}

TEST(Cli, SweepRowsPerGpuAndLength) {
  const Result r = run_cli({"sweep", "--model", "smollm2-135m", "--gpus", "t4,2GB", "--seq-lens",
                            "512,2048", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 4u);
  EXPECT_EQ(j["rows"][0]["gpu"], "2GB");  // smallest memory first
  EXPECT_EQ(j["rows"][1]["seq_len"], 2048);
  EXPECT_EQ(j["rows"][2]["gpu"], "t4");
  for (const nlohmann::json& row : j["rows"]) {
    EXPECT_TRUE(row["fits"].get<bool>()) << row.dump();
    EXPECT_EQ(row["micro_batch"].get<int>() * row["grad_accum"].get<int>(), 8);
    EXPECT_LE(row["peak_bytes"].get<int64_t>(), row["memory_bytes"].get<int64_t>() * 95 / 100 + 1);
  }
  // 16 GB hold more of the batch at once than 2 GB.
  EXPECT_GE(j["rows"][2]["micro_batch"].get<int>(), j["rows"][0]["micro_batch"].get<int>());
  const Result table =
      run_cli({"sweep", "--model", "smollm2-135m", "--gpus", "t4", "--seq-lens", "1024"});
  ASSERT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("  t4   15.00 GiB  1024  yes"), std::string::npos) << table.out;
}

TEST(Cli, PlanAndSweepBadFlags) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"plan", "--margin", "150%"},
       "--margin: \"150%\" is not a share of the budget below 100% (examples: 5%, 512MiB)"},
      {{"plan", "--margin", "7GB"}, "--margin: 7GB leaves nothing of the 6.00 GiB budget"},
      {{"plan", "--allow-weights", "nf4,nf3"},
       "--allow-weights: \"nf3\" is not a weight format (nf4, fp4, int8, bf16, fp16, fp32)"},
      {{"plan", "--allow-optimizer", "lion"},
       "--allow-optimizer: \"lion\" is not an optimizer (adamw, adamw-8bit, paged-adamw-8bit, sgd, "
       "sgd-momentum)"},
      {{"plan", "--device", "cpu", "--compute-dtype", "fp32"},
       "--budget: plan needs a memory budget with --device cpu"},
      {{"plan", "--target-batch", "0"},
       "--target-batch: must be a positive integer, got \"0\" (see loraplan --help)"},
      {{"sweep", "--seq-lens", "512,x"}, "--seq-lens: \"x\" is not a positive number of tokens"},
      {{"sweep", "--gpus", "rtx-9090"}, ""},
  };
  for (const auto& [args, expected] : cases) {
    const Result r = run_cli(args);
    EXPECT_EQ(r.code, 2) << args[1];
    EXPECT_EQ(r.out, "");
    if (!expected.empty())
      EXPECT_EQ(r.err, "loraplan: error: " + expected + "\n");
    else
      EXPECT_NE(r.err.find("rtx-9090"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace loraplan::cli
