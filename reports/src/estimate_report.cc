#include "loraplan/reports/estimate_report.h"

#include <cstdio>

#include "loraplan/planner/hardware.h"
#include "loraplan/reports/html.h"
#include "loraplan/reports/table.h"
#include "loraplan/reports/timeline.h"

namespace loraplan::reports {
namespace {

using planner::Category;
using planner::format_bytes;

// The breakdown rows, in the order a user reads a memory bill; they sum to the peak.
struct Row {
  std::string label;
  std::string key;  // JSON key
  int64_t bytes;
};

std::vector<Row> breakdown(const planner::Estimate& e) {
  const planner::CategoryBytes& at = e.lower_bound.at_peak;
  auto cat = [&](Category c) { return at[static_cast<int>(c)]; };
  std::vector<Row> rows = {
      {"base model (frozen weights)", "weights", cat(Category::kWeights)},
      {"LoRA adapters", "adapters", cat(Category::kAdapters)},
      {"optimizer states", "optimizer", cat(Category::kOptimizer)},
      {"gradients", "gradients", cat(Category::kGradients)},
      {"activations", "activations", cat(Category::kActivations)},
      {"logits and loss", "logits", cat(Category::kLogits)},
      {"input batch", "batch", cat(Category::kBatch)},
      {"workspace (dequant, attention, cuBLAS)", "workspace", cat(Category::kWorkspace)},
      {"offload staging", "offload_staging", cat(Category::kOffloadStaging)},
  };
  if (e.context_bytes > 0 || e.fragmentation_bytes() > 0) {
    rows.push_back({"allocator rounding and cache", "allocator", e.fragmentation_bytes()});
    rows.push_back({"CUDA context", "cuda_context", e.context_bytes});
  }
  return rows;
}

std::string device_line(const EstimateView& v) {
  const planner::DeviceModel& d = v.device;
  if (d.device == planner::Device::kCpu) {
    return "cpu" +
           (d.budget_bytes > 0 ? ", budget " + format_bytes(d.budget_bytes) : std::string());
  }
  return d.name + " (" + format_bytes(d.budget_bytes) + ")";
}

// The largest phase of each kind, e.g. "bwd 4.81 GiB (L31)".
std::string phase_summary(const planner::Estimate& e) {
  std::string out;
  for (const char* kind : {"fwd", "loss", "bwd", "optim"}) {
    const planner::PhasePeak* best = nullptr;
    for (const planner::PhasePeak& p : e.phases) {
      if (p.name.rfind(kind, 0) == 0 && (!best || p.peak_bytes > best->peak_bytes)) best = &p;
    }
    if (!best) continue;
    out += (out.empty() ? "" : ", ") + best->name + " " + format_bytes(best->peak_bytes);
  }
  return out;
}

Table bill(const EstimateView& v) {
  const planner::Estimate& e = v.estimate;
  Table t(
      {{"at the peak (" + e.peak_phase + ")"}, {"bytes", Align::kRight}, {"share", Align::kRight}});
  for (const Row& r : breakdown(e)) {
    if (r.bytes == 0 && r.key != "activations") continue;
    t.add_row({r.label, format_bytes(r.bytes), percent(r.bytes, e.peak_bytes)});
  }
  t.add_rule();
  t.add_row({"total", format_bytes(e.peak_bytes), ""});
  if (e.budget_bytes > 0) {
    t.add_row({"budget", format_bytes(e.budget_bytes), ""});
    t.add_row({e.fits ? "headroom" : "over budget by",
               format_bytes(e.fits ? e.headroom_bytes() : -e.headroom_bytes()), ""});
  }
  return t;
}

Table fixes(const std::vector<planner::Suggestion>& s) {
  Table t({{"change"}, {"peak", Align::kRight}, {"why"}});
  for (const planner::Suggestion& x : s) t.add_row({x.change, format_bytes(x.peak_bytes), x.why});
  return t;
}

std::string verdict(const planner::Estimate& e) {
  if (e.budget_bytes <= 0) return "peak " + format_bytes(e.peak_bytes) + " (no budget given)";
  return e.fits ? "FITS with " + format_bytes(e.headroom_bytes()) + " to spare"
                : "DOES NOT FIT: needs " + format_bytes(e.peak_bytes) + ", " +
                      format_bytes(-e.headroom_bytes()) + " more than the budget";
}

}  // namespace

nlohmann::json config_json(const planner::TrainConfig& c) {
  nlohmann::json j = {
      {"seq_len", c.seq_len},
      {"micro_batch", c.micro_batch},
      {"grad_accum", c.grad_accum},
      {"weights", planner::weight_format_name(c.weights.format)},
      {"double_quant", c.weights.double_quant},
      {"quant_block", c.weights.block},
      {"compute_dtype", planner::dtype_name(c.compute)},
      {"lora",
       {{"rank", c.lora_rank},
        {"alpha", c.lora_alpha},
        {"dropout", c.lora_dropout},
        {"targets", planner::lora_targets_text(c.lora_targets)}}},
      {"optimizer", planner::optimizer_name(c.optimizer)},
      {"checkpoint", planner::layer_set_text(c.checkpointed)},
      {"offload", planner::layer_set_text(c.offloaded)},
      {"attention", planner::attention_name(c.attention)},
      {"loss", c.loss_chunk > 0 ? "chunked:" + std::to_string(c.loss_chunk) : std::string("full")},
      {"device", planner::device_name(c.device)}};
  if (c.has_eval()) j["eval"] = {{"micro_batch", c.eval_micro_batch}, {"seq_len", c.eval_seq_len}};
  return j;
}

std::string config_line(const planner::TrainConfig& c) {
  const std::string w = planner::weights_text(c.weights);
  return "T " + std::to_string(c.seq_len) + " x B " + std::to_string(c.micro_batch) + " x accum " +
         std::to_string(c.grad_accum) + " | " + w + " | " +
         std::string(planner::dtype_name(c.compute)) + " | LoRA r" + std::to_string(c.lora_rank) +
         " " + planner::lora_targets_text(c.lora_targets) + " | " +
         std::string(planner::optimizer_name(c.optimizer)) + " | checkpoint " +
         planner::layer_set_text(c.checkpointed) + " | offload " +
         planner::layer_set_text(c.offloaded) + " | attention " +
         std::string(planner::attention_name(c.attention)) + " | loss " +
         (c.loss_chunk > 0 ? "chunked:" + std::to_string(c.loss_chunk) : std::string("full"));
}

std::string estimate_text(const EstimateView& v) {
  const planner::Estimate& e = v.estimate;
  std::string out =
      v.model.name + " on " + device_line(v) + "\n  " + config_line(v.config) + "\n\n";
  out += bill(v).text() + "\n  live tensors by phase: " + phase_summary(e) + "\n";
  out += e.host_bytes > 0 ? "  host memory: " + format_bytes(e.host_bytes) +
                                " (offloaded weights, paged optimizer)\n"
                          : std::string(
                                "  host memory: none beyond the process itself (no "
                                "offloaded weights or paged optimizer state)\n");
  for (const std::string& note : planner::config_notes(v.model, v.config))
    out += "  note: " + note + "\n";
  out += "\n  " + verdict(e) + "\n";
  if (!v.suggestions.empty())
    out += "\n  changes that make it fit:\n" + fixes(v.suggestions).text(4);
  else if (!e.fits)
    out += "  no single change makes it fit; try a smaller model or a larger GPU\n";
  return out;
}

std::string estimate_markdown(const EstimateView& v) {
  const planner::Estimate& e = v.estimate;
  std::string out =
      "# " + v.model.name + " on " + device_line(v) + "\n\n`" + config_line(v.config) + "`\n\n";
  out += bill(v).markdown() + "\nLive tensors by phase: " + phase_summary(e) + "\n";
  for (const std::string& note : planner::config_notes(v.model, v.config))
    out += "\n> note: " + note + "\n";
  out += "\n**" + verdict(e) + "**\n";
  if (!v.suggestions.empty())
    out += "\nChanges that make it fit:\n\n" + fixes(v.suggestions).markdown();
  return out;
}

nlohmann::json estimate_json(const EstimateView& v) {
  const planner::Estimate& e = v.estimate;
  nlohmann::json j;
  j["model"] = v.model.name;
  j["device"] = planner::device_name(v.device.device);
  j["gpu"] =
      v.device.device == planner::Device::kCuda ? nlohmann::json(v.device.name) : nlohmann::json();
  j["config"] = config_json(v.config);
  j["peak_bytes"] = e.peak_bytes;
  j["budget_bytes"] = e.budget_bytes > 0 ? nlohmann::json(e.budget_bytes) : nlohmann::json();
  j["fits"] = e.fits;
  j["headroom_bytes"] = e.budget_bytes > 0 ? nlohmann::json(e.headroom_bytes()) : nlohmann::json();
  j["peak_phase"] = e.peak_phase;
  j["breakdown"] = nlohmann::json::object();
  for (const Row& r : breakdown(e)) j["breakdown"][r.key] = r.bytes;
  j["lower_bound_bytes"] = e.lower_bound.peak_bytes;
  j["allocated_peak_bytes"] = e.allocated_peak;
  j["reserved_peak_bytes"] = e.reserved_peak;
  j["fragmentation_bytes"] = e.fragmentation_bytes();
  j["resident_bytes"] = e.lower_bound.resident_bytes;
  j["host_bytes"] = e.host_bytes;
  j["phases"] = nlohmann::json::array();
  for (const planner::PhasePeak& p : e.phases) {
    j["phases"].push_back(
        {{"name", p.name}, {"peak_bytes", p.peak_bytes}, {"allocated_bytes", p.allocated_bytes}});
  }
  j["notes"] = planner::config_notes(v.model, v.config);
  j["suggestions"] = nlohmann::json::array();
  for (const planner::Suggestion& s : v.suggestions) {
    j["suggestions"].push_back(
        {{"change", s.change}, {"why", s.why}, {"peak_bytes", s.peak_bytes}});
  }
  return j;
}

std::string estimate_html(const EstimateView& v, const std::string& command,
                          const std::string& extra) {
  const planner::Estimate& e = v.estimate;
  const std::string title = "loraplan estimate: " + v.model.name + " on " + device_line(v);
  std::string body = "<h1>" + html_escape(title) + "</h1>\n<p class=\"mono\">" +
                     html_escape(config_line(v.config)) + "</p>\n<p class=\"verdict " +
                     (e.fits ? "fits" : "over") + "\">" + html_escape(verdict(e)) + "</p>\n";

  // The bill at the peak: a bar and its table, the same colours.
  std::vector<BarPart> parts;
  std::string rows;
  for (const Row& r : breakdown(e)) {
    if (r.bytes == 0) continue;
    std::string colour = r.key == "allocator"      ? "#BBBBBB"
                         : r.key == "cuda_context" ? "#555555"
                                                   : "";
    for (int c = 0; c < planner::kCategoryCount; ++c) {
      if (planner::category_name(static_cast<Category>(c)) == r.key)
        colour = std::string(category_colour(static_cast<Category>(c)));
    }
    parts.push_back({r.label, r.bytes, colour});
    rows += "<tr><td><span class=\"swatch\" style=\"background:" + colour + "\"></span>" +
            html_escape(r.label) + "</td><td class=\"n\">" + format_bytes(r.bytes) +
            "</td><td class=\"n\">" + percent(r.bytes, e.peak_bytes) + "</td></tr>\n";
  }
  rows +=
      "<tr><th>total</th><th class=\"n\">" + format_bytes(e.peak_bytes) + "</th><th></th></tr>\n";
  if (e.budget_bytes > 0)
    rows += "<tr><td>budget</td><td class=\"n\">" + format_bytes(e.budget_bytes) +
            "</td><td></td></tr>\n";
  body += "<h2>At the peak (" + html_escape(e.peak_phase) + ")</h2>\n" +
          stacked_bar_svg(parts, e.budget_bytes, 1200) + "<table class=\"bill\">\n" + rows +
          "</table>\n";

  // The step over time: live tensors, against what the budget leaves them.
  const Timeline t = predicted_timeline(e.schedule, 1200);  // two points per pixel or so
  const int64_t overhead = e.context_bytes + e.fragmentation_bytes();
  const int64_t limit = e.budget_bytes > 0 ? e.budget_bytes - overhead : 0;
  body += "<h2>Over the step</h2>\n" +
          timeline_svg(t, limit,
                       overhead > 0
                           ? "budget less CUDA context and allocator (" + format_bytes(limit) + ")"
                           : "budget (" + format_bytes(limit) + ")",
                       1200, 440);
  std::string legend;
  for (int c = 0; c < planner::kCategoryCount; ++c) {
    const auto cat = static_cast<Category>(c);
    bool any = false;
    for (const TimelinePoint& p : t.points) any = any || p.live[static_cast<size_t>(c)] != 0;
    if (any)
      legend +=
          "<span><span class=\"swatch\" style=\"background:" + std::string(category_colour(cat)) +
          "\"></span>" + std::string(category_label(cat)) + "</span> &nbsp; ";
  }
  body += "<p class=\"legend\">" + legend + "</p>\n<p>Live tensor bytes after each of the " +
          std::to_string(t.events) +
          " allocations and frees of one optimizer step, as the simulator schedules them";
  if (overhead > 0)
    body += "; the device peak of " + format_bytes(e.peak_bytes) + " adds the allocator's " +
            "rounding and cache (" + format_bytes(e.fragmentation_bytes()) +
            ") and the CUDA context (" + format_bytes(e.context_bytes) + ")";
  body += ".</p>\n";

  // Phase peaks: the largest of each kind, then every phase behind a disclosure.
  body += "<h2>Phases</h2>\n<p>Largest of each kind: " + html_escape(phase_summary(e)) +
          "</p>\n<details><summary>every phase</summary>\n<table class=\"phases\"><tr><th>"
          "phase</th><th class=\"n\">live tensors</th><th class=\"n\">allocated</th></tr>\n";
  for (const planner::PhasePeak& p : e.phases)
    body += "<tr><td>" + html_escape(p.name) + "</td><td class=\"n\">" +
            format_bytes(p.peak_bytes) + "</td><td class=\"n\">" + format_bytes(p.allocated_bytes) +
            "</td></tr>\n";
  body += "</table>\n</details>\n";
  if (!v.suggestions.empty()) {
    body +=
        "<h2>Changes that make it fit</h2>\n<table class=\"fixes\"><tr><th>change</th><th "
        "class=\"n\">peak</th><th>why</th></tr>\n";
    for (const planner::Suggestion& x : v.suggestions)
      body += "<tr><td class=\"mono\">" + html_escape(x.change) + "</td><td class=\"n\">" +
              format_bytes(x.peak_bytes) + "</td><td>" + html_escape(x.why) + "</td></tr>\n";
    body += "</table>\n";
  }
  return html_page(title, body + extra, command);
}

}  // namespace loraplan::reports
