#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loraplan/planner/model.h"

namespace loraplan::reports {

// What makes two models the same for memory: the family and every dimension (letters as in
// planner/model.h).
struct ModelShape {
  std::string family;  // Hugging Face model_type: "llama", "qwen2", ...
  int64_t vocab = 0, hidden = 0, intermediate = 0;            // V, C, I
  int64_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0;  // L, H, Hkv, D

  bool operator==(const ModelShape&) const = default;
};

// The model a run trained, as report.json's "model" records it.
struct RunModel {
  std::string reference;  // what --model named: a profile or a path
  std::string name;       // the profile name or the file it was read from
  ModelShape shape;
};

RunModel run_model(const std::string& reference, const planner::ModelDesc& m);
nlohmann::json run_model_json(const RunModel& m);  // report.json's "model", as train writes it
// "tiny-llama (llama: V 256, C 64, I 176, L 2, H 4, Hkv 2, D 16)"
std::string model_summary(const RunModel& m);

// report.json's "config", knob by knob, spelled as the configuration flags take them.
struct RunConfig {
  int64_t seq_len = 0, micro_batch = 0, grad_accum = 0;  // T, B, micro-batches per step
  std::string weights;                                   // "nf4", "fp32", ...
  bool double_quant = false;
  int64_t quant_block = 0;  // weights per absmax
  std::string compute_dtype;
  int64_t lora_rank = 0;  // r
  double lora_alpha = 0, lora_dropout = 0;
  std::string lora_targets;  // "q_proj,k_proj,..."
  std::string optimizer;
  std::string checkpoint, offload;  // "none", "all", "layers:0-3,7"
  std::string attention;
  std::string loss;    // "full" | "chunked:TOKENS"
  std::string device;  // "cpu" | "cuda"
};

struct RunPhase {
  std::string name;        // "fwd L0", "loss", "optim", ...
  int64_t peak_bytes = 0;  // most live bytes within the phase, > 0
};

// A run's report.json, every field verify reads checked.
struct RunReport {
  RunModel model;
  RunConfig config;
  nlohmann::json config_as_written;  // "config" itself, for comparing knob by knob
  std::string gpu;                   // "training.gpu": the GPU the run was planned for; "" if none
  int64_t peak_bytes = 0;            // "measured.peak_bytes", > 0
  std::vector<RunPhase> phases;      // "measured.phases", names unique
  bool out_of_memory = false;
  // Out-of-memory splits the run recovered from (report.json "oom_splits"), and the first one as
  // "step 1, micro-batch 1: 4 -> 2 sequences".
  int64_t oom_splits = 0;
  std::string first_split;
  int64_t diverged_step = 0;  // the step whose loss or gradient was not finite; 0: none
  // "data.shapes_run": the micro-batch shapes a run on a dataset ran, each as the first
  // micro-batch of a step (no gradients yet) or a later one; empty: every micro-batch was the
  // configuration's B x T.
  struct Shape {
    int64_t micro_batch = 0, seq_len = 0;
    bool first = false;
  };
  std::vector<Shape> data_shapes;
  std::string error;  // "" when the run completed
};

// Parses report.json text; `where` names it in errors: `run/report.json:12: "measured.phases[3]"
// must be an object, got 5`. Throws only InputError, whatever the text.
RunReport parse_run_report(const std::string& text, const std::string& where);

}  // namespace loraplan::reports
