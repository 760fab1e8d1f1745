// loraplan inspect: what a model is made of, read from a profile or the user's own files.
#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>

#include "app.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/summary.h"
#include "loraplan/reports/inspect_report.h"

namespace loraplan::cli {

namespace {

struct InspectFlags {
  std::string model = "phi-4-mini-instruct";
  std::string format = "table";
  int64_t lora_rank = 0;
  std::string lora_targets = "all-linear";
  bool tensors = false;
};

}  // namespace

void add_model_flag(CLI::App& sub, std::string& model) {
  sub.add_option("--model", model,
                 "Model: a profile name (see loraplan profiles), a config.json, a model "
                 "directory (config.json and/or *.safetensors), a .safetensors file, a "
                 "model.safetensors.index.json or an .onnx file")
      ->default_str(model);
}

Handler define_inspect(CLI::App& sub) {
  auto f = std::make_shared<InspectFlags>();
  add_model_flag(sub, f->model);
  add_format_flag(sub, f->format);
  sub.add_option("--lora-rank", f->lora_rank, "Also count trainable LoRA parameters at this rank")
      ->check(positive_integer());
  sub.add_option("--lora-targets", f->lora_targets,
                 "LoRA targets: q,k,v,o,gate,up,down (any subset) or all-linear")
      ->default_str(f->lora_targets);
  sub.add_flag("--tensors", f->tensors, "List every parameter tensor");
  return [f](Io& io) {
    const planner::ModelDesc model = planner::load_model(f->model);
    const std::vector<planner::TensorSpec> tensors = planner::inventory(model);
    const planner::ModelSummary summary = planner::summarize(
        model, tensors, {.lora_rank = f->lora_rank, .lora_targets = f->lora_targets});
    const reports::InspectView view{model, tensors, summary, f->tensors};
    if (f->format == "json")
      io.out << reports::inspect_json(view).dump(2) << "\n";
    else if (f->format == "md")
      io.out << reports::inspect_markdown(view);
    else
      io.out << reports::inspect_text(view);
    return kExitOk;
  };
}

}  // namespace loraplan::cli
