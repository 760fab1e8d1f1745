#include "loraplan/reports/run_report.h"

#include <algorithm>
#include <array>
#include <set>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"

namespace loraplan::reports {
namespace {

using nlohmann::json;
using planner::JsonFields;

// The dimensions of "model", in the order report.json and messages list them.
struct Dim {
  const char* key;     // report.json field
  const char* letter;  // planner/model.h's letter
  int64_t ModelShape::*field;
};
constexpr std::array<Dim, 7> kDims = {{
    {"vocab", "V", &ModelShape::vocab},
    {"hidden", "C", &ModelShape::hidden},
    {"intermediate", "I", &ModelShape::intermediate},
    {"layers", "L", &ModelShape::layers},
    {"heads", "H", &ModelShape::heads},
    {"kv_heads", "Hkv", &ModelShape::kv_heads},
    {"head_dim", "D", &ModelShape::head_dim},
}};

constexpr const char* kMeasuredBytes = "must be a positive integer (bytes; 0 is no measurement)";

RunModel read_model(const JsonFields& top, const json& doc) {
  if (doc.contains("model") && doc.at("model").is_string()) {
    top.fail("model",
             "must be an object with the model's reference and dimensions (an older loraplan train "
             "wrote this report; train again)");
  }
  const JsonFields m = top.object("model");
  RunModel out;
  out.reference = m.string("reference");
  out.name = m.string("name");
  out.shape.family = m.string("family");
  for (const Dim& d : kDims) out.shape.*d.field = m.positive_int(d.key);
  return out;
}

RunConfig read_config(const JsonFields& c) {
  RunConfig out;
  out.seq_len = c.positive_int("seq_len");
  out.micro_batch = c.positive_int("micro_batch");
  out.grad_accum = c.positive_int("grad_accum");
  out.weights = c.string("weights");
  out.double_quant = c.boolean("double_quant");
  out.quant_block = c.positive_int("quant_block");
  out.compute_dtype = c.string("compute_dtype");
  const JsonFields lora = c.object("lora");
  out.lora_rank = lora.positive_int("rank");
  out.lora_alpha = lora.number("alpha", 0);
  out.lora_dropout = lora.number("dropout", 0);
  out.lora_targets = lora.string("targets");
  out.optimizer = c.string("optimizer");
  out.checkpoint = c.string("checkpoint");
  out.offload = c.string("offload");
  out.attention = c.string("attention");
  out.loss = c.string("loss");
  out.device = c.string("device");
  if (out.device != "cpu" && out.device != "cuda") c.fail("device", "must be \"cpu\" or \"cuda\"");
  return out;
}

std::vector<RunPhase> read_phases(const JsonFields& measured) {
  std::vector<RunPhase> out;
  std::set<std::string> seen;
  const size_t n = measured.array("phases").size();
  for (size_t i = 0; i < n; ++i) {
    const JsonFields p = measured.element("phases", i);
    RunPhase phase{p.string("name"), p.integer("peak_bytes", 1, kMeasuredBytes)};
    if (!seen.insert(phase.name).second) p.fail("name", "must name a phase measured once");
    out.push_back(std::move(phase));
  }
  return out;
}

RunReport read_report(const json& doc, const std::string& text, const std::string& where) {
  if (!doc.is_object() || !doc.contains("measured")) {
    throw InputError(
        located(where, 0,
                "not a loraplan run report: no \"measured\" (loraplan train writes report.json)"));
  }
  const JsonFields top(doc, text, where);
  RunReport r;
  r.model = read_model(top, doc);
  r.config = read_config(top.object("config"));
  r.config_as_written = doc.at("config");
  if (top.has("training")) r.gpu = top.object("training").string_or("gpu", "");
  const JsonFields measured = top.object("measured");
  r.peak_bytes = measured.integer("peak_bytes", 1, kMeasuredBytes);
  r.phases = read_phases(measured);
  r.out_of_memory = top.bool_or("out_of_memory", false);
  if (top.has("oom_splits")) {
    r.oom_splits = static_cast<int64_t>(top.array("oom_splits").size());
    if (r.oom_splits > 0) {
      const JsonFields s = top.element("oom_splits", 0);
      r.first_split = "step " + std::to_string(s.integer("step", 1, "must be a step number")) +
                      (s.bool_or("eval", false) ? ", eval micro-batch " : ", micro-batch ") +
                      std::to_string(s.integer("micro_batch", 1, "must be a micro-batch number")) +
                      ": " + std::to_string(s.integer("from", 1, "must be a number of sequences")) +
                      " -> " + std::to_string(s.integer("to", 1, "must be a number of sequences")) +
                      " sequences";
    }
  }
  r.error = top.string_or("error", "");
  if (top.has("diverged_step"))
    r.diverged_step = top.integer("diverged_step", 1, "must be a step number (1 or more)");
  if (top.has("data")) {
    const JsonFields data = top.object("data");
    const size_t n = data.array("shapes_run").size();
    for (size_t i = 0; i < n; ++i) {
      const JsonFields shape = data.element("shapes_run", i);
      r.data_shapes.push_back(
          {shape.integer("micro_batch", 1, "must be a positive number of sequences"),
           shape.integer("seq_len", 1, "must be a positive number of tokens"),
           shape.bool_or("first", false)});
    }
    if (n == 0) data.fail("shapes_run", "must list the micro-batch shapes the run ran");
  }
  return r;
}

}  // namespace

RunModel run_model(const std::string& reference, const planner::ModelDesc& m) {
  return {reference,
          m.name,
          {std::string(planner::family_name(m.family)), m.vocab, m.hidden, m.intermediate, m.layers,
           m.heads, m.kv_heads, m.head_dim}};
}

json run_model_json(const RunModel& m) {
  json j = {{"reference", m.reference}, {"name", m.name}, {"family", m.shape.family}};
  for (const Dim& d : kDims) j[d.key] = m.shape.*d.field;
  return j;
}

std::string model_summary(const RunModel& m) {
  std::string s = m.name + " (" + m.shape.family + ":";
  for (size_t i = 0; i < kDims.size(); ++i) {
    s += std::string(i == 0 ? " " : ", ") + kDims[i].letter + " " +
         std::to_string(m.shape.*kDims[i].field);
  }
  return s + ")";
}

RunReport parse_run_report(const std::string& text, const std::string& where) {
  try {
    return read_report(planner::parse_json(text, where, "run report"), text, where);
  } catch (const json::exception& e) {  // a guard: every field above is checked before it is read
    throw InputError(located(where, 0, std::string("not a loraplan run report: ") + e.what()));
  }
}

}  // namespace loraplan::reports
