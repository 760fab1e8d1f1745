#include "loraplan/planner/plan_file.h"

#include <cmath>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {

using nlohmann::json;
using ojson = nlohmann::ordered_json;  // plan.json keeps its fields in reading order

namespace {

double rounded(double x, double unit) { return std::round(x / unit) * unit; }

ojson candidate_json(const PlanCandidate& p) {
  ojson j = {{"label", plan_label(p.config)},
             {"fits", p.fits},
             {"simulated", p.simulated},
             {"tokens_per_s", rounded(p.cost.tokens_per_s, 0.1)}};
  j["peak_bytes"] = p.simulated ? ojson(p.peak_bytes) : ojson();
  if (!p.reason.empty()) j["reason"] = p.reason;
  return j;
}

ojson breakdown_json(const Estimate& e) {
  ojson j = ojson::object();
  for (int i = 0; i < kCategoryCount; ++i) {
    j[std::string(category_name(static_cast<Category>(i)))] = e.lower_bound.at_peak[i];
  }
  j["allocator"] = e.fragmentation_bytes();
  j["cuda_context"] = e.context_bytes;
  return j;
}

}  // namespace

ojson plan_config_json(const TrainConfig& c) {
  ojson checkpoint = ojson::array(), offload = ojson::array(), targets = ojson::array();
  for (size_t l = 0; l < c.checkpointed.size(); ++l) {
    if (c.checkpointed[l]) checkpoint.push_back(l);
    offload.push_back(c.offloaded[l] ? "cpu" : "gpu");
  }
  for (Module m : c.lora_targets.modules) targets.push_back(module_name(m));
  ojson j = {
      {"seq_len", c.seq_len},
      {"micro_batch", c.micro_batch},
      {"grad_accum", c.grad_accum},
      {"weights",
       {{"format", weight_format_name(c.weights.format)},
        {"double_quant", c.weights.double_quant},
        {"block", c.weights.block}}},
      {"compute_dtype", dtype_name(c.compute)},
      {"lora",
       {{"rank", c.lora_rank},
        {"alpha", c.lora_alpha},
        {"dropout", c.lora_dropout},
        {"targets", targets}}},
      {"optimizer", optimizer_name(c.optimizer)},
      {"checkpoint_layers", checkpoint},
      {"offload", offload},
      {"attention", attention_name(c.attention)},
      {"loss", {{"kind", c.loss_chunk > 0 ? "chunked" : "full"}, {"chunk_tokens", c.loss_chunk}}},
      {"packing", false}};
  if (c.has_eval()) j["eval"] = {{"micro_batch", c.eval_micro_batch}, {"seq_len", c.eval_seq_len}};
  return j;
}

ojson plan_json(const PlanInputs& p) {
  const ModelDesc& m = p.model;
  const PlanSearch& s = p.search;
  const Estimate& e = s.estimate;
  ojson j;
  j["schema"] = "loraplan-plan";
  j["version"] = kPlanVersion;
  j["model"] = {{"reference", p.model_reference},
                {"name", m.name},
                {"family", family_name(m.family)},
                {"vocab", m.vocab},
                {"hidden", m.hidden},
                {"intermediate", m.intermediate},
                {"layers", m.layers},
                {"heads", m.heads},
                {"kv_heads", m.kv_heads},
                {"head_dim", m.head_dim},
                {"dtype", dtype_name(m.dtype)},
                {"parameters", total_params(inventory(m))}};
  const bool cuda = p.device.device == Device::kCuda;
  j["hardware"] = {{"device", device_name(p.device.device)},
                   {"gpu", cuda ? ojson(p.device.name) : ojson()},
                   {"budget_bytes", p.device.budget_bytes},
                   {"margin_bytes", margin_for(p.space, p.device.budget_bytes)},
                   {"limit_bytes", s.limit_bytes},
                   {"cuda_context_bytes", p.device.cuda_context_bytes},
                   {"rates", p.rates.source}};
  j["config"] = plan_config_json(s.chosen.config);
  ojson phases = ojson::array();
  for (const PhasePeak& ph : e.phases) {
    phases.push_back({{"name", ph.name},
                      {"peak_bytes", ph.peak_bytes},
                      {"allocated_bytes", ph.allocated_bytes}});
  }
  const StepCost& t = s.chosen.cost;
  j["prediction"] = {{"peak_bytes", e.peak_bytes},
                     {"lower_bound_bytes", e.lower_bound.peak_bytes},
                     {"allocated_peak_bytes", e.allocated_peak},
                     {"reserved_peak_bytes", e.reserved_peak},
                     {"host_bytes", e.host_bytes},
                     {"peak_phase", e.peak_phase},
                     {"breakdown", breakdown_json(e)},
                     {"phases", phases},
                     {"tokens_per_s", rounded(t.tokens_per_s, 0.1)},
                     {"step_seconds", rounded(t.step_s, 1e-6)},
                     {"step_time",
                      {{"frozen_s", rounded(t.frozen_s, 1e-6)},
                       {"lora_s", rounded(t.lora_s, 1e-6)},
                       {"attention_s", rounded(t.attention_s, 1e-6)},
                       {"recompute_s", rounded(t.recompute_s, 1e-6)},
                       {"dequant_s", rounded(t.dequant_s, 1e-6)},
                       {"elementwise_s", rounded(t.elementwise_s, 1e-6)},
                       {"head_s", rounded(t.head_s, 1e-6)},
                       {"offload_s", rounded(t.offload_s, 1e-6)},
                       {"optimizer_s", rounded(t.optimizer_s, 1e-6)},
                       {"overhead_s", rounded(t.overhead_s, 1e-6)}}}};
  ojson weights = ojson::array(), optimizers = ojson::array();
  for (const QuantOptions& q : p.space.weights) weights.push_back(weight_format_name(q.format));
  for (Optimizer o : p.space.optimizers) optimizers.push_back(optimizer_name(o));
  j["search"] = {{"target_batch", p.space.target_batch},
                 {"allowed_weights", weights},
                 {"allowed_optimizers", optimizers},
                 {"offload_allowed", p.space.allow_offload},
                 {"estimates", s.estimates},
                 {"boundaries", s.boundaries}};
  j["runner_ups"] = ojson::array();
  for (const PlanCandidate& c : s.runner_ups) j["runner_ups"].push_back(candidate_json(c));
  j["rejected"] = ojson::array();
  for (const PlanCandidate& c : s.rejected) j["rejected"].push_back(candidate_json(c));
  return j;
}

namespace {

std::vector<bool> layer_flags(const JsonFields& f, const json& list, const char* key,
                              int64_t layers) {
  std::vector<bool> set(layers, false);
  for (const json& v : list) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= layers) {
      f.fail(key, "must list layers 0.." + std::to_string(layers - 1) + " (found " +
                      json_excerpt(v) + ")");
    }
    set[v.get<int64_t>()] = true;
  }
  return set;
}

}  // namespace

namespace {

// plan.json's "model": the reference, loaded, and its dimensions as the plan recorded them.
void read_plan_model(const JsonFields& top, PlanFile& p) {
  const JsonFields model = top.object("model");
  p.model_reference = model.string("reference");
  p.model = load_model(p.model_reference);
  for (const auto& [key, actual] : {std::pair<const char*, int64_t>{"vocab", p.model.vocab},
                                    {"hidden", p.model.hidden},
                                    {"intermediate", p.model.intermediate},
                                    {"layers", p.model.layers},
                                    {"heads", p.model.heads},
                                    {"kv_heads", p.model.kv_heads},
                                    {"head_dim", p.model.head_dim}}) {
    if (model.positive_int(key) != actual) {
      model.fail(key, "must match the model " + p.model_reference + " (" + std::to_string(actual) +
                          "); the plan was made for another model");
    }
  }
}

// "hardware": the device, the GPU and the budget.
void read_plan_hardware(const JsonFields& top, PlanFile& p) {
  const JsonFields hw = top.object("hardware");
  const std::string device = hw.string("device");
  if (device != "cuda" && device != "cpu") hw.fail("device", "must be \"cuda\" or \"cpu\"");
  p.device = device == "cpu" ? Device::kCpu : Device::kCuda;
  p.gpu = p.device == Device::kCuda ? hw.string("gpu") : "";
  p.budget_bytes = hw.integer("budget_bytes", 0, "must be a non-negative integer");
}

// "config.weights" and "config.compute_dtype".
void read_plan_precision(const JsonFields& cf, TrainConfig& c) {
  const JsonFields w = cf.object("weights");
  const auto format = parse_weight_format(w.string("format"));
  if (!format) w.fail("format", "must be one of " + weight_format_choices(", "));
  c.weights.format = *format;
  c.weights.double_quant = w.boolean("double_quant");
  c.weights.block = w.positive_int("block");
  const auto compute = parse_dtype(cf.string("compute_dtype"));
  if (!compute ||
      (*compute != DType::kBF16 && *compute != DType::kF16 && *compute != DType::kF32)) {
    cf.fail("compute_dtype", "must be bf16, fp16 or fp32");
  }
  c.compute = *compute;
}

// "config.lora": rank, alpha, dropout and the targets, which must be modules of the model.
void read_plan_lora(const JsonFields& cf, const ModelDesc& m, TrainConfig& c) {
  const JsonFields lora = cf.object("lora");
  c.lora_rank = lora.positive_int("rank");
  c.lora_alpha = lora.number("alpha", 0);
  c.lora_dropout = lora.number("dropout", 0);
  std::string targets;
  for (const json& t : lora.array("targets")) {
    if (!t.is_string()) lora.fail("targets", "must be a list of module names");
    targets += (targets.empty() ? "" : ",") + t.get<std::string>();
  }
  if (targets.empty()) lora.fail("targets", "must name at least one module");
  try {
    c.lora_targets = parse_lora_targets(targets, m, "targets");
  } catch (const InputError& e) {
    lora.fail("targets", std::string("must name modules of the model: ") + e.what());
  }
}

// "config.checkpoint_layers" and "config.offload" (one "gpu" or "cpu" per layer).
void read_plan_layers(const JsonFields& cf, int64_t layers, TrainConfig& c) {
  c.checkpointed = layer_flags(cf, cf.array("checkpoint_layers"), "checkpoint_layers", layers);
  const json& offload = cf.array("offload");
  if (static_cast<int64_t>(offload.size()) != layers) {
    cf.fail("offload",
            "must give \"gpu\" or \"cpu\" for each of the " + std::to_string(layers) + " layers");
  }
  c.offloaded.assign(layers, false);
  for (size_t l = 0; l < offload.size(); ++l) {
    if (offload[l] != "gpu" && offload[l] != "cpu")
      cf.fail("offload", "must hold only \"gpu\" or \"cpu\"");
    c.offloaded[l] = offload[l] == "cpu";
  }
}

// "config": every knob, then validated against the model as the flags are.
void read_plan_config(const JsonFields& top, const std::string& path, PlanFile& p) {
  const JsonFields cf = top.object("config");
  TrainConfig& c = p.config;
  c.device = p.device;
  c.seq_len = cf.positive_int_up_to("seq_len", ConfigLimits::kSeqLen);
  c.micro_batch = cf.positive_int_up_to("micro_batch", ConfigLimits::kMicroBatch);
  c.grad_accum = cf.positive_int_up_to("grad_accum", ConfigLimits::kGradAccum);
  read_plan_precision(cf, c);
  read_plan_lora(cf, p.model, c);
  const auto optimizer = parse_optimizer(cf.string("optimizer"));
  if (!optimizer) cf.fail("optimizer", "must be one of " + optimizer_choices(", "));
  c.optimizer = *optimizer;
  read_plan_layers(cf, p.model.layers, c);
  const std::string attention = cf.string("attention");
  if (attention != "eager" && attention != "efficient")
    cf.fail("attention", "must be \"eager\" or \"efficient\"");
  c.attention = attention == "eager" ? Attention::kEager : Attention::kEfficient;
  const JsonFields loss = cf.object("loss");
  const std::string kind = loss.string("kind");
  if (kind != "full" && kind != "chunked") loss.fail("kind", "must be \"full\" or \"chunked\"");
  c.loss_chunk = kind == "chunked" ? loss.positive_int("chunk_tokens") : 0;
  if (cf.bool_or("packing", false))
    cf.fail("packing", "must be false (sequence packing is not supported yet)");
  if (cf.has("eval")) {  // null or absent: no evaluation step
    const JsonFields eval = cf.object("eval");
    c.eval_micro_batch = eval.positive_int("micro_batch");
    c.eval_seq_len = eval.positive_int("seq_len");
  }
  try {
    validate(c, p.model);
  } catch (const InputError& e) {
    throw InputError(located(path, 0, e.what()));
  }
}

}  // namespace

PlanFile read_plan(const std::string& path) {
  const std::string text = read_text_file(path);
  const json j = parse_json(text, path, "plan");
  if (!j.is_object()) throw InputError(located(path, 0, "a plan must be a JSON object"));
  const JsonFields top(j, text, path);
  if (top.string("schema") != "loraplan-plan") top.fail("schema", "must be \"loraplan-plan\"");
  if (top.integer("version", 1, "must be a positive integer") != kPlanVersion) {
    top.fail("version", "must be " + std::to_string(kPlanVersion) +
                            " (this loraplan reads plan version " + std::to_string(kPlanVersion) +
                            ")");
  }
  PlanFile p;
  read_plan_model(top, p);
  read_plan_hardware(top, p);
  read_plan_config(top, path, p);
  const JsonFields prediction = top.object("prediction");
  p.predicted_peak_bytes = prediction.positive_int("peak_bytes");
  p.prediction = j.at("prediction");
  return p;
}

}  // namespace loraplan::planner
