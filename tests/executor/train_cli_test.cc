// loraplan train through the command line and the executor module: what it says about its
// weights, where it refuses to write, and how it stops when training stops making numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "../cli/run_cli.h"
#include "fixtures/model_files.h"
#include "fixtures/onnx_writer.h"
#include "loraplan/planner/model_loader.h"

namespace loraplan::cli {
namespace {

namespace fs = std::filesystem;
using loraplan::testing::read_text;
using loraplan::testing::TempDir;
using loraplan::testing::write_text;
using testing::Result;

Result train(std::vector<std::string> args) {
  // The module beside the loraplan binary, as an installed loraplan finds it.
  setenv("LORAPLAN_EXECUTOR_MODULE", LORAPLAN_BINARY_DIR "/cli/libloraplan_torch.so", 1);
  args.insert(args.begin(), "train");
  // Small and quick unless the test says otherwise.
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--steps", "2"}, {"--seq-len", "16"}, {"--micro-batch", "2"}, {"--grad-accum", "1"}}) {
    if (std::find(args.begin(), args.end(), flag) == args.end())
      args.insert(args.end(), {flag, value});
  }
  return testing::run_cli(args);
}

size_t bytes_of(const planner::TensorRecord& t) {
  int64_t bytes = planner::dtype_bytes(t.dtype);
  for (int64_t d : t.shape) bytes *= d;
  return static_cast<size_t>(bytes);
}

nlohmann::json report_in(const std::string& dir) {
  return nlohmann::json::parse(read_text(dir + "/report.json"));
}

TEST(TrainCli, RandomWeightsAreSaidAndClaimNoBaseModel) {
  TempDir out;
  const Result r = train({"--model", "smollm2-135m", "--out", out.path(), "--weights", "fp32",
                          "--lora-rank", "2", "--seq-len", "8", "--micro-batch", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "weights: random (seed 0): smollm2-135m names no weight files, so the frozen weights "
            "are drawn at random");
  EXPECT_EQ(report_in(out.path())["training"]["weights"], "random (seed 0)");
  const nlohmann::json adapter = nlohmann::json::parse(read_text(out.file("adapter_config.json")));
  EXPECT_TRUE(adapter["base_model_name_or_path"].is_null()) << adapter["base_model_name_or_path"];
}

TEST(TrainCli, WeightsFromFilesNameTheirSource) {
  TempDir model, out;
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  write_text(model.file("config.json"), loraplan::testing::config_json_text(m));
  std::vector<std::string>
      zeros;  // finite weights (the fixtures' byte pattern holds NaNs as floats)
  for (const planner::TensorRecord& t : loraplan::testing::records_of(m))
    zeros.push_back(std::string(bytes_of(t), '\0'));
  loraplan::testing::write_safetensors(model.file("model.safetensors"),
                                       loraplan::testing::records_of(m), zeros);
  const Result r = train({"--model", model.path(), "--out", out.path()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("step    1", 0), 0u) << r.out;
  EXPECT_EQ(report_in(out.path())["training"]["weights"], model.path());
  const nlohmann::json adapter = nlohmann::json::parse(read_text(out.file("adapter_config.json")));
  EXPECT_EQ(adapter["base_model_name_or_path"], model.path());
}

TEST(TrainCli, OutputFolderProblemsAreInputErrors) {
  TempDir dir;
  write_text(dir.file("file"), "x");
  for (const auto& [out, message] : std::vector<std::pair<std::string, std::string>>{
           {dir.file("file"), "--out: " + dir.file("file") + " exists and is not a folder"},
           {"", "--out: empty; give a folder"},
           {"/dev/null", "--out: /dev/null exists and is not a folder"},
           {dir.file("file/sub"),
            "--out: cannot create the folder " + dir.file("file/sub") + ": Not a directory"},
       }) {
    const Result r = train({"--out", out});
    EXPECT_EQ(r.code, 2) << out;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "loraplan: error: " + message + "\n");
  }
  EXPECT_EQ(read_text(dir.file("file")), "x");
}

TEST(TrainCli, OnnxWeightsAreRefusedNotReplacedByRandomOnes) {
  TempDir dir;
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  write_text(dir.file("config.json"), loraplan::testing::config_json_text(m));
  loraplan::testing::write_onnx_model(dir.file("m.onnx"), loraplan::testing::records_of(m));
  for (const std::string& model : {dir.file("m.onnx"), dir.path()}) {
    const Result r = train({"--model", model, "--out", dir.file("run")});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(
        r.err,
        "loraplan: error: --model: " + model +
            ": train reads safetensors weights and this model's are ONNX (m.onnx); convert them to "
            "safetensors, or pass its config.json to train on random weights\n");
  }
  EXPECT_FALSE(fs::exists(dir.file("run")));
}

TEST(TrainCli, NonFiniteTrainingStopsAtItsStepWithAMarkedReport) {
  TempDir model, out;
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  write_text(model.file("config.json"), loraplan::testing::config_json_text(m));
  std::vector<planner::TensorRecord> tensors = loraplan::testing::records_of(m);
  std::vector<std::string> data;
  for (const planner::TensorRecord& t : tensors)
    data.push_back(std::string(bytes_of(t), static_cast<char>(0xFF)));  // NaNs
  loraplan::testing::write_safetensors(model.file("model.safetensors"), tensors, data);
  const Result r = train({"--model", model.path(), "--out", out.path(), "--lr", "1e-3"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("STOPPED, NOT FINITE: step 1: the loss is nan; the learning rate may be too "
                       "high (--lr 0.001), "
                       "or the base weights hold non-finite values; no adapter written\n"),
            std::string::npos)
      << r.out;
  const nlohmann::json report = report_in(out.path());
  EXPECT_EQ(report["diverged_step"], 1);
  EXPECT_TRUE(report["files"].empty());
  EXPECT_FALSE(fs::exists(out.file("adapter_model.safetensors")));
}

TEST(TrainCli, WhatTheExecutorCannotRunIsRefusedNotSubstituted) {
  TempDir dir;
  for (const std::string optimizer : {"adamw-8bit", "paged-adamw-8bit"}) {
    const Result r = train({"--optimizer", optimizer, "--out", dir.file("run")});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "loraplan: error: --optimizer " + optimizer +
                         ": the executor does not run 8-bit optimizer state yet (estimate and plan predict it); "
                         "train with adamw, sgd or sgd-momentum\n");
    EXPECT_FALSE(fs::exists(dir.file("run/report.json")));
  }
}

TEST(TrainCli, APlanBringsItsBudget) {
  TempDir dir;
  const std::string plan = dir.file("plan.json");
  const Result made =
      testing::run_cli({"plan", "--model", "tiny-llama", "--device", "cpu", "--budget", "3MiB",
                        "--compute-dtype", "fp32", "--seq-len", "64", "-o", plan});
  ASSERT_EQ(made.code, 0) << made.err;
  setenv("LORAPLAN_EXECUTOR_MODULE", LORAPLAN_BINARY_DIR "/cli/libloraplan_torch.so", 1);
  const Result r =
      testing::run_cli({"train", "--plan", plan, "--steps", "1", "--out", dir.file("run")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(report_in(dir.file("run"))["training"]["budget_bytes"], 3 * 1024 * 1024);
}

}  // namespace
}  // namespace loraplan::cli
