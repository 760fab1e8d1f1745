#pragma once
// A plan written as another trainer's configuration: transformers + PEFT + bitsandbytes (hf),
// TRL's `trl sft --config`, axolotl, torchtune and Unsloth. What the trainer cannot express is
// mapped to the nearest knob it can, and each change is said with its cost in predicted memory.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loraplan/planner/plan_file.h"

namespace loraplan::reports {

enum class ExportTarget { kHf, kTrl, kAxolotl, kTorchtune, kUnsloth };

std::optional<ExportTarget> parse_export_target(std::string_view name);
std::string_view export_target_name(ExportTarget t);  // "hf", "trl", ...
std::string export_target_choices(std::string_view separator);

// One knob the target cannot express: what it became, and the predicted peak before and after.
struct ExportChange {
  std::string what;  // "checkpointing 18 of 32 layers is not expressible in transformers: ..."
  int64_t plan_peak_bytes = 0, exported_peak_bytes = 0;
  bool fits = true;  // whether the exported configuration still fits the plan's budget
};

struct Exported {
  std::string text;                   // the file: YAML (trl, axolotl, torchtune) or JSON
  std::vector<ExportChange> changes;  // in the order the knobs are mapped
  planner::TrainConfig config;        // the configuration the file expresses
  int64_t peak_bytes = 0;             // its predicted peak
};

// `plan`'s configuration as `target`'s file. `packing`: the plan's data is packed (plan.json's
// "data.batching"). Throws InputError when the target has no way to run the model at all
// (torchtune without a builder for it).
Exported export_plan(const planner::PlanFile& plan, ExportTarget target, bool packing);

// torchtune's LoRA builders (after "torchtune.models.") by Hugging Face id, base and instruct.
const std::vector<std::pair<std::string_view, std::string_view>>& torchtune_builders();
// The Hugging Face id of a torchtune model component ("torchtune.models.llama3_2.qlora_llama3_2_1b"
// -> "meta-llama/Llama-3.2-1B"); empty when loraplan knows no such builder.
std::string torchtune_model_id(std::string_view component);

// The change's line as stderr and the file's comments say it.
std::string change_text(const ExportChange& c);

}  // namespace loraplan::reports
