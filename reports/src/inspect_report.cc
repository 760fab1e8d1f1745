#include "loraplan/reports/inspect_report.h"

#include "loraplan/planner/hardware.h"
#include "loraplan/planner/train_config.h"
#include "loraplan/reports/table.h"

namespace loraplan::reports {
namespace {

using planner::ModelDesc;

std::string architecture_line(const ModelDesc& m) {
  std::string s = std::string(planner::family_name(m.family)) + ": " + std::to_string(m.layers) +
                  " layers, hidden " + std::to_string(m.hidden) + ", intermediate " +
                  std::to_string(m.intermediate) + ", " + std::to_string(m.heads) + " heads (" +
                  std::to_string(m.kv_heads) + " kv) x " + std::to_string(m.head_dim) + ", vocab " +
                  std::to_string(m.vocab);
  if (m.tied_embeddings) s += ", tied embeddings";
  if (m.fused_qkv) s += ", fused qkv/gate_up";
  if (m.partial_rotary_factor < 1)
    s += ", rotary " + std::to_string(m.rotary_dim()) + "/" + std::to_string(m.head_dim);
  return s;
}

std::string number(double x) {
  std::string s = std::to_string(x);
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s;
}

// Positions and attention span: "rope theta 500000, llama3 x32 (original context 8192); sliding
// window 4096 on even layers".
std::string attention_line(const ModelDesc& m) {
  const planner::RopeScaling& r = m.rope_scaling;
  std::string s = "rope theta " + number(m.rope_theta);
  if (r.type != planner::RopeType::kDefault) {
    s += ", " + std::string(planner::rope_type_name(r.type)) + " x" + number(r.factor);
    if (r.original_max_position_embeddings > 0) {
      s += " (original context " + std::to_string(r.original_max_position_embeddings) + ")";
    }
    if (r.attention_factor != 1) s += ", attention factor " + number(r.attention_factor);
  }
  std::vector<bool> slides(static_cast<size_t>(m.layers)), even(slides.size());
  for (size_t l = 0; l < slides.size(); ++l) {
    slides[l] = m.layer_slides(static_cast<int64_t>(l));
    even[l] = l % 2 == 0;
  }
  const std::string sliding = planner::layer_set_text(slides);
  if (sliding != "none") {
    s += "; sliding window " + std::to_string(m.sliding_window);
    if (slides == even)
      s += " on even layers";
    else if (sliding != "all")
      s += " on " + sliding;
  }
  if (m.attn_logit_softcapping > 0) s += "; score softcap " + number(m.attn_logit_softcapping);
  if (m.final_logit_softcapping > 0) s += ", logit softcap " + number(m.final_logit_softcapping);
  return s;
}

// Rows shared by the text and Markdown renderings.
Table role_table(const InspectView& v) {
  const planner::ModelSummary& s = v.summary;
  Table t({{"parameters"}, {"count", Align::kRight}, {"share", Align::kRight}});
  for (const auto& [role, n] : s.params_by_role) {
    t.add_row({std::string(planner::role_name(role)), with_commas(n), percent(n, s.total_params)});
  }
  t.add_rule();
  t.add_row({"total", with_commas(s.total_params), short_count(s.total_params)});
  return t;
}

Table size_table(const InspectView& v) {
  const planner::ModelSummary& s = v.summary;
  Table t({{"weights"}, {"bytes", Align::kRight}});
  for (const auto& [dtype, n] : s.params_by_dtype) {
    t.add_row({"stored (" + std::string(planner::dtype_name(dtype)) + ")",
               planner::format_bytes(n * planner::dtype_bytes(dtype))});
  }
  t.add_row({"all bf16", planner::format_bytes(s.bf16_bytes)});
  t.add_row(
      {"nf4 + double quant (embeddings, norms, lm_head bf16)", planner::format_bytes(s.nf4_bytes)});
  return t;
}

std::string lora_line(const planner::ModelSummary& s) {
  return "LoRA r=" + std::to_string(s.lora_rank) + " on " +
         planner::lora_targets_text(s.lora_targets) + ": " + with_commas(s.lora_params) +
         " trainable parameters (" + percent(s.lora_params, s.total_params, 2) + " of the base)";
}

Table tensor_table(const InspectView& v) {
  Table t({{"tensor"}, {"shape"}, {"dtype"}, {"role"}, {"params", Align::kRight}});
  for (const planner::TensorSpec& s : v.tensors) {
    t.add_row({s.name, planner::shape_text(s.shape), std::string(planner::dtype_name(s.dtype)),
               std::string(planner::role_name(s.role)), with_commas(s.numel())});
  }
  return t;
}

std::string title(const ModelDesc& m) {
  return m.hf_id.empty() ? m.name : m.name + " (" + m.hf_id + ")";
}

}  // namespace

std::string inspect_text(const InspectView& v) {
  std::string out = title(v.model) + "\n  " + architecture_line(v.model) + "\n  " +
                    attention_line(v.model) + "\n\n";
  out += role_table(v).text() + "\n" + size_table(v).text();
  if (v.summary.lora_rank > 0) out += "\n  " + lora_line(v.summary) + "\n";
  for (const std::string& note : v.model.notes) out += "\n  note: " + note + "\n";
  if (v.list_tensors) out += "\n" + tensor_table(v).text();
  return out;
}

std::string inspect_markdown(const InspectView& v) {
  std::string out = "# " + title(v.model) + "\n\n" + architecture_line(v.model) + "  \n" +
                    attention_line(v.model) + "\n\n";
  out += role_table(v).markdown() + "\n" + size_table(v).markdown();
  if (v.summary.lora_rank > 0) out += "\n" + lora_line(v.summary) + "\n";
  for (const std::string& note : v.model.notes) out += "\n> note: " + note + "\n";
  if (v.list_tensors) out += "\n" + tensor_table(v).markdown();
  return out;
}

nlohmann::json inspect_json(const InspectView& v) {
  const ModelDesc& m = v.model;
  const planner::ModelSummary& s = v.summary;
  nlohmann::json j;
  j["model"] = m.name;
  j["hf_id"] = m.hf_id.empty() ? nlohmann::json() : nlohmann::json(m.hf_id);
  j["architecture"] = {
      {"family", planner::family_name(m.family)},
      {"vocab_size", m.vocab},
      {"hidden_size", m.hidden},
      {"intermediate_size", m.intermediate},
      {"num_hidden_layers", m.layers},
      {"num_attention_heads", m.heads},
      {"num_key_value_heads", m.kv_heads},
      {"head_dim", m.head_dim},
      {"tie_word_embeddings", m.tied_embeddings},
      {"partial_rotary_factor", m.partial_rotary_factor},
      {"dtype", planner::dtype_name(m.dtype)},
      {"rope_theta", m.rope_theta},
      {"rope_scaling",
       m.rope_scaling.type == planner::RopeType::kDefault
           ? nlohmann::json()
           : nlohmann::json{{"rope_type", planner::rope_type_name(m.rope_scaling.type)},
                            {"factor", m.rope_scaling.factor},
                            {"attention_factor", m.rope_scaling.attention_factor}}},
      {"sliding_window",
       m.sliding_window > 0 ? nlohmann::json(m.sliding_window) : nlohmann::json()}};
  j["total_params"] = s.total_params;
  j["tensor_count"] = s.tensors;
  for (const auto& [role, n] : s.params_by_role) j["params_by_role"][planner::role_name(role)] = n;
  for (const auto& [dtype, n] : s.params_by_dtype)
    j["params_by_dtype"][planner::dtype_name(dtype)] = n;
  j["bytes"] = {
      {"stored", s.stored_bytes}, {"bf16", s.bf16_bytes}, {"nf4_double_quant", s.nf4_bytes}};
  if (s.lora_rank > 0) {
    j["lora"] = {{"rank", s.lora_rank},
                 {"targets", planner::lora_targets_text(s.lora_targets)},
                 {"trainable_params", s.lora_params}};
  }
  j["notes"] = m.notes;
  if (v.list_tensors) {
    j["tensors"] = nlohmann::json::array();
    for (const planner::TensorSpec& t : v.tensors) {
      j["tensors"].push_back({{"name", t.name},
                              {"shape", t.shape},
                              {"dtype", planner::dtype_name(t.dtype)},
                              {"role", planner::role_name(t.role)},
                              {"layer", t.layer}});
    }
  }
  return j;
}

}  // namespace loraplan::reports
