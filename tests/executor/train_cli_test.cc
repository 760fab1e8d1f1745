// loraplan train through the command line and the executor module: what it says about its
// weights, where it refuses to write, and how it stops when training stops making numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

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
    const Result r =
        train({"--optimizer", optimizer, "--device", "cuda", "--out", dir.file("run")});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "loraplan: error: --optimizer " + optimizer +
                         ": the executor does not run it on cuda (--device cpu does); on cuda "
                         "train with adamw, sgd or sgd-momentum\n");
    EXPECT_FALSE(fs::exists(dir.file("run/report.json")));
  }
}

TEST(TrainCli, AnLmHeadBiasIsRefusedNotDropped) {
  TempDir dir;
  planner::ModelDesc m = planner::load_model("tiny-llama");
  m.lm_head_bias = true;
  nlohmann::json config = nlohmann::json::parse(loraplan::testing::config_json_text(m));
  config["lm_head_bias"] = true;
  write_text(dir.file("config.json"), config.dump());
  const Result r = train({"--model", dir.file("config.json"), "--out", dir.file("run")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "loraplan: error: lm_head.bias: the executor does not apply an lm_head bias yet "
            "(estimate and plan count "
            "it); train runs models without one\n");
}

// The values a flag offers, as `train --help` lists them: "--weights TEXT:{nf4,fp4,...}=nf4".
std::vector<std::string> choices_of(const std::string& help, const std::string& flag) {
  const size_t at = help.find("  " + flag + " TEXT:{");
  EXPECT_NE(at, std::string::npos) << flag;
  if (at == std::string::npos) return {};
  const size_t open = help.find('{', at), close = help.find('}', at);
  std::vector<std::string> out;
  std::stringstream list(help.substr(open + 1, close - open - 1));
  for (std::string v; std::getline(list, v, ',');) out.push_back(v);
  return out;
}

// Every value of every knob train takes either runs as the planner predicts it (verify passes on
// the run) or is refused by name: never substituted.
TEST(TrainCli, EveryKnobValueRunsAsPredictedOrIsRefused) {
  const std::string help = testing::run_cli({"train", "--help"}).out;
  std::vector<std::pair<std::string, std::vector<std::string>>> knobs;
  for (const char* flag :
       {"--weights", "--double-quant", "--compute-dtype", "--optimizer", "--attention"}) {
    knobs.emplace_back(flag, choices_of(help, flag));
  }
  knobs.push_back({"--checkpoint", {"none", "all", "every:2"}});
  knobs.push_back({"--offload", {"none", "1"}});
  knobs.push_back({"--loss", {"full", "chunked:8"}});
  knobs.push_back({"--lora-dropout", {"0", "0.1"}});
  knobs.push_back({"--lora-targets", {"q,v", "all-linear"}});
  int ran = 0, refused = 0;
  for (const auto& [flag, values] : knobs) {
    for (const std::string& value : values) {
      TempDir dir;
      const Result t = train({"--model", "tiny-llama", "--lora-rank", "64", "--grad-accum", "2",
                              "--steps", "1", flag, value, "--out", dir.path()});
      if (t.code == 2) {
        EXPECT_EQ(t.err.rfind("loraplan: error: " + flag, 0), 0u)
            << flag << " " << value << ": " << t.err;
        ++refused;
        continue;
      }
      ASSERT_EQ(t.code, 0) << flag << " " << value << ": " << t.err;
      const Result v = testing::run_cli({"verify", "--run", dir.file("report.json")});
      EXPECT_EQ(v.code, 0) << flag << " " << value << ": " << v.out << v.err;
      ++ran;
    }
  }
  EXPECT_EQ(refused, 1);  // fp16 compute on the CPU
  EXPECT_GE(ran, 20);
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

// Offloaded weights live in host memory: a run that needs more than the system has is refused
// before anything is written, one close to it is warned about (the figure is tiny-llama's 2
// offloaded layers, 62,864 B in nf4).
TEST(TrainCli, HostMemoryBeyondWhatIsAvailableIsRefusedBeforeTraining) {
  TempDir dir;
  setenv("LORAPLAN_HOST_MEMORY_AVAILABLE", "50KiB", 1);
  Result r = train({"--model", "tiny-llama", "--offload", "2", "--out", dir.file("run")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "loraplan: error: host memory: the run needs 61.4 KiB (offloaded weights and paged "
            "optimizer state 61.4 KiB) beside LibTorch itself, more than the 50.0 KiB this system "
            "has available; offload fewer layers (--offload) or keep the optimizer state on the "
            "device (adamw-8bit)\n");
  EXPECT_FALSE(fs::exists(dir.file("run")));
  setenv("LORAPLAN_HOST_MEMORY_AVAILABLE", "70KiB", 1);
  r = train({"--model", "tiny-llama", "--offload", "2", "--out", dir.file("run")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err,
            "loraplan: warning: host memory: the run needs 61.4 KiB (offloaded weights and paged "
            "optimizer state 61.4 KiB) of the 70.0 KiB available\n");
  unsetenv("LORAPLAN_HOST_MEMORY_AVAILABLE");
}

}  // namespace
}  // namespace loraplan::cli
