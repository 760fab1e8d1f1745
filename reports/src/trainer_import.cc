#include "loraplan/reports/trainer_import.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/text.h"

namespace loraplan::reports {
namespace {

// One field of the file: `name` as the file spells its path ("training_arguments.optim"), `key`
// the name the trainer's flat layout gives it ("optim").
struct Field {
  std::string name, key;
  YAML::Node node;
  int line = 0;
  bool seen = false;
};

bool is_null(const YAML::Node& n) {
  return !n.IsDefined() || n.IsNull() || (n.IsScalar() && n.Scalar() == "~");
}

// Set to something: not null, false, "", [] or {}.
bool truthy(const YAML::Node& n) {
  if (is_null(n)) return false;
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    return !s.empty() && s != "false" && s != "False" && s != "0" && s != "none" && s != "None";
  }
  return n.size() > 0;
}

// The fields of a parsed file, looked up by key, each marked when a rule reads it; what no rule
// reads is unknown.
class Fields {
 public:
  Fields(std::string path, std::string trainer) : path_(std::move(path)), trainer_(trainer) {}

  void add(std::string name, std::string key, const YAML::Node& node) {
    fields_.push_back({std::move(name), std::move(key), node, node.Mark().line + 1, false});
  }

  // The field with `key`, marked seen; nullptr when absent or null (a null field is ignored).
  Field* get(std::string_view key) {
    for (Field& f : fields_) {
      if (f.key != key) continue;
      f.seen = true;
      if (is_null(f.node)) {
        note_ignored(f.name);
        return nullptr;
      }
      return &f;
    }
    return nullptr;
  }
  bool has(std::string_view key) const {
    return std::any_of(fields_.begin(), fields_.end(),
                       [&](const Field& f) { return f.key == key && !is_null(f.node); });
  }

  [[noreturn]] void fail(const Field& f, const std::string& message) const {
    throw InputError(located(path_, f.line, f.name + ": " + message));
  }

  // Typed reads of a present field.
  std::string text(const Field& f) const {
    if (!f.node.IsScalar()) fail(f, "expected a single value");
    return f.node.Scalar();
  }
  int64_t positive(const Field& f) const {
    const std::string s = text(f);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v <= 0)
      fail(f, "expected a positive integer, got \"" + s + "\"");
    return v;
  }
  double number(const Field& f, double lo, double hi) const {
    const std::string s = text(f);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
      char range[64];
      std::snprintf(range, sizeof range, "a number in [%g, %g]", lo, hi);
      fail(f, "expected " + std::string(range) + ", got \"" + s + "\"");
    }
    return v;
  }
  bool boolean(const Field& f) const {
    const std::string s = text(f);
    if (s == "true" || s == "True" || s == "yes") return true;
    if (s == "false" || s == "False" || s == "no") return false;
    fail(f, "expected true or false, got \"" + s + "\"");
  }
  // A list of names, or one string ("all-linear").
  std::vector<std::string> names(const Field& f) const {
    if (f.node.IsScalar()) return {f.node.Scalar()};
    if (!f.node.IsSequence()) fail(f, "expected a list of names");
    std::vector<std::string> out;
    for (const YAML::Node& n : f.node) {
      if (!n.IsScalar()) fail(f, "expected a list of names");
      out.push_back(n.Scalar());
    }
    return out;
  }

  // Reads every field with one of `keys` and lists it as ignored: the trainer has it and it does
  // not change memory.
  void ignore(std::initializer_list<std::string_view> keys) {
    for (std::string_view k : keys) {
      known_keys_.emplace_back(k);
      mark_ignored([&](const Field& f) { return f.key == k; });
    }
  }
  void ignore_prefixed(std::initializer_list<std::string_view> prefixes) {
    for (std::string_view p : prefixes)
      mark_ignored([&](const Field& f) { return f.key.starts_with(p); });
  }
  // A setting loraplan cannot plan: exit 2 naming it when it is set.
  void refuse(std::string_view key, const std::string& why) {
    for (Field& f : fields_) {
      if (f.key != key) continue;
      f.seen = true;
      if (truthy(f.node)) fail(f, why);
      note_ignored(f.name);
    }
  }
  // A setting that changes memory in a way loraplan does not model: listed, and the estimate is
  // of the run without it.
  void not_modelled(std::string_view key, const std::string& why) {
    for (Field& f : fields_) {
      if (f.key != key) continue;
      f.seen = true;
      if (truthy(f.node)) {
        not_modelled_.push_back(f.name + ": " + why);
      } else {
        note_ignored(f.name);
      }
    }
  }

  // The first field no rule read: not a field of this trainer loraplan knows.
  void refuse_unknown() const {
    for (const Field& f : fields_) {
      if (f.seen) continue;
      std::string msg = "not a field of " + trainer_ + " that loraplan knows";
      const std::vector<std::string> near = planner::closest_names(f.key, known_keys_);
      if (!near.empty()) msg += " (closest: " + near.front() + ")";
      fail(f, msg + "; remove it, or give the knob as a flag");
    }
  }
  void know(std::initializer_list<std::string_view> keys) {
    for (std::string_view k : keys) known_keys_.emplace_back(k);
  }

  std::vector<std::string>& ignored() { return ignored_; }
  // `names` (fields' names) sorted as the file has them.
  void in_file_order(std::vector<std::string>& names) const {
    auto index = [&](const std::string& n) {
      for (size_t i = 0; i < fields_.size(); ++i) {
        if (fields_[i].name == n) return i;
      }
      return fields_.size();
    };
    std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
      return index(a) < index(b);
    });
  }
  std::vector<std::string>& not_modelled_list() { return not_modelled_; }

 private:
  void note_ignored(const std::string& name) {
    if (std::find(ignored_.begin(), ignored_.end(), name) == ignored_.end())
      ignored_.push_back(name);
  }
  void mark_ignored(const std::function<bool(const Field&)>& match) {
    for (Field& f : fields_) {
      if (f.seen || !match(f)) continue;
      f.seen = true;
      note_ignored(f.name);
    }
  }

  std::string path_, trainer_;
  std::vector<Field> fields_;
  std::vector<std::string> ignored_, not_modelled_, known_keys_;
};

// Collects the flags a file sets.
class Settings {
 public:
  explicit Settings(FromConfig& out) : out_(out) {}
  void set(const Field& f, std::string flag, std::string value) {
    out_.settings.push_back({std::move(flag), std::move(value), f.name, f.line, ""});
    if (std::find(out_.used.begin(), out_.used.end(), f.name) == out_.used.end())
      out_.used.push_back(f.name);
  }
  // A field read into a knob that another field's setting carries (bf16 with fp16).
  void use(const Field& f) {
    if (std::find(out_.used.begin(), out_.used.end(), f.name) == out_.used.end())
      out_.used.push_back(f.name);
  }
  void fallback(std::string flag, std::string value, std::string why) {
    out_.settings.push_back({std::move(flag), std::move(value), "", 0, std::move(why)});
  }
  // `flag` from the field `key` (a positive integer), else the trainer's `fallback`.
  void positive_or(Fields& fs, std::string_view key, const std::string& flag,
                   const std::string& fallback_value, const std::string& why) {
    if (Field* f = fs.get(key)) {
      set(*f, flag, std::to_string(fs.positive(*f)));
    } else {
      fallback(flag, fallback_value, why);
    }
  }
  // `flag` from the field `key` (a number in [lo, hi], as written), else `fallback`.
  void number_or(Fields& fs, std::string_view key, const std::string& flag, double lo, double hi,
                 const std::string& fallback_value, const std::string& why) {
    if (Field* f = fs.get(key)) {
      fs.number(*f, lo, hi);
      set(*f, flag, fs.text(*f));
    } else {
      fallback(flag, fallback_value, why);
    }
  }

 private:
  FromConfig& out_;
};

// transformers' optimizer names (TrainingArguments.optim, axolotl's optimizer) as loraplan's.
std::string optimizer_of(Fields& fs, const Field& f) {
  const std::string name = fs.text(f);
  static const std::map<std::string, std::string, std::less<>> kNames = {
      {"adamw_torch", "adamw"},
      {"adamw_torch_fused", "adamw"},
      {"adamw_hf", "adamw"},
      {"adamw", "adamw"},
      {"adamw_apex_fused", "adamw"},
      {"adamw_bnb_8bit", "adamw-8bit"},
      {"adamw_8bit", "adamw-8bit"},
      {"paged_adamw_8bit", "paged-adamw-8bit"},
      {"sgd", "sgd"},
  };
  const auto it = kNames.find(name);
  if (it == kNames.end()) {
    fs.fail(f, "\"" + name +
                   "\" is not an optimizer loraplan models (adamw_torch, adamw_torch_fused, "
                   "adamw_bnb_8bit, paged_adamw_8bit, sgd)");
  }
  return it->second;
}

// torch_dtype / dtype / bnb_4bit_compute_dtype as a loraplan dtype name; "" for auto.
std::string dtype_of(Fields& fs, const Field& f) {
  const std::string s = fs.text(f);
  if (s == "bfloat16" || s == "bf16" || s == "torch.bfloat16") return "bf16";
  if (s == "float16" || s == "fp16" || s == "half" || s == "torch.float16") return "fp16";
  if (s == "float32" || s == "fp32" || s == "float" || s == "torch.float32") return "fp32";
  if (s == "auto") return "";
  fs.fail(f, "expected bfloat16, float16, float32 or auto, got \"" + s + "\"");
}

std::string join(const std::vector<std::string>& v) { return planner::join(v, ","); }

// What transformers' attn_implementation means for the saved activations.
std::string attention_of(Fields& fs, const Field& f) {
  const std::string s = fs.text(f);
  if (s == "eager") return "eager";
  if (s == "sdpa" || s == "flash_attention_2" || s == "flash_attention_3" ||
      s == "flex_attention" || s.starts_with("kernels-community/"))
    return "efficient";
  fs.fail(f,
          "expected eager, sdpa, flash_attention_2, flash_attention_3 or flex_attention, got \"" +
              s + "\"");
}

// The fields of transformers' TrainingArguments, TRL's SFTConfig and ModelConfig (and PEFT's
// LoraConfig) that do not change a step's memory.
constexpr std::string_view kHfIgnored[] = {"output_dir",
                                           "overwrite_output_dir",
                                           "do_train",
                                           "do_eval",
                                           "do_predict",
                                           "eval_strategy",
                                           "evaluation_strategy",
                                           "prediction_loss_only",
                                           "per_device_eval_batch_size",
                                           "eval_accumulation_steps",
                                           "eval_delay",
                                           "learning_rate",
                                           "weight_decay",
                                           "adam_beta1",
                                           "adam_beta2",
                                           "adam_epsilon",
                                           "max_grad_norm",
                                           "num_train_epochs",
                                           "max_steps",
                                           "lr_scheduler_type",
                                           "lr_scheduler_kwargs",
                                           "warmup_ratio",
                                           "warmup_steps",
                                           "log_level",
                                           "logging_dir",
                                           "logging_strategy",
                                           "logging_first_step",
                                           "logging_steps",
                                           "logging_nan_inf_filter",
                                           "save_strategy",
                                           "save_steps",
                                           "save_total_limit",
                                           "save_safetensors",
                                           "save_only_model",
                                           "seed",
                                           "data_seed",
                                           "eval_steps",
                                           "dataloader_num_workers",
                                           "dataloader_pin_memory",
                                           "dataloader_drop_last",
                                           "dataloader_persistent_workers",
                                           "dataloader_prefetch_factor",
                                           "run_name",
                                           "disable_tqdm",
                                           "remove_unused_columns",
                                           "label_names",
                                           "load_best_model_at_end",
                                           "metric_for_best_model",
                                           "greater_is_better",
                                           "report_to",
                                           "push_to_hub",
                                           "hub_model_id",
                                           "hub_strategy",
                                           "hub_token",
                                           "hub_private_repo",
                                           "resume_from_checkpoint",
                                           "tf32",
                                           "group_by_length",
                                           "length_column_name",
                                           "include_tokens_per_second",
                                           "optim_args",
                                           "gradient_checkpointing_kwargs",
                                           "ddp_find_unused_parameters",
                                           "ddp_timeout",
                                           "local_rank",
                                           "use_cpu",
                                           "bf16_full_eval",
                                           "fp16_full_eval",
                                           "full_determinism",
                                           "neftune_noise_alpha",
                                           "average_tokens_across_devices",
                                           "dataset_text_field",
                                           "dataset_name",
                                           "dataset_config",
                                           "dataset_train_split",
                                           "dataset_test_split",
                                           "dataset_kwargs",
                                           "dataset_num_proc",
                                           "dataset_batch_size",
                                           "eos_token",
                                           "pad_token",
                                           "completion_only_loss",
                                           "assistant_only_loss",
                                           "packing_strategy",
                                           "pad_to_multiple_of",
                                           "chat_template_path",
                                           "model_init_kwargs",
                                           "model_revision",
                                           "trust_remote_code",
                                           "use_rslora",
                                           "lora_task_type",
                                           "bias",
                                           "task_type",
                                           "bnb_4bit_compute_dtype",
                                           "bnb_4bit_quant_storage",
                                           "label_smoothing_factor",
                                           "save_on_each_node",
                                           "skip_memory_metrics",
                                           "torch_empty_cache_steps",
                                           "restore_callback_states_from_checkpoint"};

// The flat layout of TRL's `trl sft --config` (TrainingArguments + SFTConfig + ModelConfig),
// also reached through `loraplan export`'s nested hf and unsloth files. `unsloth`: Unsloth's
// loader (4-bit is NF4 with double quantization; its defaults differ).
void read_hf(Fields& fs, FromConfig& out, bool nested, bool unsloth) {
  Settings s(out);
  const std::string who = unsloth ? "Unsloth's default" : "transformers' default";
  // LoRA's defaults: TRL's ModelConfig (flat), PEFT's LoraConfig (export's hf), Unsloth's.
  const std::string lora_who = unsloth ? who : nested ? "PEFT's default" : "TRL's default";
  fs.know({"model_name_or_path",
           "per_device_train_batch_size",
           "gradient_accumulation_steps",
           "gradient_checkpointing",
           "optim",
           "bf16",
           "fp16",
           "max_length",
           "max_seq_length",
           "packing",
           "padding_free",
           "torch_dtype",
           "dtype",
           "attn_implementation",
           "load_in_4bit",
           "load_in_8bit",
           "bnb_4bit_quant_type",
           "use_bnb_nested_quant",
           "use_peft",
           "lora_r",
           "lora_alpha",
           "lora_dropout",
           "lora_target_modules"});
  for (std::string_view k : kHfIgnored) fs.know({k});

  if (Field* f = fs.get("model_name_or_path")) s.set(*f, "--model", fs.text(*f));

  // A full fine-tune trains every weight: nothing loraplan plans.
  const bool lora_fields = fs.has("lora_r") || fs.has("lora_alpha") ||
                           fs.has("lora_target_modules") || fs.has("lora_dropout");
  if (Field* f = fs.get("use_peft")) {
    if (!fs.boolean(*f)) fs.fail(*f, "false trains every weight; loraplan plans LoRA and QLoRA");
    s.use(*f);
  } else if (!nested && !lora_fields) {
    throw InputError(out.path +
                     ": no use_peft and no lora_* field: this trains every weight; loraplan "
                     "plans LoRA and QLoRA (set use_peft: true)");
  }

  // Micro-batch and accumulation.
  s.positive_or(fs, "per_device_train_batch_size", "--micro-batch", unsloth ? "2" : "8", who);
  s.positive_or(fs, "gradient_accumulation_steps", "--grad-accum", unsloth ? "4" : "1", who);

  // Sequence length: SFTConfig's max_length (max_seq_length before TRL 0.20).
  Field* len = fs.get("max_length");
  if (Field* older = fs.get("max_seq_length"); !len) len = older;
  if (Field* older = fs.get("max_seq_length"); older && older != len) s.use(*older);
  if (len) {
    s.set(*len, "--seq-len", std::to_string(fs.positive(*len)));
  } else {
    s.fallback("--seq-len", unsloth ? "2048" : "1024",
               unsloth ? who : "TRL's default, SFTConfig.max_length");
  }
  for (const char* k : {"packing", "padding_free"}) {
    if (Field* f = fs.get(k)) {
      if (fs.boolean(*f)) out.packed = true;
      s.use(*f);
    }
  }

  // Precision: mixed precision's flag, else the dtype the model loads in, else fp32.
  std::string compute;
  for (const char* k : {"bf16", "fp16"}) {
    if (Field* f = fs.get(k)) {
      if (fs.boolean(*f)) {
        if (!compute.empty()) fs.fail(*f, "bf16 and fp16 are both true; set one");
        compute = k;
        s.set(*f, "--compute-dtype", compute);
      } else {
        s.use(*f);
      }
    }
  }
  std::string load_dtype;
  Field* dtype_field = fs.get("torch_dtype");
  if (Field* d = fs.get("dtype"); !dtype_field) dtype_field = d;
  if (dtype_field) {
    load_dtype = dtype_of(fs, *dtype_field);
    s.use(*dtype_field);
  }
  if (compute.empty()) {
    if (!load_dtype.empty()) {
      compute = load_dtype;
      s.set(*dtype_field, "--compute-dtype", compute);
    } else {
      compute = unsloth ? "bf16" : "fp32";
      s.fallback("--compute-dtype", compute,
                 unsloth ? "Unsloth's default, bf16 where the GPU has it"
                         : "neither bf16 nor fp16: transformers computes in fp32");
    }
  }

  // Frozen weights: bitsandbytes 4- or 8-bit, else the dtype they load in.
  Field* four = fs.get("load_in_4bit");
  Field* eight = fs.get("load_in_8bit");
  const bool is4 = four && fs.boolean(*four), is8 = eight && fs.boolean(*eight);
  if (is4 && is8) fs.fail(*eight, "load_in_4bit and load_in_8bit are both true; set one");
  if (eight && !is8) s.use(*eight);
  if (four && !is4) s.use(*four);
  Field* qtype = fs.get("bnb_4bit_quant_type");
  Field* nested_quant = fs.get("use_bnb_nested_quant");
  if (is4) {
    std::string type = nested ? "fp4" : "nf4";  // BitsAndBytesConfig's default; TRL's ModelConfig
    if (qtype) {
      type = fs.text(*qtype);
      if (type != "nf4" && type != "fp4")
        fs.fail(*qtype, "expected nf4 or fp4, got \"" + type + "\"");
      s.use(*qtype);
    }
    if (unsloth) type = "nf4";
    s.set(*four, "--weights", type);
    if (nested_quant) {
      s.set(*nested_quant, "--double-quant", fs.boolean(*nested_quant) ? "on" : "off");
    } else {
      s.fallback("--double-quant", unsloth ? "on" : "off",
                 unsloth ? "Unsloth quantizes the absmax values again"
                         : "bitsandbytes' default, bnb_4bit_use_double_quant false");
    }
  } else {
    if (qtype) s.use(*qtype);
    if (nested_quant) s.use(*nested_quant);
    if (is8) {
      s.set(*eight, "--weights", "int8");
    } else if (dtype_field && !load_dtype.empty()) {
      s.set(*dtype_field, "--weights", load_dtype);
    } else {
      s.fallback("--weights", compute, "the frozen weights load in the compute dtype");
    }
  }

  // Attention.
  if (Field* f = fs.get("attn_implementation")) {
    s.set(*f, "--attention", attention_of(fs, *f));
  } else {
    s.fallback("--attention", "efficient", who + ": sdpa");
  }

  // LoRA.
  s.positive_or(fs, "lora_r", "--lora-rank", nested && !unsloth ? "8" : "16", lora_who);
  s.number_or(fs, "lora_alpha", "--lora-alpha", 1e-9, 1e9,
              nested && !unsloth ? "8"
              : unsloth          ? "16"
                                 : "32",
              lora_who);
  s.number_or(fs, "lora_dropout", "--lora-dropout", 0, 0.999999, unsloth || nested ? "0" : "0.05",
              lora_who);
  if (Field* f = fs.get("lora_target_modules")) {
    s.set(*f, "--lora-targets", join(fs.names(*f)));
  } else {
    s.fallback("--lora-targets", unsloth ? "all-linear" : "q_proj,v_proj",
               unsloth ? who : "PEFT's default for Llama-style models");
  }

  // Optimizer and checkpointing.
  if (Field* f = fs.get("optim")) {
    s.set(*f, "--optimizer", optimizer_of(fs, *f));
  } else {
    s.fallback("--optimizer", unsloth ? "adamw-8bit" : "adamw",
               unsloth ? "Unsloth's notebooks: adamw_8bit" : who + ": adamw_torch");
  }
  if (Field* f = fs.get("gradient_checkpointing")) {
    const std::string v = fs.text(*f);
    if (v == "unsloth") {
      fs.not_modelled_list().push_back(
          f->name +
          ": Unsloth's offloaded checkpointing moves the saved layer inputs to host "
          "memory; estimated as transformers' checkpointing (an upper bound)");
      s.set(*f, "--checkpoint", "all");
    } else {
      s.set(*f, "--checkpoint", fs.boolean(*f) ? "all" : "none");
    }
  } else {
    s.fallback("--checkpoint", unsloth ? "all" : "none", who);
  }

  // What loraplan cannot plan, and what it does not model.
  fs.refuse("deepspeed", "DeepSpeed shards state across GPUs; loraplan plans one GPU");
  fs.refuse("fsdp", "FSDP shards state across GPUs; loraplan plans one GPU");
  fs.refuse("fsdp_config", "FSDP shards state across GPUs; loraplan plans one GPU");
  fs.refuse("lora_modules_to_save", "fully trained modules beside LoRA are not modelled");
  fs.refuse("modules_to_save", "fully trained modules beside LoRA are not modelled");
  fs.refuse("use_dora", "DoRA's magnitude vectors and norms are not modelled");
  fs.not_modelled("torch_compile", "compiled graphs save different activations");
  fs.not_modelled("use_liger_kernel", "Liger's fused kernels save less than the eager ops");
  fs.not_modelled("activation_offloading", "activations offloaded to host memory");
  fs.not_modelled("gradient_checkpointing_offload", "checkpoints offloaded to host memory");
  for (std::string_view k : kHfIgnored) fs.ignore({k});
  // The notes `loraplan export` writes, and its sections when empty (no bitsandbytes).
  fs.ignore({"loraplan", "bnb_config", "model_kwargs", "lora_config", "training_arguments",
             "from_pretrained", "get_peft_model", "sft_config"});
  fs.refuse_unknown();
}

// axolotl's YAML (axolotl.utils.schemas): top-level fields.
void read_axolotl(Fields& fs, FromConfig& out) {
  Settings s(out);
  const std::string who = "axolotl's default";
  fs.know({"base_model",
           "sequence_len",
           "micro_batch_size",
           "gradient_accumulation_steps",
           "batch_size",
           "load_in_4bit",
           "load_in_8bit",
           "adapter",
           "lora_r",
           "lora_alpha",
           "lora_dropout",
           "lora_target_modules",
           "lora_target_linear",
           "bf16",
           "fp16",
           "gradient_checkpointing",
           "optimizer",
           "flash_attention",
           "sdp_attention",
           "xformers_attention",
           "flex_attention",
           "eager_attention",
           "sample_packing",
           "chunked_cross_entropy",
           "learning_rate",
           "num_epochs",
           "datasets",
           "output_dir"});

  if (Field* f = fs.get("base_model")) s.set(*f, "--model", fs.text(*f));

  Field* adapter = fs.get("adapter");
  const std::string kind = adapter ? fs.text(*adapter) : "";
  if (kind != "lora" && kind != "qlora") {
    const std::string why = "loraplan plans LoRA and QLoRA (adapter: lora or qlora)";
    if (adapter) fs.fail(*adapter, "\"" + kind + "\" is not an adapter loraplan plans; " + why);
    throw InputError(out.path + ": no adapter: axolotl trains every weight; " + why);
  }
  s.use(*adapter);

  s.positive_or(fs, "sequence_len", "--seq-len", "512", who);
  Field* micro = fs.get("micro_batch_size");
  Field* accum = fs.get("gradient_accumulation_steps");
  Field* total = fs.get("batch_size");
  const int64_t B = micro ? fs.positive(*micro) : 1;
  if (micro) {
    s.set(*micro, "--micro-batch", std::to_string(B));
  } else {
    s.fallback("--micro-batch", "1", who);
  }
  if (accum) {
    s.set(*accum, "--grad-accum", std::to_string(fs.positive(*accum)));
  } else if (total) {  // axolotl: gradient_accumulation_steps = batch_size / micro_batch_size
    const int64_t n = fs.positive(*total);
    if (n % B != 0) fs.fail(*total, "is not a multiple of micro_batch_size " + std::to_string(B));
    s.set(*total, "--grad-accum", std::to_string(n / B));
  } else {
    s.fallback("--grad-accum", "1", who);
  }
  if (accum && total) s.use(*total);

  // Precision: bf16 (true, or auto where the GPU has it), fp16, else fp32.
  std::string compute;
  Field* bf16 = fs.get("bf16");
  Field* fp16 = fs.get("fp16");
  if (bf16 && (fs.text(*bf16) == "auto" || fs.boolean(*bf16))) {
    compute = "bf16";
    s.set(*bf16, "--compute-dtype", "bf16");
  }
  if (fp16 && fs.boolean(*fp16)) {
    if (!compute.empty() && bf16 && fs.text(*bf16) != "auto")
      fs.fail(*fp16, "bf16 and fp16 are both true; set one");
    compute = "fp16";
    s.set(*fp16, "--compute-dtype", "fp16");
  }
  if (bf16) s.use(*bf16);
  if (fp16) s.use(*fp16);
  if (!bf16 && compute.empty()) {
    compute = "bf16";
    s.fallback("--compute-dtype", "bf16", who + ", bf16: auto, where the GPU has it");
  } else if (compute.empty()) {
    compute = "fp32";
    s.fallback("--compute-dtype", "fp32", "neither bf16 nor fp16: axolotl computes in fp32");
  }

  Field* four = fs.get("load_in_4bit");
  Field* eight = fs.get("load_in_8bit");
  const bool is4 = four && fs.boolean(*four), is8 = eight && fs.boolean(*eight);
  if (kind == "qlora" && !is4)
    fs.fail(four ? *four : *adapter, "qlora needs load_in_4bit: true (as axolotl says)");
  if (is4 && is8) fs.fail(*eight, "load_in_4bit and load_in_8bit are both true; set one");
  if (is4) {
    s.set(*four, "--weights", "nf4");
    s.fallback("--double-quant", "on", "axolotl's QLoRA quantizes the absmax values again");
  } else if (is8) {
    s.set(*eight, "--weights", "int8");
  } else {
    s.fallback("--weights", compute, "axolotl loads the frozen weights in the compute dtype");
  }
  if (four && !is4) s.use(*four);
  if (eight && !is8) s.use(*eight);

  s.positive_or(fs, "lora_r", "--lora-rank", "8", "PEFT's default");
  s.number_or(fs, "lora_alpha", "--lora-alpha", 1e-9, 1e9, "8", "PEFT's default");
  s.number_or(fs, "lora_dropout", "--lora-dropout", 0, 0.999999, "0", who);
  Field* linear = fs.get("lora_target_linear");
  Field* modules = fs.get("lora_target_modules");
  if (linear && fs.boolean(*linear)) {
    s.set(*linear, "--lora-targets", "all-linear");
    if (modules) s.use(*modules);  // axolotl adds every linear layer to the list
  } else if (modules) {
    s.set(*modules, "--lora-targets", join(fs.names(*modules)));
  } else {
    s.fallback("--lora-targets", "q_proj,v_proj", "PEFT's default for Llama-style models");
  }
  if (linear && !fs.boolean(*linear)) s.use(*linear);

  if (Field* f = fs.get("optimizer")) {
    s.set(*f, "--optimizer", optimizer_of(fs, *f));
  } else {
    s.fallback("--optimizer", "adamw", who + ": adamw_torch_fused");
  }
  if (Field* f = fs.get("gradient_checkpointing")) {
    const std::string v = fs.text(*f);
    if (v == "offload" || v == "unsloth") {
      fs.not_modelled_list().push_back(
          f->name + ": " + v +
          " moves the saved layer inputs to host memory; estimated as checkpointing on the GPU "
          "(an upper bound)");
      s.set(*f, "--checkpoint", "all");
    } else {
      s.set(*f, "--checkpoint", fs.boolean(*f) ? "all" : "none");
    }
  } else {
    s.fallback("--checkpoint", "none", who);
  }

  // Attention: one of the fused kernels keeps no probabilities; eager does; unset is sdpa.
  std::string attention;
  for (const char* k :
       {"flash_attention", "sdp_attention", "xformers_attention", "flex_attention"}) {
    if (Field* f = fs.get(k)) {
      if (fs.boolean(*f)) {
        attention = "efficient";
        s.set(*f, "--attention", attention);
      } else {
        s.use(*f);
      }
    }
  }
  if (Field* f = fs.get("eager_attention")) {
    if (fs.boolean(*f)) {
      if (!attention.empty()) fs.fail(*f, "eager_attention with a fused attention; set one");
      attention = "eager";
      s.set(*f, "--attention", attention);
    } else {
      s.use(*f);
    }
  }
  if (attention.empty()) s.fallback("--attention", "efficient", "transformers' default: sdpa");

  if (Field* f = fs.get("sample_packing")) {
    out.packed = fs.boolean(*f);
    s.use(*f);
  }
  if (Field* f = fs.get("chunked_cross_entropy")) {
    if (fs.boolean(*f)) {
      int64_t chunks = 8;  // axolotl's chunked_cross_entropy_num_chunks default
      if (Field* n = fs.get("chunked_cross_entropy_num_chunks")) {
        chunks = fs.positive(*n);
        s.use(*n);
      }
      out.loss_chunks = chunks;
    }
    s.use(*f);
  }

  const std::string one_gpu = "loraplan plans one GPU";
  fs.refuse("deepspeed", "DeepSpeed shards state across GPUs; " + one_gpu);
  fs.refuse("fsdp", "FSDP shards state across GPUs; " + one_gpu);
  fs.refuse("fsdp_config", "FSDP shards state across GPUs; " + one_gpu);
  fs.refuse("fsdp_version", "FSDP shards state across GPUs; " + one_gpu);
  fs.refuse("sequence_parallel_degree",
            "sequence parallelism splits sequences across GPUs; " + one_gpu);
  fs.refuse("context_parallel_size",
            "context parallelism splits sequences across GPUs; " + one_gpu);
  fs.refuse("rl",
            "preference trainers (DPO, ORPO, KTO, GRPO) keep more than one model's "
            "activations; loraplan plans supervised fine-tuning");
  fs.refuse("reward_model", "reward-model training is not modelled");
  fs.refuse("process_reward_model", "reward-model training is not modelled");
  fs.refuse("gptq", "GPTQ-quantized weights are not modelled (load_in_4bit is)");
  fs.refuse("lora_modules_to_save", "fully trained modules beside LoRA are not modelled");
  fs.refuse("unfrozen_parameters", "fully trained parameters beside LoRA are not modelled");
  fs.refuse("peft_use_dora", "DoRA's magnitude vectors and norms are not modelled");
  fs.refuse("relora_steps", "ReLoRA is not modelled");
  fs.not_modelled("torch_compile", "compiled graphs save different activations");
  fs.not_modelled("plugins", "plugins (Liger, Cut Cross Entropy, ...) change what is saved");
  for (const char* k :
       {"unsloth_cross_entropy_loss", "unsloth_lora_mlp", "unsloth_lora_qkv", "unsloth_lora_o",
        "unsloth_rms_norm", "unsloth_rope", "lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel",
        "flash_attn_cross_entropy", "flash_attn_rms_norm", "flash_attn_fuse_qkv",
        "flash_attn_fuse_mlp", "liger_rope", "liger_rms_norm", "liger_glu_activation",
        "liger_fused_linear_cross_entropy", "cut_cross_entropy", "s2_attention"})
    fs.not_modelled(k, "a fused kernel that saves less than the eager ops");
  fs.ignore({"base_model_config",
             "model_type",
             "tokenizer_type",
             "tokenizer_config",
             "tokenizer_use_fast",
             "trust_remote_code",
             "strict",
             "datasets",
             "test_datasets",
             "dataset_prepared_path",
             "val_set_size",
             "output_dir",
             "chat_template",
             "chat_template_jinja",
             "default_system_message",
             "special_tokens",
             "tokens",
             "learning_rate",
             "lr_scheduler",
             "lr_scheduler_kwargs",
             "cosine_min_lr_ratio",
             "num_epochs",
             "max_steps",
             "warmup_steps",
             "warmup_ratio",
             "weight_decay",
             "max_grad_norm",
             "adam_beta1",
             "adam_beta2",
             "adam_epsilon",
             "optim_args",
             "logging_steps",
             "eval_steps",
             "evals_per_epoch",
             "eval_strategy",
             "save_steps",
             "saves_per_epoch",
             "save_strategy",
             "save_total_limit",
             "save_safetensors",
             "save_only_model",
             "early_stopping_patience",
             "load_best_model_at_end",
             "resume_from_checkpoint",
             "auto_resume_from_checkpoints",
             "seed",
             "tf32",
             "train_on_inputs",
             "group_by_length",
             "pad_to_sequence_len",
             "lora_model_dir",
             "lora_fan_in_fan_out",
             "gradient_checkpointing_kwargs",
             "local_rank",
             "device_map",
             "max_memory",
             "gpu_memory_limit",
             "low_cpu_mem_usage",
             "eval_table_size",
             "eval_max_new_tokens",
             "eval_batch_size",
             "eval_sample_packing",
             "debug",
             "xformers_attention",
             "neftune_noise_alpha",
             "shuffle_merged_datasets",
             "remove_unused_columns",
             "dataset_processes",
             "is_llama_derived_model",
             "is_mistral_derived_model",
             "is_qwen_derived_model",
             "is_falcon_derived_model",
             "include_tokens_per_second",
             "use_tensorboard",
             "loss_watchdog_threshold",
             "loss_watchdog_patience",
             "hf_use_auth_token",
             "flash_optimum",
             "min_sample_len",
             "skip_prepare_dataset",
             "ddp",
             "ddp_timeout",
             "ddp_bucket_cap_mb",
             "ddp_broadcast_buffers",
             "ddp_find_unused_parameters",
             "world_size",
             "gc_steps",
             "hub_model_id",
             "hub_strategy",
             "push_dataset_to_hub",
             "chunked_cross_entropy_num_chunks",
             "sample_packing_eff_est",
             "total_num_tokens",
             "batch_flattening",
             "fp8"});
  fs.ignore_prefixed({"wandb_", "mlflow_", "comet_", "hub_", "dataset_", "dataloader_",
                      "sample_packing_", "pretrain", "lisa_", "gradio_", "ray_", "kd_", "dpo_",
                      "kto_", "orpo_", "torch_compile_"});
  fs.refuse_unknown();
}

// torchtune recipe configs: nested components, flattened to "model.lora_rank".
void read_torchtune(Fields& fs, FromConfig& out) {
  Settings s(out);
  const std::string who = "torchtune's default";
  fs.know({"model._component_", "model.lora_attn_modules", "model.apply_lora_to_mlp",
           "model.lora_rank", "model.lora_alpha", "model.lora_dropout", "model.quantize_base",
           "tokenizer.max_seq_len", "batch_size", "gradient_accumulation_steps",
           "enable_activation_checkpointing", "dtype", "optimizer._component_", "loss._component_",
           "checkpointer.checkpoint_dir"});

  // The model: the checkpoint folder when it holds a model here, else the builder's.
  Field* component = fs.get("model._component_");
  if (!component) throw InputError(out.path + ": model._component_: missing; torchtune needs it");
  const std::string builder = fs.text(*component);
  const bool qlora = builder.find(".qlora_") != std::string::npos;
  Field* dir = fs.get("checkpointer.checkpoint_dir");
  std::error_code ec;
  if (dir &&
      std::filesystem::is_regular_file(std::filesystem::path(fs.text(*dir)) / "config.json", ec)) {
    s.set(*dir, "--model", fs.text(*dir));
    s.use(*component);
  } else {
    const std::string id = torchtune_model_id(builder);
    if (id.empty()) {
      fs.fail(*component, "\"" + builder +
                              "\" is not a torchtune LoRA builder loraplan knows; pass --model "
                              "with the model's folder or profile");
    }
    s.set(*component, "--model", id);
    if (dir) s.use(*dir);
  }

  std::vector<std::string> targets;
  if (Field* f = fs.get("model.lora_attn_modules")) {
    for (const std::string& m : fs.names(*f)) {
      if (m == "q_proj" || m == "k_proj" || m == "v_proj") {
        targets.push_back(m);
      } else if (m == "output_proj") {
        targets.emplace_back("o_proj");
      } else {
        fs.fail(*f, "unknown module \"" + m + "\" (q_proj, k_proj, v_proj, output_proj)");
      }
    }
    s.use(*f);
  }
  if (Field* f = fs.get("model.apply_lora_to_mlp")) {
    if (fs.boolean(*f)) targets.insert(targets.end(), {"gate_proj", "up_proj", "down_proj"});
    s.use(*f);
  }
  if (targets.empty()) {
    throw InputError(out.path + ": model.lora_attn_modules: no module is adapted");
  }
  out.settings.push_back({"--lora-targets", join(targets), component->name, component->line, ""});
  fs.refuse("model.apply_lora_to_output", "LoRA on the output projection is not modelled");

  s.positive_or(fs, "model.lora_rank", "--lora-rank", "8", "torchtune's recipe configs");
  s.number_or(fs, "model.lora_alpha", "--lora-alpha", 1e-9, 1e9, "16",
              "torchtune's recipe configs");
  s.number_or(fs, "model.lora_dropout", "--lora-dropout", 0, 0.999999, "0", who);

  std::string compute = "bf16";
  if (Field* f = fs.get("dtype")) {
    const std::string d = fs.text(*f);
    if (d != "bf16" && d != "fp32") fs.fail(*f, "expected bf16 or fp32, got \"" + d + "\"");
    compute = d;
    s.set(*f, "--compute-dtype", d);
  } else {
    s.fallback("--compute-dtype", "bf16", who);
  }
  bool quantize = qlora;
  if (Field* f = fs.get("model.quantize_base")) {
    quantize = quantize || fs.boolean(*f);
    s.use(*f);
  }
  if (quantize) {
    s.set(*component, "--weights", "nf4");
    s.fallback("--double-quant", "on",
               "torchao's NF4 quantizes the block scales again: int8, one factor per 256");
  } else {
    s.fallback("--weights", compute, "torchtune loads the frozen weights in its dtype");
  }

  if (Field* f = fs.get("tokenizer.max_seq_len")) {
    s.set(*f, "--seq-len", std::to_string(fs.positive(*f)));
  } else {
    throw InputError(out.path +
                     ": tokenizer.max_seq_len: not set, so torchtune does not cut sequences; set "
                     "it (or pass --seq-len) for the longest sequence");
  }
  if (Field* f = fs.get("batch_size")) {
    s.set(*f, "--micro-batch", std::to_string(fs.positive(*f)));
  } else {
    throw InputError(out.path + ": batch_size: missing; torchtune needs it");
  }
  s.positive_or(fs, "gradient_accumulation_steps", "--grad-accum", "1", who);
  if (Field* f = fs.get("enable_activation_checkpointing")) {
    s.set(*f, "--checkpoint", fs.boolean(*f) ? "all" : "none");
  } else {
    s.fallback("--checkpoint", "none", who);
  }
  s.fallback("--attention", "efficient", "torchtune's attention is scaled_dot_product_attention");

  if (Field* f = fs.get("optimizer._component_")) {
    const std::string o = fs.text(*f);
    std::string name;
    if (o == "torch.optim.AdamW" || o == "torch.optim.Adam") name = "adamw";
    if (o == "bitsandbytes.optim.AdamW8bit" || o == "bitsandbytes.optim.Adam8bit")
      name = "adamw-8bit";
    if (o == "bitsandbytes.optim.PagedAdamW8bit") name = "paged-adamw-8bit";
    if (o == "torch.optim.SGD") {
      name = "sgd";
      if (Field* m = fs.get("optimizer.momentum")) {
        if (fs.number(*m, 0, 1) > 0) name = "sgd-momentum";
        s.use(*m);
      }
    }
    if (name.empty()) {
      fs.fail(*f, "\"" + o +
                      "\" is not an optimizer loraplan models (torch.optim.AdamW, "
                      "bitsandbytes.optim.AdamW8bit, bitsandbytes.optim.PagedAdamW8bit, "
                      "torch.optim.SGD)");
    }
    s.set(*f, "--optimizer", name);
  } else {
    s.fallback("--optimizer", "adamw", who);
  }

  if (Field* f = fs.get("loss._component_")) {
    const std::string l = fs.text(*f);
    if (l == "torchtune.modules.loss.CEWithChunkedOutputLoss" ||
        l == "torchtune.modules.loss.LinearCrossEntropyLoss") {
      out.loss_chunks = 8;  // its num_output_chunks default
      if (Field* n = fs.get("loss.num_output_chunks")) {
        out.loss_chunks = fs.positive(*n);
        s.use(*n);
      }
    } else if (l != "torch.nn.CrossEntropyLoss") {
      fs.fail(*f, "\"" + l + "\" is not a loss loraplan models");
    }
    s.use(*f);
  }
  if (Field* f = fs.get("dataset.packed")) {
    out.packed = fs.boolean(*f);
    s.use(*f);
  }

  fs.not_modelled("enable_activation_offloading", "activations offloaded to host memory");
  fs.not_modelled("compile", "compiled graphs save different activations");
  fs.not_modelled("optimizer_in_bwd", "gradients freed as the optimizer steps in the backward");
  fs.refuse("fsdp_cpu_offload", "FSDP's offload is not modelled");
  fs.ignore({"output_dir",
             "seed",
             "shuffle",
             "epochs",
             "max_steps_per_epoch",
             "device",
             "resume_from_checkpoint",
             "save_adapter_weights_only",
             "log_every_n_steps",
             "log_peak_memory_stats",
             "clip_grad_norm",
             "custom_sharded_layers",
             "low_cpu_ram",
             "compile_loss",
             "run_val_every_n_steps",
             "log_level",
             "metric_logger",
             "profiler",
             "lr_scheduler",
             "tokenizer",
             "dataset",
             "dataset_val",
             "checkpointer",
             "validation",
             "optimizer",
             "loss",
             "model"});
  fs.ignore_prefixed({"tokenizer.", "checkpointer.", "dataset.", "dataset_val.", "optimizer.",
                      "lr_scheduler.", "metric_logger.", "profiler.", "loss.", "validation.",
                      "output_dir"});
  fs.refuse_unknown();
}

// Flattens nested maps into "a.b" fields (torchtune's components, export's sections).
void flatten(Fields& fs, const std::string& prefix, const YAML::Node& map,
             const std::function<std::string(const std::string&)>& key_of) {
  for (const auto& kv : map) {
    const std::string name = prefix + kv.first.Scalar();
    if (kv.second.IsMap()) {
      flatten(fs, name + ".", kv.second, key_of);
    } else {
      fs.add(name, key_of(name), kv.second);
    }
  }
}

FromConfig finish(Fields& fs, FromConfig& out) {
  fs.in_file_order(out.used);
  out.ignored = std::move(fs.ignored());
  fs.in_file_order(out.ignored);
  out.not_modelled = std::move(fs.not_modelled_list());
  return std::move(out);
}

bool has_key(const YAML::Node& root, const char* key) { return root[key].IsDefined(); }

}  // namespace

std::string trainer_display_name(ExportTarget t) {
  switch (t) {
    case ExportTarget::kHf:
    case ExportTarget::kTrl:
      return "transformers/TRL";
    case ExportTarget::kAxolotl:
      return "axolotl";
    case ExportTarget::kTorchtune:
      return "torchtune";
    case ExportTarget::kUnsloth:
      return "Unsloth";
  }
  return "";
}

FromConfig read_trainer_config(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError("--from: " + path + ": no such file");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::ParserException& e) {
    throw InputError(located(path, e.mark.line + 1, "not YAML or JSON: " + e.msg));
  } catch (const YAML::Exception& e) {
    throw InputError("--from: " + path + ": cannot be read: " + e.msg);
  }
  if (!root.IsMap()) throw InputError(path + ": expected a mapping of fields at the top");
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) throw InputError(path + ": a field's name is not a string");
  }

  FromConfig out;
  out.path = path;
  auto same = [](const std::string& n) { return n; };
  if (root["model"].IsMap() && has_key(root["model"], "_component_")) {
    out.trainer = ExportTarget::kTorchtune;
    Fields fs(path, "torchtune");
    flatten(fs, "", root, same);
    read_torchtune(fs, out);
    return finish(fs, out);
  }
  const bool unsloth = has_key(root, "from_pretrained") || has_key(root, "get_peft_model");
  const bool hf_nested = has_key(root, "training_arguments") || has_key(root, "lora_config");
  const bool axolotl = has_key(root, "base_model") || has_key(root, "micro_batch_size") ||
                       has_key(root, "sequence_len") || has_key(root, "adapter");
  const bool hf = has_key(root, "per_device_train_batch_size") ||
                  has_key(root, "model_name_or_path") || has_key(root, "max_length") ||
                  has_key(root, "max_seq_length") || has_key(root, "use_peft");
  if (unsloth || hf_nested) {
    // The sections `loraplan export --to hf|unsloth` writes, read as TRL's flat fields.
    static const std::map<std::string, std::string, std::less<>> kRenamed = {
        {"lora_config.r", "lora_r"},
        {"lora_config.target_modules", "lora_target_modules"},
        {"bnb_config.bnb_4bit_use_double_quant", "use_bnb_nested_quant"},
        {"from_pretrained.model_name", "model_name_or_path"},
        {"from_pretrained.dtype", "torch_dtype"},
        {"get_peft_model.r", "lora_r"},
        {"get_peft_model.target_modules", "lora_target_modules"},
        {"get_peft_model.use_gradient_checkpointing", "gradient_checkpointing"},
    };
    out.trainer = unsloth ? ExportTarget::kUnsloth : ExportTarget::kHf;
    Fields fs(path, unsloth ? "Unsloth" : "transformers");
    for (const auto& kv : root) {
      const std::string name = kv.first.Scalar();
      if (name == "loraplan" || !kv.second.IsMap()) {
        fs.add(name, name, kv.second);
        continue;
      }
      flatten(fs, name + ".", kv.second, [](const std::string& n) {
        const auto it = kRenamed.find(n);
        return it != kRenamed.end() ? it->second : n.substr(n.rfind('.') + 1);
      });
    }
    read_hf(fs, out, true, unsloth);
    return finish(fs, out);
  }
  if (axolotl || hf) {
    out.trainer = axolotl ? ExportTarget::kAxolotl : ExportTarget::kHf;
    Fields fs(path, axolotl ? "axolotl" : "transformers/TRL");
    for (const auto& kv : root) fs.add(kv.first.Scalar(), kv.first.Scalar(), kv.second);
    if (axolotl) {
      read_axolotl(fs, out);
    } else {
      read_hf(fs, out, false, false);
    }
    return finish(fs, out);
  }
  throw InputError(path +
                   ": not a trainer configuration loraplan reads: no base_model (axolotl), "
                   "model_name_or_path or per_device_train_batch_size (transformers/TRL), or "
                   "model._component_ (torchtune)");
}

}  // namespace loraplan::reports
