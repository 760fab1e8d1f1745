#pragma once
// Another trainer's configuration read as loraplan's flags (`estimate|plan --from FILE`): an
// axolotl YAML, transformers/TRL training arguments (JSON or YAML, flat as `trl sft --config` takes
// them, or nested as `loraplan export --to hf|unsloth` writes them) and a torchtune recipe config.
// Each field is used (it sets a knob), ignored (it does not change memory), not modelled (it
// would change memory and loraplan leaves it out, saying so) or refused (exit 2). A knob the file
// leaves unset takes the trainer's own default, which the result lists.

#include <cstdint>
#include <string>
#include <vector>

#include "loraplan/reports/export.h"

namespace loraplan::reports {

// One loraplan flag the file sets, or a trainer default for one it leaves unset.
struct FromSetting {
  std::string flag;   // "--seq-len"
  std::string value;  // as the flag takes it: "2048", "nf4", "q_proj,v_proj"
  std::string field;  // the file's field ("sequence_len", "model.lora_rank"); empty for a default
  int line = 0;       // the field's line, 0 for a default
  std::string why;    // a default's source: "transformers' default"
};

struct FromConfig {
  ExportTarget trainer = ExportTarget::kHf;  // whose file it is (hf covers TRL's flat layout)
  std::string path;
  std::vector<FromSetting> settings;      // file order, then the defaults
  std::vector<std::string> used;          // the fields that set a knob
  std::vector<std::string> ignored;       // present, unset (null) or without effect on memory
  std::vector<std::string> not_modelled;  // "torch_compile: ..." fields that change memory
  bool packed = false;                    // the trainer packs sequences (sample_packing, packing)
  // torchtune's CEWithChunkedOutputLoss: the loss in this many chunks of the micro-batch's tokens
  // (the chunk's size follows --micro-batch and --seq-len); 0 when the loss is whole.
  int64_t loss_chunks = 0;
};

// Reads `path`. Throws InputError ("cfg.yml:12: micro_batch_size: ...") on a file that cannot be
// read or parsed, a field no trainer of its kind has, a bad value, or a setting loraplan cannot
// plan (a full fine-tune, DeepSpeed/FSDP, RL trainers, ...).
FromConfig read_trainer_config(const std::string& path);

// "axolotl", "transformers/TRL", "torchtune", "Unsloth".
std::string trainer_display_name(ExportTarget t);

}  // namespace loraplan::reports
