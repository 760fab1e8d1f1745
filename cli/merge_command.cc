// loraplan merge: the base model with a LoRA adapter merged in, as safetensors for serving.
#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>

#include "app.h"
#include "loraplan/planner/hardware.h"
#include "merge.h"

namespace loraplan::cli {
namespace {

struct MergeFlags {
  std::string model;
  std::string adapter;
  std::string out;
};

}  // namespace

Handler define_merge(CLI::App& sub) {
  auto f = std::make_shared<MergeFlags>();
  sub.add_option("--model", f->model,
                 "The base model's folder (config.json and safetensors, sharded or not)")
      ->required();
  sub.add_option("--adapter", f->adapter,
                 "The adapter: a train --out folder or a PEFT adapter folder "
                 "(adapter_config.json, adapter_model.safetensors)")
      ->required();
  sub.add_option("-o,--out", f->out, "The merged model's folder (new or empty)")->required();
  sub.footer(
      "Each adapted weight becomes W + (lora_alpha / r) B A, summed in fp32 and rounded once to "
      "the weight's dtype; every other tensor, the shard layout, the index, config.json and the "
      "tokenizer files are copied. Host memory holds one adapter pair and one row of a weight.");
  return [f](Io& io) {
    const MergeResult r = merge_adapter(f->model, f->adapter, f->out);
    io.out << "merged " << r.merged << " LoRA weights (" << (r.dtype.empty() ? "-" : r.dtype)
           << ") and copied " << r.copied << " tensors into " << f->out << ": " << r.shards
           << (r.shards == 1 ? " shard, " : " shards, ") << planner::format_bytes(r.bytes) << "\n";
    return kExitOk;
  };
}

}  // namespace loraplan::cli
