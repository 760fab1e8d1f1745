#include "config_flags.h"

#include <CLI/CLI.hpp>
#include <map>

#include "app.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/planner/text.h"

namespace loraplan::cli {

ConfigFlags executor_flags() {
  ConfigFlags f;
  f.model = "tiny-llama";
  f.compute_dtype = "fp32";
  f.device = "cpu";
  return f;
}

void add_config_flags(CLI::App& sub, ConfigFlags& f, bool searched_knobs, bool device_flags) {
  add_model_flag(sub, f.model);
  sub.add_option("--seq-len", f.seq_len, "Tokens per sequence (T)")
      ->check(positive_integer())
      ->default_str(std::to_string(f.seq_len));
  if (searched_knobs) {
    sub.add_option("--micro-batch", f.micro_batch, "Sequences per forward/backward (B)")
        ->check(positive_integer())
        ->default_str(std::to_string(f.micro_batch));
    sub.add_option("--grad-accum", f.grad_accum, "Micro-batches per optimizer step")
        ->check(positive_integer())
        ->default_str(std::to_string(f.grad_accum));
  }
  sub.add_option("--weights", f.weights,
                 "Frozen linear weights: " + planner::weight_format_choices("|"))
      ->check(CLI::IsMember(names_of(planner::weight_formats())))
      ->default_str(f.weights);
  sub.add_option("--double-quant", f.double_quant,
                 "NF4/FP4: quantize the absmax values again (8 bits, blocks of 256)")
      ->check(CLI::IsMember({"on", "off"}))
      ->default_str(f.double_quant);
  sub.add_option("--compute-dtype", f.compute_dtype, "Activations and matmuls: bf16|fp16|fp32")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}))
      ->default_str(f.compute_dtype);
  sub.add_option("--lora-rank", f.lora_rank, "LoRA rank r")
      ->check(positive_integer())
      ->default_str(std::to_string(f.lora_rank));
  sub.add_option("--lora-alpha", f.lora_alpha, "LoRA alpha (scaling alpha / r)")
      ->check(positive_number())
      ->default_str("32");
  sub.add_option("--lora-dropout", f.lora_dropout, "LoRA dropout probability (0 keeps no masks)")
      ->check(probability())
      ->default_str("0.05");
  sub.add_option("--lora-targets", f.lora_targets,
                 "q,k,v,o,gate,up,down (any subset) or all-linear")
      ->default_str(f.lora_targets);
  sub.add_option("--optimizer", f.optimizer, planner::optimizer_choices("|"))
      ->check(CLI::IsMember(names_of(planner::optimizers())))
      ->default_str(f.optimizer);
  if (searched_knobs) {
    sub.add_option("--checkpoint", f.checkpoint,
                   "Gradient checkpointing: none|all|every:K|layers:0,3,5")
        ->default_str(f.checkpoint);
    sub.add_option(
           "--offload", f.offload,
           "Layers whose frozen weights live in host memory: N (the first N)|layers:0,3|none")
        ->default_str(f.offload);
    sub.add_option("--attention", f.attention, "eager (keeps B*H*T*T probabilities) | efficient")
        ->check(CLI::IsMember({"eager", "efficient"}))
        ->default_str(f.attention);
    sub.add_option("--loss", f.loss, "full (B*T*V logits) | chunked:TOKENS")->default_str(f.loss);
  }
  if (!device_flags) return;
  sub.add_option("--device", f.device,
                 "cuda (default) | cpu (predicts the CPU executor: exact bytes, no context)")
      ->check(CLI::IsMember({"cuda", "cpu"}));
  sub.add_option(
         "--gpu", f.gpu,
         "GPU profile (see loraplan profiles) or memory size: 6GB means a 6 GB card as sold "
         "(6144 MiB); 6GiB, 6144MiB and 12G work too. Implies --device cuda")
      ->default_str("6GB");
  sub.add_option("--budget", f.budget,
                 "Memory budget (a size), overriding the GPU's memory; with --device cpu, the "
                 "executor's limit");
}

void refuse_config_flags_with_plan(const CLI::App& sub) {
  for (const char* name :
       {"--model", "--seq-len", "--micro-batch", "--grad-accum", "--weights", "--double-quant",
        "--compute-dtype", "--lora-rank", "--lora-alpha", "--lora-dropout", "--lora-targets",
        "--optimizer", "--checkpoint", "--offload", "--attention", "--loss", "--gpu"}) {
    const CLI::Option* o = sub.get_option_no_throw(name);
    if (o && o->count() > 0) {
      throw InputError(std::string(name) +
                       ": the plan sets the configuration; give either --plan or " + name);
    }
  }
}

RunSpec resolve_run(const CLI::App& sub, const ConfigFlags& f, const std::string& plan) {
  RunSpec r;
  if (plan.empty()) {
    r.model_spec = f.model;
    r.model = planner::load_model(f.model);
    r.config = resolve_config(f, r.model);
    r.device = resolve_device(f);
    return r;
  }
  refuse_config_flags_with_plan(sub);
  planner::PlanFile p = planner::read_plan(plan);
  r.model_spec = p.model_reference;
  r.model = std::move(p.model);
  r.config = p.config;
  r.device = p.device == planner::Device::kCpu
                 ? planner::cpu_device(p.budget_bytes)
                 : planner::cuda_device(planner::resolve_gpu(p.gpu), p.budget_bytes);
  return r;
}

void add_from_flag(CLI::App& sub, std::string& path) {
  sub.add_option("--from", path,
                 "An axolotl YAML, transformers/TRL training arguments (JSON or YAML) or a "
                 "torchtune config: its knobs set the flags not given here (docs/frameworks.md)");
}

namespace {

// The ConfigFlags field a flag sets, from the text --from gives it.
using Setter = void (*)(ConfigFlags&, const std::string&);
const std::map<std::string, Setter, std::less<>>& setters() {
  static const std::map<std::string, Setter, std::less<>> m = {
      {"--model", [](ConfigFlags& f, const std::string& v) { f.model = v; }},
      {"--seq-len", [](ConfigFlags& f, const std::string& v) { f.seq_len = std::stoll(v); }},
      {"--micro-batch",
       [](ConfigFlags& f, const std::string& v) { f.micro_batch = std::stoll(v); }},
      {"--grad-accum", [](ConfigFlags& f, const std::string& v) { f.grad_accum = std::stoll(v); }},
      {"--weights", [](ConfigFlags& f, const std::string& v) { f.weights = v; }},
      {"--double-quant", [](ConfigFlags& f, const std::string& v) { f.double_quant = v; }},
      {"--compute-dtype", [](ConfigFlags& f, const std::string& v) { f.compute_dtype = v; }},
      {"--lora-rank", [](ConfigFlags& f, const std::string& v) { f.lora_rank = std::stoll(v); }},
      {"--lora-alpha", [](ConfigFlags& f, const std::string& v) { f.lora_alpha = std::stod(v); }},
      {"--lora-dropout",
       [](ConfigFlags& f, const std::string& v) { f.lora_dropout = std::stod(v); }},
      {"--lora-targets", [](ConfigFlags& f, const std::string& v) { f.lora_targets = v; }},
      {"--optimizer", [](ConfigFlags& f, const std::string& v) { f.optimizer = v; }},
      {"--checkpoint", [](ConfigFlags& f, const std::string& v) { f.checkpoint = v; }},
      {"--attention", [](ConfigFlags& f, const std::string& v) { f.attention = v; }},
      {"--loss", [](ConfigFlags& f, const std::string& v) { f.loss = v; }},
  };
  return m;
}

bool given(const CLI::App& sub, const std::string& flag) {
  const CLI::Option* o = sub.get_option_no_throw(flag);
  return o && o->count() > 0;
}

void add_once(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

}  // namespace

FromApplied apply_from(const CLI::App& sub, const std::string& path, ConfigFlags& f,
                       std::string* batching, bool has_data) {
  FromApplied a;
  a.file = reports::read_trainer_config(path);
  const reports::FromSetting* model_setting = nullptr;
  const reports::FromSetting* targets_setting = nullptr;
  std::vector<std::string> applied;  // fields whose setting took effect
  for (const reports::FromSetting& s : a.file.settings) {
    if (!sub.get_option_no_throw(s.flag)) {
      if (!s.field.empty()) add_once(a.searched, s.field);
      continue;
    }
    if (given(sub, s.flag)) {
      if (!s.field.empty()) add_once(a.overridden, s.field);
      continue;
    }
    if (!s.field.empty()) add_once(applied, s.field);
    setters().at(s.flag)(f, s.value);
    if (s.field.empty()) a.defaults.push_back(s);
    if (s.flag == "--model") model_setting = &s;
    if (s.flag == "--lora-targets") targets_setting = &s;
  }
  if (!model_setting && !given(sub, "--model")) {
    throw InputError(path + ": names no model (base_model, model_name_or_path or " +
                     "model._component_); pass --model");
  }
  // A field is used when one of its settings took effect, or it set no flag at all (bf16: false).
  std::erase_if(a.file.used, [&](const std::string& field) {
    const bool sets_a_flag =
        std::any_of(a.file.settings.begin(), a.file.settings.end(),
                    [&](const reports::FromSetting& s) { return s.field == field; });
    return sets_a_flag && std::find(applied.begin(), applied.end(), field) == applied.end();
  });
  // What the file names must exist here; say so at its line.
  planner::ModelDesc model;
  try {
    model = planner::load_model(f.model);
  } catch (const InputError& e) {
    if (!model_setting) throw;
    throw InputError(
        located(path, model_setting->line,
                model_setting->field + ": \"" + f.model +
                    "\" is neither a local model folder nor a model profile loraplan "
                    "knows; pass --model with a profile or folder (loraplan profiles)"));
  }
  if (targets_setting) {
    try {
      planner::parse_lora_targets(f.lora_targets, model, targets_setting->field);
    } catch (const InputError& e) {
      throw InputError(located(path, targets_setting->line, e.what()));
    }
  }
  // torchtune's and axolotl's chunked loss: a number of chunks of the micro-batch's tokens.
  if (a.file.loss_chunks > 0 && sub.get_option_no_throw("--loss") && !given(sub, "--loss")) {
    const int64_t N = f.micro_batch * f.seq_len;
    f.loss = "chunked:" + std::to_string((N + a.file.loss_chunks - 1) / a.file.loss_chunks);
  }
  if (a.file.packed && has_data && batching && batching->empty()) {
    *batching = "packed";
    a.batching = "packed";
  }
  return a;
}

nlohmann::json from_json(const FromApplied& a) {
  nlohmann::json defaults = nlohmann::json::array();
  for (const reports::FromSetting& s : a.defaults)
    defaults.push_back({{"flag", s.flag}, {"value", s.value}, {"why", s.why}});
  nlohmann::json j = {{"path", a.file.path},
                      {"trainer", reports::trainer_display_name(a.file.trainer)},
                      {"used", a.file.used},
                      {"ignored", a.file.ignored},
                      {"not_modelled", a.file.not_modelled},
                      {"overridden", a.overridden},
                      {"defaults", defaults}};
  if (!a.searched.empty()) j["searched"] = a.searched;
  if (!a.batching.empty()) j["batching"] = a.batching;
  return j;
}

std::string from_text(const FromApplied& a) {
  auto list = [](const std::vector<std::string>& v) { return planner::join(v, ", "); };
  std::string out = "from " + reports::trainer_display_name(a.file.trainer) + " config " +
                    a.file.path + ": used " + list(a.file.used) + "\n";
  if (!a.file.ignored.empty())
    out += "  ignored (no effect on memory): " + list(a.file.ignored) + "\n";
  if (!a.overridden.empty())
    out += "  overridden by the command line: " + list(a.overridden) + "\n";
  if (!a.searched.empty()) out += "  chosen by plan instead: " + list(a.searched) + "\n";
  for (const reports::FromSetting& s : a.defaults)
    out += "  not set: " + s.flag + " " + s.value + " (" + s.why + ")\n";
  for (const std::string& n : a.file.not_modelled) out += "  not modelled: " + n + "\n";
  if (!a.batching.empty()) out += "  --batching packed (the trainer packs sequences)\n";
  return out;
}

planner::TrainConfig resolve_config(const ConfigFlags& f, const planner::ModelDesc& m) {
  using namespace planner;
  TrainConfig c;
  c.seq_len = f.seq_len;
  c.micro_batch = f.micro_batch;
  c.grad_accum = f.grad_accum;
  c.weights.format = *parse_weight_format(f.weights);
  c.weights.double_quant = f.double_quant == "on";
  c.compute = *parse_dtype(f.compute_dtype);
  c.lora_rank = f.lora_rank;
  c.lora_alpha = f.lora_alpha;
  c.lora_dropout = f.lora_dropout;
  c.lora_targets = parse_lora_targets(f.lora_targets, m, "--lora-targets");
  c.optimizer = *parse_optimizer(f.optimizer);
  c.checkpointed = parse_checkpoint(f.checkpoint, m.layers, "--checkpoint");
  c.offloaded = parse_offload(f.offload, m.layers, "--offload");
  c.attention = f.attention == "eager" ? Attention::kEager : Attention::kEfficient;
  c.loss_chunk = parse_loss(f.loss, "--loss");
  c.device = f.device == "cpu" ? Device::kCpu : Device::kCuda;
  validate(c, m);
  return c;
}

planner::DeviceModel resolve_device(const ConfigFlags& f) {
  const int64_t budget = f.budget.empty() ? 0 : planner::parse_size(f.budget, "--budget");
  if (f.device == "cpu") {
    if (!f.gpu.empty()) throw InputError("--gpu: a GPU cannot be combined with --device cpu");
    return planner::cpu_device(budget);
  }
  const planner::GpuProfile gpu = planner::resolve_gpu(f.gpu.empty() ? "6GB" : f.gpu);
  if (budget > gpu.memory_bytes) {  // a budget lowers the card's memory, it cannot add to it
    throw InputError("--budget: " + f.budget + " is more than the " +
                     (gpu.from_size_only ? gpu.display_name : gpu.name) + "'s " +
                     planner::format_bytes(gpu.memory_bytes) +
                     "; give at most the GPU's memory or a larger --gpu");
  }
  return planner::cuda_device(gpu, budget);
}

}  // namespace loraplan::cli
