#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loraplan/planner/model.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"
#include "loraplan/reports/trainer_import.h"

namespace CLI {
class App;
}

namespace loraplan::cli {

// The configuration flags shared by estimate, plan and train, as typed. Defaults are the case
// our users asked about: Phi-4-mini, QLoRA (NF4 + double quant), fp16, micro-batch 1 x 8,
// gradient checkpointing, 1024 tokens, LoRA r16 on every linear layer, AdamW, a 6 GB GPU.
struct ConfigFlags {
  std::string model = "phi-4-mini-instruct";
  int64_t seq_len = 1024;
  int64_t micro_batch = 1;
  int64_t grad_accum = 8;
  std::string weights = "nf4";
  std::string double_quant = "on";
  std::string compute_dtype = "fp16";
  int64_t lora_rank = 16;
  double lora_alpha = 32;
  double lora_dropout = 0.05;
  std::string lora_targets = "all-linear";
  std::string optimizer = "adamw";
  std::string checkpoint = "all";
  std::string offload = "none";
  std::string attention = "efficient";
  std::string loss = "full";
  std::string device;  // "cuda" | "cpu"; empty means cuda
  std::string gpu;     // profile name or size; empty: 6GB on cuda
  std::string budget;  // size; empty: the GPU's memory (cuda) or none (cpu)
};

// Defaults of the commands that run the executor on this machine (train, verify): a tiny model,
// fp32 compute, the CPU.
ConfigFlags executor_flags();

// searched_knobs = false leaves out the flags plan and sweep choose themselves (micro-batch,
// accumulation, checkpoint, offload, attention, loss); device_flags = false leaves out --device,
// --gpu and --budget (sweep).
void add_config_flags(CLI::App& sub, ConfigFlags& f, bool searched_knobs = true,
                      bool device_flags = true);

// Resolves the flags against the model; throws InputError naming the flag on bad values.
// With --plan, the plan sets every knob: a configuration flag given as well is an error naming it
// (--budget and --device excepted, which say where the plan runs).
void refuse_config_flags_with_plan(const CLI::App& sub);

// What a run is: from --plan (refusing configuration flags beside it) or from the flags.
struct RunSpec {
  std::string model_spec;  // what names the model: --model, or the plan's reference
  planner::ModelDesc model;
  planner::TrainConfig config;
  planner::DeviceModel device;
};
RunSpec resolve_run(const CLI::App& sub, const ConfigFlags& f, const std::string& plan);

// --from FILE (estimate, plan): another trainer's configuration as these flags.
void add_from_flag(CLI::App& sub, std::string& path);

// What --from did: the file's reading, and how each knob it sets met the command line.
struct FromApplied {
  reports::FromConfig file;
  std::vector<std::string> overridden;  // the file's fields a flag on the command line replaced
  std::vector<std::string> searched;    // the file's fields plan chooses itself
  std::vector<reports::FromSetting> defaults;  // trainer defaults taken for knobs left unset
  std::string batching;                        // "packed" when it set --batching
};

// Reads --from's file and sets each flag it gives that the command line does not (the command
// line wins). `batching`: --batching, set to "packed" when the trainer packs and --data is given.
// Throws InputError at the file's line for a model or LoRA target the file names that is wrong.
FromApplied apply_from(const CLI::App& sub, const std::string& path, ConfigFlags& f,
                       std::string* batching, bool has_data);

// estimate --format json's "from": {"path", "trainer", "used", "ignored", ...}.
nlohmann::json from_json(const FromApplied& a);
// The lines said on stderr: what was read, ignored, overridden, not modelled and defaulted.
std::string from_text(const FromApplied& a);

planner::TrainConfig resolve_config(const ConfigFlags& f, const planner::ModelDesc& m);
planner::DeviceModel resolve_device(const ConfigFlags& f);

}  // namespace loraplan::cli
