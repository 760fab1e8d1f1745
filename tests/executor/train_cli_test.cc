// loraplan train through the command line and the executor module: what it says about its
// weights, where it refuses to write, and how it stops when training stops making numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "../cli/run_cli.h"
#include "fixtures/model_files.h"
#include "fixtures/onnx_writer.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/readers.h"

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

// What train writes merges back into the weights it trained on: every adapted linear, each
// W + (alpha / r) B A recomputed here from the adapter file.
TEST(TrainCli, TheAdapterMergesIntoTheWeightsItTrainedOn) {
  TempDir model, out, merged_root;
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  write_text(model.file("config.json"), loraplan::testing::config_json_text(m));
  std::vector<planner::TensorRecord> records = loraplan::testing::records_of(m);
  std::vector<std::string> data;
  for (planner::TensorRecord& t : records) {
    t.dtype = planner::DType::kF32;
    std::string bytes(bytes_of(t), '\0');
    for (size_t i = 0; i < bytes.size() / 4; ++i) {
      const float v = 0.01f * static_cast<float>(static_cast<int>(i % 13) - 6);
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
    data.push_back(std::move(bytes));
  }
  loraplan::testing::write_safetensors(model.file("model.safetensors"), records, data);
  const Result r = train({"--model", model.path(), "--out", out.path(), "--steps", "3",
                          "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string merged = merged_root.file("merged");
  const Result mr =
      testing::run_cli({"merge", "--model", model.path(), "--adapter", out.path(), "-o", merged});
  ASSERT_EQ(mr.code, 0) << mr.err;
  const int64_t adapted = 7 * m.layers;  // q, k, v, o, gate, up, down
  EXPECT_EQ(mr.out.rfind("merged " + std::to_string(adapted) + " LoRA weights (fp32) and copied " +
                             std::to_string(static_cast<int64_t>(records.size()) - adapted) +
                             " tensors into " + merged + ": 1 shard, ",
                         0),
            0u)
      << mr.out;
  // One weight by hand: layer 0's down_proj, scale 8 / 4.
  const std::string name = "model.layers.0.mlp.down_proj.weight";
  auto tensor = [](const std::string& file, const std::string& n) {
    for (const planner::TensorRecord& t : planner::read_safetensors_tensors(file)) {
      if (t.name != n) continue;
      std::vector<float> v(bytes_of(t) / 4);
      std::memcpy(v.data(), read_text(t.file).data() + t.offset, v.size() * 4);
      return std::pair{t.shape, v};
    }
    return std::pair{std::vector<int64_t>{}, std::vector<float>{}};
  };
  const auto [shape, w] = tensor(model.file("model.safetensors"), name);
  const auto [shape_out, got] = tensor(merged + "/model.safetensors", name);
  const std::string lora = out.file("adapter_model.safetensors");
  const auto [a_shape, a] =
      tensor(lora, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
  const auto [b_shape, b] =
      tensor(lora, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
  ASSERT_EQ(shape_out, shape);
  ASSERT_EQ(a_shape, (std::vector<int64_t>{4, shape[1]}));
  ASSERT_EQ(b_shape, (std::vector<int64_t>{shape[0], 4}));
  double delta = 0;
  for (int64_t o = 0; o < shape[0]; ++o) {
    for (int64_t i = 0; i < shape[1]; ++i) {
      double want = w[o * shape[1] + i];
      for (int64_t k = 0; k < 4; ++k) want += 2.0 * b[o * 4 + k] * a[k * shape[1] + i];
      EXPECT_NEAR(got[o * shape[1] + i], want, 1e-6 * (1 + std::abs(want)));
      delta = std::max(delta, std::abs(want - w[o * shape[1] + i]));
    }
  }
  EXPECT_GT(delta, 1e-7);  // three steps moved B off zero
  // The embedding is copied byte for byte.
  EXPECT_EQ(tensor(merged + "/model.safetensors", "model.embed_tokens.weight").second,
            tensor(model.file("model.safetensors"), "model.embed_tokens.weight").second);
  EXPECT_EQ(read_text(merged + "/config.json"), read_text(model.file("config.json")));
}

// The first step's memory over time: every allocation and free, its highest point the step's
// measured peak, every phase of the step in it; as a Chrome trace too. --trace-step 0: none.
TEST(TrainCli, TheTracedStepsTimelineReachesItsMeasuredPeak) {
  TempDir out, none;
  const Result r = train({"--out", out.path(), "--steps", "2", "--trace", out.file("t.json")});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json report = report_in(out.path());
  const nlohmann::json t = nlohmann::json::parse(read_text(out.file("timeline.json")));
  EXPECT_EQ(t["step"], 1);
  EXPECT_EQ(t["device"], "cpu");
  EXPECT_EQ(report["timeline"]["file"], "timeline.json");
  EXPECT_EQ(report["timeline"]["events"], t["events"]);
  int64_t top = 0, last_event = -1;
  std::set<int64_t> phases;
  for (const nlohmann::json& p : t["points"]) {
    EXPECT_GT(p[0].get<int64_t>(), last_event);
    last_event = p[0].get<int64_t>();
    top = std::max(top, p[1].get<int64_t>());
    phases.insert(p[2].get<int64_t>());
  }
  const nlohmann::json& step1 = report["steps"][0];
  EXPECT_EQ(top, step1["peak_bytes"].get<int64_t>());
  // The step's phases (report.json: name -> peak) are the timeline's, each with its peak there.
  EXPECT_EQ(t["phases"].size(), step1["phases"].size());
  for (size_t i = 0; i < t["phases"].size(); ++i) {
    const std::string name = t["phases"][i];
    ASSERT_TRUE(step1["phases"].contains(name)) << name;
    EXPECT_TRUE(phases.count(static_cast<int64_t>(i))) << name;
    int64_t phase_top = 0;
    for (const nlohmann::json& p : t["points"]) {
      if (p[2].get<int64_t>() == static_cast<int64_t>(i))
        phase_top = std::max(phase_top, p[1].get<int64_t>());
    }
    EXPECT_LE(phase_top, step1["phases"][name].get<int64_t>()) << name;
  }
  const nlohmann::json trace = nlohmann::json::parse(read_text(out.file("t.json")));
  int64_t trace_top = 0;
  for (const nlohmann::json& e : trace["traceEvents"]) {
    if (e["ph"] == "C" && e["name"] == "total")
      trace_top = std::max(trace_top, e["args"]["bytes"].get<int64_t>());
  }
  EXPECT_EQ(trace_top, top);
  // verify --format html draws that timeline over the prediction, phase by phase.
  const Result page =
      testing::run_cli({"verify", "--run", out.file("report.json"), "--format", "html"});
  ASSERT_EQ(page.code, 0) << page.err;
  EXPECT_NE(page.out.find("<polyline class=\"measured\""), std::string::npos);
  EXPECT_NE(page.out.find("PASS: max |error|"), std::string::npos);
  EXPECT_NE(page.out.find("Black line: step 1 as measured (cpu, " +
                          std::to_string(t["events"].get<int64_t>()) + " allocations and frees)"),
            std::string::npos);
  // report RUN_DIR writes that page, with the run's loss and tokens/s over its steps.
  const Result rep = testing::run_cli({"report", out.path(), "-o", out.file("run.html")});
  ASSERT_EQ(rep.code, 0) << rep.err;
  EXPECT_EQ(rep.out, "wrote " + out.file("run.html") + "\n");
  const std::string html = read_text(out.file("run.html"));
  EXPECT_NE(html.find("<polyline class=\"measured\""), std::string::npos);
  EXPECT_NE(html.find("<title>loss by step</title>"), std::string::npos);
  EXPECT_NE(html.find("<title>step 2: "), std::string::npos);
  const Result nowhere = testing::run_cli({"report", out.file("nowhere")});
  EXPECT_EQ(nowhere.code, 2);
  EXPECT_EQ(nowhere.err, "loraplan: error: RUN_DIR: " + out.file("nowhere") +
                             " holds no report.json (a train --out folder)\n");
  const Result off = train({"--out", none.path(), "--trace-step", "0"});
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_FALSE(fs::exists(none.file("timeline.json")));
  EXPECT_FALSE(report_in(none.path()).contains("timeline"));
  const Result plain =
      testing::run_cli({"verify", "--run", none.file("report.json"), "--format", "html"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("class=\"measured\""), std::string::npos);
  EXPECT_NE(plain.out.find("Predicted only: the run folder has no timeline.json"),
            std::string::npos);
}

// A run that ran out of memory: verify refuses it, report draws how far it got.
TEST(TrainCli, TheReportOfARunOutOfMemoryShowsWhereItStopped) {
  TempDir out;
  const Result r = train({"--out", out.path(), "--micro-batch", "1", "--budget", "760KiB"});
  ASSERT_EQ(r.code, 1) << r.out << r.err;
  ASSERT_NE(r.out.find("OUT OF MEMORY"), std::string::npos) << r.out;
  const Result v = testing::run_cli({"verify", "--run", out.file("report.json")});
  EXPECT_EQ(v.code, 2);
  const Result rep = testing::run_cli({"report", out.path()});
  ASSERT_EQ(rep.code, 0) << rep.err;
  EXPECT_NE(rep.out.find("class=\"verdict over stopped\""), std::string::npos);
  EXPECT_NE(rep.out.find("the run stopped out of memory"), std::string::npos);
  EXPECT_NE(rep.out.find("<polyline class=\"measured\""), std::string::npos);  // step 1, partly
  EXPECT_NE(rep.out.find("not measured"), std::string::npos);
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
