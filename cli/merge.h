#pragma once
// loraplan merge: a model's safetensors with a PEFT LoRA adapter merged in, W + (alpha / r) B A,
// for serving without PEFT. Read and written tensor by tensor, a row at a time: host memory holds
// one adapter pair and a row, never the model.

#include <cstdint>
#include <string>

namespace loraplan::cli {

struct MergeResult {
  int64_t merged = 0;  // weights with a LoRA delta added
  int64_t copied = 0;  // tensors copied as they were
  int64_t shards = 0;
  int64_t bytes = 0;       // of the written safetensors
  std::string dtype;       // the merged weights' dtypes ("bf16"), each the base weight's own
  std::string base_model;  // the adapter's base_model_name_or_path, "" when it names none
};

// Merges `adapter_dir` (adapter_config.json and adapter_model.safetensors, as train and PEFT
// write them; a run folder's) into the model folder `model_dir` (config.json and safetensors,
// sharded or not) and writes the result into `out_dir`, which must not exist or be empty: first
// into a sibling temporary folder, renamed into place once complete. Copies config.json, the
// index and the tokenizer and generation files beside them. Throws InputError naming the file
// and tensor for an adapter that does not fit the model, an unsupported adapter (DoRA, fan-in /
// fan-out, per-module ranks) or a base weight that is not bf16, fp16 or fp32.
MergeResult merge_adapter(const std::string& model_dir, const std::string& adapter_dir,
                          const std::string& out_dir);

}  // namespace loraplan::cli
