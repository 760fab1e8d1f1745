#include "loraplan/reports/export.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/text.h"

namespace loraplan::reports {
namespace {

using planner::Module;
using planner::TrainConfig;
using planner::WeightFormat;

struct TargetRow {
  ExportTarget target;
  std::string_view name;
  std::string_view trainer;  // as the changes name it
};
constexpr TargetRow kTargets[] = {
    {ExportTarget::kHf, "hf", "transformers"},
    {ExportTarget::kTrl, "trl", "TRL"},
    {ExportTarget::kAxolotl, "axolotl", "axolotl"},
    {ExportTarget::kTorchtune, "torchtune", "torchtune"},
    {ExportTarget::kUnsloth, "unsloth", "Unsloth"},
};

const TargetRow& row(ExportTarget t) {
  for (const TargetRow& r : kTargets) {
    if (r.target == t) return r;
  }
  return kTargets[0];
}

// transformers' TrainingArguments.optim and axolotl's optimizer: the same names.
std::string hf_optimizer(planner::Optimizer o) {
  switch (o) {
    case planner::Optimizer::kAdamW:
      return "adamw_torch";
    case planner::Optimizer::kAdamW8bit:
      return "adamw_bnb_8bit";
    case planner::Optimizer::kPagedAdamW8bit:
      return "paged_adamw_8bit";
    case planner::Optimizer::kSgd:
    case planner::Optimizer::kSgdMomentum:
      return "sgd";
  }
  return "adamw_torch";
}

std::string torch_dtype(planner::DType d) {
  return d == planner::DType::kBF16  ? "bfloat16"
         : d == planner::DType::kF16 ? "float16"
                                     : "float32";
}

// The dtype the frozen weights load in: a plain format's own, else the compute dtype.
std::string weights_dtype(const TrainConfig& c) {
  const planner::WeightFormatInfo& f = planner::weight_format_info(c.weights.format);
  return torch_dtype(f.quantized() ? c.compute : f.dtype);
}

std::vector<std::string> target_modules(const TrainConfig& c) {
  std::vector<std::string> out;
  for (Module m : c.lora_targets.modules) out.emplace_back(planner::module_name(m));
  return out;
}

int64_t count(const std::vector<bool>& layers) {
  return std::count(layers.begin(), layers.end(), true);
}

// Applies the target's limits to the plan's configuration one knob at a time, each change
// measured by the simulator against the configuration before it.
class Mapper {
 public:
  Mapper(const planner::PlanFile& p, ExportTarget t)
      : p_(p),
        trainer_(row(t).trainer),
        device_(p.device == planner::Device::kCpu
                    ? planner::cpu_device(p.budget_bytes)
                    : planner::cuda_device(planner::resolve_gpu(p.gpu), p.budget_bytes)),
        config_(p.config),
        peak_(peak(config_)) {}

  const TrainConfig& config() const { return config_; }
  int64_t peak_bytes() const { return peak_; }
  std::vector<ExportChange>& changes() { return changes_; }

  // Sets what `change` does to the configuration; `why` completes "... is not expressible in
  // <trainer>: exported as ...".
  void change(const std::string& knob, const std::string& as,
              const std::function<void(TrainConfig&)>& apply) {
    TrainConfig next = config_;
    apply(next);
    const planner::Estimate e = planner::estimate(p_.model, next, device_);
    changes_.push_back({knob + " is not expressible in " + trainer_ + ": exported as " + as, peak_,
                        e.peak_bytes, e.fits});
    config_ = std::move(next);
    peak_ = e.peak_bytes;
  }

  // The knobs every target shares: checkpointing is all layers or none, frozen weights stay on the
  // device, and (unless the target chunks the loss) the logits are whole.
  void common(bool chunks_loss) {
    const int64_t L = p_.model.layers, k = count(config_.checkpointed);
    if (k > 0 && k < L) {
      change("checkpointing " + std::to_string(k) + " of " + std::to_string(L) + " layers",
             "all layers", [L](TrainConfig& c) { c.checkpointed.assign(L, true); });
    }
    if (const int64_t o = count(config_.offloaded); o > 0) {
      change("offloading the frozen weights of " + std::to_string(o) + " layers to host memory",
             "no offload", [L](TrainConfig& c) { c.offloaded.assign(L, false); });
    }
    if (config_.loss_chunk > 0 && !chunks_loss) {
      change("the loss in chunks of " + std::to_string(config_.loss_chunk) + " tokens",
             "the full logits", [](TrainConfig& c) { c.loss_chunk = 0; });
    }
  }

  // The trainer takes SGD without momentum only.
  void plain_sgd() {
    if (config_.optimizer == planner::Optimizer::kSgdMomentum) {
      change("SGD with momentum", "plain SGD",
             [](TrainConfig& c) { c.optimizer = planner::Optimizer::kSgd; });
    }
  }

  // 4-bit weights are NF4 with double quantization (bitsandbytes' QLoRA setting).
  void nf4_only() {
    planner::QuantOptions& q = config_.weights;
    if (q.format == WeightFormat::kFp4) {
      change("fp4 weights", "nf4 with double quantization", [](TrainConfig& c) { c.weights = {}; });
    } else if (q.format == WeightFormat::kNf4 && !q.double_quant) {
      change("nf4 without double quantization", "nf4 with double quantization",
             [](TrainConfig& c) { c.weights.double_quant = true; });
    }
  }

 private:
  int64_t peak(const TrainConfig& c) const {
    return planner::estimate(p_.model, c, device_).peak_bytes;
  }

  const planner::PlanFile& p_;
  std::string trainer_;
  planner::DeviceModel device_;
  TrainConfig config_;
  int64_t peak_ = 0;
  std::vector<ExportChange> changes_;
};

std::string model_id(const planner::PlanFile& p) {
  return p.model.hf_id.empty() ? p.model_reference : p.model.hf_id;
}

// The lines every file starts with (as YAML comments, or a JSON "loraplan" object).
std::vector<std::string> header(const planner::PlanFile& p, ExportTarget t, const Exported& e) {
  std::vector<std::string> lines = {
      "loraplan export --to " + std::string(export_target_name(t)) + " of a plan for " +
          model_id(p) + (p.gpu.empty() ? "" : " on " + p.gpu),
      "predicted peak " + planner::format_bytes(e.peak_bytes) + " (the plan's: " +
          planner::format_bytes(p.predicted_peak_bytes) + "), as loraplan's executor allocates it",
      "learning_rate and max_grad_norm are train's defaults, not part of the plan"};
  for (const ExportChange& c : e.changes) lines.push_back("changed: " + change_text(c));
  return lines;
}

std::string yaml_text(const std::vector<std::string>& comments,
                      const std::function<void(YAML::Emitter&)>& body) {
  YAML::Emitter out;
  out.SetDoublePrecision(15);  // 0.05, not 0.050000000000000003
  for (const std::string& c : comments) out << YAML::Comment(c) << YAML::Newline;
  out << YAML::BeginMap;
  body(out);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

template <typename V>
void kv(YAML::Emitter& out, const std::string& key, const V& value) {
  out << YAML::Key << key << YAML::Value << value;
}

void kv_list(YAML::Emitter& out, const std::string& key, const std::vector<std::string>& v) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << v;
}

constexpr double kLearningRate = 2e-4, kMaxGradNorm = 1.0;  // train's defaults

bool four_bit(const TrainConfig& c) {
  return planner::weight_format_info(c.weights.format).four_bit();
}
bool eight_bit(const TrainConfig& c) { return c.weights.format == WeightFormat::kInt8; }

nlohmann::ordered_json notes_json(const planner::PlanFile& p, ExportTarget t, const Exported& e) {
  nlohmann::ordered_json changes = nlohmann::ordered_json::array();
  for (const ExportChange& c : e.changes) {
    changes.push_back({{"what", c.what},
                       {"plan_peak_bytes", c.plan_peak_bytes},
                       {"exported_peak_bytes", c.exported_peak_bytes},
                       {"fits", c.fits}});
  }
  return {{"comment", header(p, t, e)},
          {"plan_peak_bytes", p.predicted_peak_bytes},
          {"predicted_peak_bytes", e.peak_bytes},
          {"changes", changes}};
}

std::string hf_text(const planner::PlanFile& p, const Exported& e) {
  const TrainConfig& c = e.config;
  nlohmann::ordered_json bnb = nullptr;
  if (four_bit(c)) {
    bnb = {{"load_in_4bit", true},
           {"bnb_4bit_quant_type", planner::weight_format_name(c.weights.format)},
           {"bnb_4bit_use_double_quant", c.weights.double_quant},
           {"bnb_4bit_compute_dtype", torch_dtype(c.compute)}};
  } else if (eight_bit(c)) {
    bnb = {{"load_in_8bit", true}};
  }
  nlohmann::ordered_json j = {
      {"model_name_or_path", model_id(p)},
      {"model_kwargs",
       {{"torch_dtype", weights_dtype(c)},
        {"attn_implementation", c.attention == planner::Attention::kEager ? "eager" : "sdpa"}}},
      {"bnb_config", bnb},
      {"lora_config",
       {{"r", c.lora_rank},
        {"lora_alpha", c.lora_alpha},
        {"lora_dropout", c.lora_dropout},
        {"target_modules", target_modules(c)},
        {"bias", "none"},
        {"task_type", "CAUSAL_LM"}}},
      {"max_seq_length", c.seq_len},
      {"training_arguments",
       {{"per_device_train_batch_size", c.micro_batch},
        {"gradient_accumulation_steps", c.grad_accum},
        {"gradient_checkpointing", count(c.checkpointed) > 0},
        {"optim", hf_optimizer(c.optimizer)},
        {"bf16", c.compute == planner::DType::kBF16},
        {"fp16", c.compute == planner::DType::kF16},
        {"learning_rate", kLearningRate},
        {"max_grad_norm", kMaxGradNorm}}},
      {"loraplan", notes_json(p, ExportTarget::kHf, e)}};
  return j.dump(2) + "\n";
}

std::string trl_text(const planner::PlanFile& p, const Exported& e, bool packing) {
  const TrainConfig& c = e.config;
  return yaml_text(header(p, ExportTarget::kTrl, e), [&](YAML::Emitter& out) {
    kv(out, "model_name_or_path", model_id(p));
    kv(out, "torch_dtype", weights_dtype(c));
    kv(out, "attn_implementation",
       std::string(c.attention == planner::Attention::kEager ? "eager" : "sdpa"));
    kv(out, "load_in_4bit", four_bit(c));
    kv(out, "load_in_8bit", eight_bit(c));
    if (four_bit(c)) {
      kv(out, "bnb_4bit_quant_type", std::string(planner::weight_format_name(c.weights.format)));
      kv(out, "use_bnb_nested_quant", c.weights.double_quant);
    }
    kv(out, "use_peft", true);
    kv(out, "lora_r", c.lora_rank);
    kv(out, "lora_alpha", c.lora_alpha);
    kv(out, "lora_dropout", c.lora_dropout);
    kv_list(out, "lora_target_modules", target_modules(c));
    kv(out, "max_length", c.seq_len);
    kv(out, "packing", packing);
    kv(out, "padding_free", packing);
    kv(out, "per_device_train_batch_size", c.micro_batch);
    kv(out, "gradient_accumulation_steps", c.grad_accum);
    kv(out, "gradient_checkpointing", count(c.checkpointed) > 0);
    kv(out, "optim", hf_optimizer(c.optimizer));
    kv(out, "bf16", c.compute == planner::DType::kBF16);
    kv(out, "fp16", c.compute == planner::DType::kF16);
    kv(out, "learning_rate", kLearningRate);
    kv(out, "max_grad_norm", kMaxGradNorm);
  });
}

std::string axolotl_text(const planner::PlanFile& p, const Exported& e, bool packing) {
  const TrainConfig& c = e.config;
  return yaml_text(header(p, ExportTarget::kAxolotl, e), [&](YAML::Emitter& out) {
    kv(out, "base_model", model_id(p));
    kv(out, "load_in_4bit", four_bit(c));
    kv(out, "load_in_8bit", eight_bit(c));
    kv(out, "adapter", std::string(four_bit(c) ? "qlora" : "lora"));
    kv(out, "lora_r", c.lora_rank);
    kv(out, "lora_alpha", c.lora_alpha);
    kv(out, "lora_dropout", c.lora_dropout);
    kv_list(out, "lora_target_modules", target_modules(c));
    kv(out, "sequence_len", c.seq_len);
    kv(out, "sample_packing", packing);
    kv(out, "pad_to_sequence_len", true);
    kv(out, "micro_batch_size", c.micro_batch);
    kv(out, "gradient_accumulation_steps", c.grad_accum);
    kv(out, "gradient_checkpointing", count(c.checkpointed) > 0);
    kv(out, "optimizer", hf_optimizer(c.optimizer));
    kv(out, "learning_rate", kLearningRate);
    kv(out, "max_grad_norm", kMaxGradNorm);
    kv(out, "bf16", c.compute == planner::DType::kBF16);
    kv(out, "fp16", c.compute == planner::DType::kF16);
    kv(out, "sdp_attention", c.attention == planner::Attention::kEfficient);
    kv(out, "flash_attention", false);
    kv(out, "eager_attention", c.attention == planner::Attention::kEager);
  });
}

std::string torchtune_builder(const std::string& hf_id) {
  for (const auto& [id, builder] : torchtune_builders()) {
    if (id == hf_id) return "torchtune.models." + std::string(builder);
  }
  return "";
}

bool is_mlp(Module m) {
  return m == Module::kGate || m == Module::kUp || m == Module::kGateUp || m == Module::kDown;
}

// torchtune names attention projections q_proj, k_proj, v_proj and output_proj; Phi-3's fused
// qkv_proj is its three.
std::vector<std::string> torchtune_attn_modules(const TrainConfig& c) {
  std::vector<std::string> out;
  for (Module m : c.lora_targets.modules) {
    if (m == Module::kQkv) out.insert(out.end(), {"q_proj", "k_proj", "v_proj"});
    if (m == Module::kQ || m == Module::kK || m == Module::kV)
      out.emplace_back(planner::module_name(m));
    if (m == Module::kO) out.emplace_back("output_proj");
  }
  return out;
}

std::string torchtune_text(const planner::PlanFile& p, const Exported& e, bool packing) {
  const TrainConfig& c = e.config;
  const bool mlp =
      std::any_of(c.lora_targets.modules.begin(), c.lora_targets.modules.end(), is_mlp);
  const int64_t N = c.tokens();
  return yaml_text(header(p, ExportTarget::kTorchtune, e), [&](YAML::Emitter& out) {
    out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
    kv(out, "_component_", torchtune_builder(p.model.hf_id));
    kv_list(out, "lora_attn_modules", torchtune_attn_modules(c));
    kv(out, "apply_lora_to_mlp", mlp);
    kv(out, "apply_lora_to_output", false);
    kv(out, "lora_rank", c.lora_rank);
    kv(out, "lora_alpha", c.lora_alpha);
    kv(out, "lora_dropout", c.lora_dropout);
    kv(out, "quantize_base", four_bit(c));
    out << YAML::EndMap;
    out << YAML::Key << "tokenizer" << YAML::Value << YAML::BeginMap;
    kv(out, "max_seq_len", c.seq_len);
    out << YAML::EndMap;
    out << YAML::Key << "dataset" << YAML::Value << YAML::BeginMap;
    kv(out, "packed", packing);
    out << YAML::EndMap;
    kv(out, "batch_size", c.micro_batch);
    kv(out, "gradient_accumulation_steps", c.grad_accum);
    kv(out, "enable_activation_checkpointing", count(c.checkpointed) > 0);
    kv(out, "enable_activation_offloading", false);
    kv(out, "compile", false);
    kv(out, "dtype", std::string(c.compute == planner::DType::kBF16 ? "bf16" : "fp32"));
    out << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap;
    switch (c.optimizer) {
      case planner::Optimizer::kAdamW:
        kv(out, "_component_", std::string("torch.optim.AdamW"));
        break;
      case planner::Optimizer::kAdamW8bit:
        kv(out, "_component_", std::string("bitsandbytes.optim.AdamW8bit"));
        break;
      case planner::Optimizer::kPagedAdamW8bit:
        kv(out, "_component_", std::string("bitsandbytes.optim.PagedAdamW8bit"));
        break;
      case planner::Optimizer::kSgd:
      case planner::Optimizer::kSgdMomentum:
        kv(out, "_component_", std::string("torch.optim.SGD"));
        if (c.optimizer == planner::Optimizer::kSgdMomentum) kv(out, "momentum", 0.9);
        break;
    }
    kv(out, "lr", kLearningRate);
    out << YAML::EndMap;
    kv(out, "clip_grad_norm", kMaxGradNorm);
    out << YAML::Key << "loss" << YAML::Value << YAML::BeginMap;
    if (c.loss_chunk > 0) {
      kv(out, "_component_", std::string("torchtune.modules.loss.CEWithChunkedOutputLoss"));
      kv(out, "num_output_chunks", (N + c.loss_chunk - 1) / c.loss_chunk);
    } else {
      kv(out, "_component_", std::string("torch.nn.CrossEntropyLoss"));
    }
    out << YAML::EndMap;
  });
}

std::string unsloth_text(const planner::PlanFile& p, const Exported& e, bool packing) {
  const TrainConfig& c = e.config;
  const nlohmann::ordered_json j = {
      {"from_pretrained",
       {{"model_name", model_id(p)},
        {"max_seq_length", c.seq_len},
        {"dtype", weights_dtype(c)},
        {"load_in_4bit", four_bit(c)},
        {"load_in_8bit", eight_bit(c)}}},
      {"get_peft_model",
       {{"r", c.lora_rank},
        {"target_modules", target_modules(c)},
        {"lora_alpha", c.lora_alpha},
        {"lora_dropout", c.lora_dropout},
        {"bias", "none"},
        // True: transformers' checkpointing, as the plan has it ("unsloth" would also move the
        // saved activations to host memory, which the plan does not).
        {"use_gradient_checkpointing", count(c.checkpointed) > 0}}},
      {"sft_config",
       {{"max_length", c.seq_len},
        {"packing", packing},
        {"per_device_train_batch_size", c.micro_batch},
        {"gradient_accumulation_steps", c.grad_accum},
        {"optim", hf_optimizer(c.optimizer)},
        {"bf16", c.compute == planner::DType::kBF16},
        {"fp16", c.compute == planner::DType::kF16},
        {"learning_rate", kLearningRate},
        {"max_grad_norm", kMaxGradNorm}}},
      {"loraplan", notes_json(p, ExportTarget::kUnsloth, e)}};
  return j.dump(2) + "\n";
}

}  // namespace

const std::vector<std::pair<std::string_view, std::string_view>>& torchtune_builders() {
  static const std::vector<std::pair<std::string_view, std::string_view>> builders = {
      {"meta-llama/Llama-3.1-8B", "llama3_1.lora_llama3_1_8b"},
      {"meta-llama/Llama-3.1-8B-Instruct", "llama3_1.lora_llama3_1_8b"},
      {"meta-llama/Llama-3.2-1B", "llama3_2.lora_llama3_2_1b"},
      {"meta-llama/Llama-3.2-1B-Instruct", "llama3_2.lora_llama3_2_1b"},
      {"meta-llama/Llama-3.2-3B", "llama3_2.lora_llama3_2_3b"},
      {"meta-llama/Llama-3.2-3B-Instruct", "llama3_2.lora_llama3_2_3b"},
      {"meta-llama/Llama-2-7b-hf", "llama2.lora_llama2_7b"},
      {"mistralai/Mistral-7B-v0.3", "mistral.lora_mistral_7b"},
      {"microsoft/Phi-3-mini-4k-instruct", "phi3.lora_phi3_mini"},
      {"google/gemma-2-2b", "gemma2.lora_gemma2_2b"},
      {"google/gemma-2-9b", "gemma2.lora_gemma2_9b"},
      {"Qwen/Qwen2.5-0.5B", "qwen2_5.lora_qwen2_5_0_5b_base"},
      {"Qwen/Qwen2.5-1.5B", "qwen2_5.lora_qwen2_5_1_5b_base"},
      {"Qwen/Qwen2.5-7B", "qwen2_5.lora_qwen2_5_7b_base"},
      {"Qwen/Qwen2.5-0.5B-Instruct", "qwen2_5.lora_qwen2_5_0_5b_instruct"},
      {"Qwen/Qwen2.5-1.5B-Instruct", "qwen2_5.lora_qwen2_5_1_5b_instruct"},
      {"Qwen/Qwen2.5-7B-Instruct", "qwen2_5.lora_qwen2_5_7b_instruct"},
  };
  return builders;
}

std::string torchtune_model_id(std::string_view component) {
  constexpr std::string_view kPrefix = "torchtune.models.";
  if (!component.starts_with(kPrefix)) return "";
  std::string builder(component.substr(kPrefix.size()));
  if (const size_t q = builder.find(".qlora_"); q != std::string::npos)
    builder.replace(q, 7, ".lora_");  // QLoRA builders mirror the LoRA ones
  for (const auto& [id, b] : torchtune_builders()) {
    if (b == builder) return std::string(id);  // the first id: the base model of the two
  }
  return "";
}

std::optional<ExportTarget> parse_export_target(std::string_view name) {
  for (const TargetRow& r : kTargets) {
    if (r.name == name) return r.target;
  }
  return std::nullopt;
}

std::string_view export_target_name(ExportTarget t) { return row(t).name; }

std::string export_target_choices(std::string_view separator) {
  return planner::join_names(kTargets, separator);
}

std::string change_text(const ExportChange& c) {
  return c.what + " (predicted peak " + planner::format_bytes(c.exported_peak_bytes) +
         " instead of " + planner::format_bytes(c.plan_peak_bytes) +
         (c.fits ? "" : "; over the plan's budget: it will not fit") + ")";
}

Exported export_plan(const planner::PlanFile& p, ExportTarget t, bool packing) {
  if (t == ExportTarget::kTorchtune && torchtune_builder(p.model.hf_id).empty()) {
    throw InputError("--to torchtune: torchtune has no LoRA builder loraplan knows for " +
                     model_id(p) + "; export to " + "hf, trl, axolotl or unsloth");
  }
  Mapper m(p, t);
  switch (t) {
    case ExportTarget::kHf:
    case ExportTarget::kTrl:
      m.common(false);
      m.plain_sgd();
      break;
    case ExportTarget::kAxolotl:
      m.common(false);
      m.plain_sgd();
      m.nf4_only();
      break;
    case ExportTarget::kUnsloth:
      m.common(false);
      m.plain_sgd();
      m.nf4_only();
      if (m.config().attention == planner::Attention::kEager) {
        m.change("eager attention", "Unsloth's own fused attention (efficient)",
                 [](TrainConfig& c) { c.attention = planner::Attention::kEfficient; });
      }
      break;
    case ExportTarget::kTorchtune: {
      m.common(true);
      m.nf4_only();
      if (m.config().weights.format == WeightFormat::kInt8) {
        m.change("int8 weights", "bf16 weights",
                 [](TrainConfig& c) { c.weights = {.format = WeightFormat::kBf16}; });
      }
      if (m.config().attention == planner::Attention::kEager) {
        m.change("eager attention", "scaled_dot_product_attention (efficient)",
                 [](TrainConfig& c) { c.attention = planner::Attention::kEfficient; });
      }
      if (m.config().compute == planner::DType::kF16) {
        m.change("fp16 compute", "bf16 compute",
                 [](TrainConfig& c) { c.compute = planner::DType::kBF16; });
      }
      // A chunked loss becomes a whole number of output chunks of the micro-batch's tokens.
      if (const int64_t k = m.config().loss_chunk; k > 0) {
        const int64_t N = m.config().tokens(), chunks = (N + k - 1) / k;
        if ((N + chunks - 1) / chunks != k) {
          m.change("the loss in chunks of " + std::to_string(k) + " tokens",
                   std::to_string(chunks) + " output chunks",
                   [N, chunks](TrainConfig& c) { c.loss_chunk = (N + chunks - 1) / chunks; });
        }
      }
      // torchtune adapts the MLP as a whole.
      const std::vector<Module>& mods = m.config().lora_targets.modules;
      const bool some_mlp = std::any_of(mods.begin(), mods.end(), is_mlp);
      const bool all_mlp =
          std::count_if(mods.begin(), mods.end(), is_mlp) == (p.model.fused_gate_up ? 2 : 3);
      if (some_mlp && !all_mlp) {
        const bool fused = p.model.fused_gate_up;
        m.change("LoRA on part of the MLP", "LoRA on the whole MLP", [fused](TrainConfig& c) {
          std::vector<Module>& v = c.lora_targets.modules;
          v.erase(std::remove_if(v.begin(), v.end(), is_mlp), v.end());
          if (fused) {
            v.insert(v.end(), {Module::kGateUp, Module::kDown});
          } else {
            v.insert(v.end(), {Module::kGate, Module::kUp, Module::kDown});
          }
          std::sort(v.begin(), v.end());
        });
      }
      break;
    }
  }
  Exported e;
  e.changes = std::move(m.changes());
  e.config = m.config();
  e.peak_bytes = m.peak_bytes();
  switch (t) {
    case ExportTarget::kHf:
      e.text = hf_text(p, e);
      break;
    case ExportTarget::kTrl:
      e.text = trl_text(p, e, packing);
      break;
    case ExportTarget::kAxolotl:
      e.text = axolotl_text(p, e, packing);
      break;
    case ExportTarget::kTorchtune:
      e.text = torchtune_text(p, e, packing);
      break;
    case ExportTarget::kUnsloth:
      e.text = unsloth_text(p, e, packing);
      break;
  }
  return e;
}

}  // namespace loraplan::reports
