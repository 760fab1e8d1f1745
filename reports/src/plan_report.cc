#include "loraplan/reports/plan_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "loraplan/planner/hardware.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/html.h"
#include "loraplan/reports/table.h"
#include "loraplan/reports/timeline.h"

namespace loraplan::reports {
namespace {

using planner::format_bytes;
using planner::PlanCandidate;

int64_t count(const std::vector<bool>& v) { return std::count(v.begin(), v.end(), true); }

std::string rate(double tokens_per_s) { return with_commas(std::llround(tokens_per_s)); }

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.2f s" : "%.1f s", s);
  return buf;
}

std::string header(const planner::PlanInputs& p) {
  const planner::DeviceModel& d = p.device;
  const std::string where = d.device == planner::Device::kCpu ? "cpu" : d.name;
  return p.model.name + " on " + where + ": budget " + format_bytes(d.budget_bytes) +
         ", plans must stay under " + format_bytes(p.search.limit_bytes) + " (margin " +
         format_bytes(planner::margin_for(p.space, d.budget_bytes)) + ")\n  target batch " +
         std::to_string(p.space.target_batch) + " sequences of " +
         std::to_string(p.search.chosen.config.seq_len) + " tokens; speed from " + p.rates.source +
         "\n";
}

Table candidates(const planner::PlanInputs& p) {
  Table t({{""},
           {"plan"},
           {"peak", Align::kRight},
           {"tokens/s", Align::kRight},
           {"step", Align::kRight}});
  const PlanCandidate& c = p.search.chosen;
  t.add_row({">", planner::plan_label(c.config), format_bytes(c.peak_bytes),
             rate(c.cost.tokens_per_s), seconds(c.cost.step_s)});
  for (const PlanCandidate& r : p.search.runner_ups) {
    t.add_row({"", planner::plan_label(r.config), format_bytes(r.peak_bytes),
               rate(r.cost.tokens_per_s), seconds(r.cost.step_s)});
  }
  return t;
}

std::string checkpoint_text(const planner::TrainConfig& c) {
  const int64_t k = count(c.checkpointed);
  if (k == 0) return "none";
  if (k == static_cast<int64_t>(c.checkpointed.size())) return "all";
  return std::to_string(k) + "/" + std::to_string(c.checkpointed.size());
}

std::string offload_text(const planner::TrainConfig& c) {
  const int64_t n = count(c.offloaded);
  return n == 0 ? "none" : std::to_string(n) + "/" + std::to_string(c.offloaded.size());
}

}  // namespace

std::string plan_text(const planner::PlanInputs& p) {
  const PlanCandidate& c = p.search.chosen;
  std::string out = header(p) + "\n" + candidates(p).text() + "\n";
  out += "  chosen: " + config_line(c.config) + "\n";
  out += "  predicted peak " + format_bytes(p.search.estimate.peak_bytes) + " (" +
         p.search.estimate.peak_phase + "), " + rate(c.cost.tokens_per_s) + " tokens/s, " +
         seconds(c.cost.step_s) + " per optimizer step\n";
  if (!p.search.boundaries.empty()) {
    out += "\n  what stopped a bigger choice:\n";
    for (const std::string& b : p.search.boundaries) out += "    " + b + "\n";
  }
  for (const std::string& note : planner::config_notes(p.model, c.config))
    out += "  note: " + note + "\n";
  const size_t others = p.search.rejected.size() - p.search.runner_ups.size();
  out += "\n  " + std::to_string(others) +
         " other candidates rejected (--format json lists each with its reason); " +
         std::to_string(p.search.estimates) + " simulations\n";
  return out;
}

std::string plan_markdown(const planner::PlanInputs& p) {
  const PlanCandidate& c = p.search.chosen;
  std::string out = "# Plan: " + header(p) + "\n" + candidates(p).markdown() + "\nChosen: `" +
                    config_line(c.config) + "`\n\nPredicted peak " +
                    format_bytes(p.search.estimate.peak_bytes) + ", " + rate(c.cost.tokens_per_s) +
                    " tokens/s.\n";
  if (!p.search.boundaries.empty()) {
    out += "\nWhat stopped a bigger choice:\n\n";
    for (const std::string& b : p.search.boundaries) out += "- " + b + "\n";
  }
  for (const std::string& note : planner::config_notes(p.model, c.config))
    out += "\n> note: " + note + "\n";
  return out;
}

std::string plan_html(const planner::PlanInputs& p, const std::string& command) {
  const planner::PlanSearch& s = p.search;
  const PlanCandidate& c = s.chosen;
  const std::string head = header(p);
  const std::string title = "loraplan plan: " + head.substr(0, head.find(':'));
  std::string body =
      "<h1>" + html_escape(title) + "</h1>\n<p>" + html_escape(head.substr(head.find(':') + 2)) +
      "</p>\n<p class=\"verdict "
      "fits\">chosen: " +
      html_escape(planner::plan_label(c.config)) + ": peak " + format_bytes(c.peak_bytes) + ", " +
      rate(c.cost.tokens_per_s) + " tokens/s</p>\n<p class=\"mono\">" +
      html_escape(config_line(c.config)) + "</p>\n";
  // The candidates: chosen, runner-ups, then the fastest that did not fit.
  struct Row {
    const PlanCandidate* c;
    const char* kind;  // "chosen", "runner-up", "over the limit"
  };
  std::vector<Row> rows = {{&c, "chosen"}};
  for (const PlanCandidate& r : s.runner_ups) rows.push_back({&r, "runner-up"});
  std::vector<const PlanCandidate*> over;
  for (const PlanCandidate& r : s.rejected) {
    if (r.simulated && !r.fits) over.push_back(&r);
  }
  std::stable_sort(over.begin(), over.end(), [](const PlanCandidate* a, const PlanCandidate* b) {
    return a->cost.tokens_per_s > b->cost.tokens_per_s;
  });
  for (size_t i = 0; i < over.size() && i < 4; ++i) rows.push_back({over[i], "over the limit"});
  int64_t peak_scale = p.device.budget_bytes;
  double speed_scale = 1;
  for (const Row& r : rows) {
    peak_scale = std::max(peak_scale, r.c->peak_bytes);
    speed_scale = std::max(speed_scale, r.c->cost.tokens_per_s);
  }
  const int width = 1200, label_w = 470, bar_w = 400, speed_w = 200, row_h = 30;
  const int height = 34 + row_h * static_cast<int>(rows.size());
  std::string svg = "<svg class=\"plan\" role=\"img\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                    std::to_string(width) + " " + std::to_string(height) +
                    "\"><title>candidate plans: peak and tokens/s</title>\n"
                    "<text x=\"" +
                    std::to_string(label_w) + "\" y=\"14\">peak (budget " +
                    format_bytes(p.device.budget_bytes) + ", limit " + format_bytes(s.limit_bytes) +
                    ")</text><text x=\"" + std::to_string(label_w + bar_w + 30) +
                    "\" y=\"14\">predicted tokens/s</text>\n";
  auto bx = [&](int64_t bytes) {
    return label_w + bar_w * static_cast<double>(bytes) / static_cast<double>(peak_scale);
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const int y = 24 + row_h * static_cast<int>(i);
    const std::string colour = std::string(r.kind) == "chosen"      ? "#0072B2"
                               : std::string(r.kind) == "runner-up" ? "#56B4E9"
                                                                    : "#D55E00";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", bx(r.c->peak_bytes) - label_w);
    svg += "<g class=\"candidate\" data-kind=\"" + std::string(r.kind) + "\"><title>" +
           html_escape(std::string(r.kind) + ": " + planner::plan_label(r.c->config) +
                       (r.c->reason.empty() ? "" : " (" + r.c->reason + ")")) +
           "</title><text class=\"small\" x=\"0\" y=\"" + std::to_string(y + 15) + "\">" +
           (i == 0 ? "&gt; " : "") + html_escape(planner::plan_label(r.c->config)) +
           "</text><rect x=\"" + std::to_string(label_w) + "\" y=\"" + std::to_string(y + 3) +
           "\" width=\"" + buf + "\" height=\"18\" fill=\"" + colour +
           "\"/><text class=\"small\" x=\"" +
           std::to_string(static_cast<int>(bx(r.c->peak_bytes)) + 5) + "\" y=\"" +
           std::to_string(y + 16) + "\">" + format_bytes(r.c->peak_bytes) + "</text>";
    if (r.c->fits) {
      std::snprintf(buf, sizeof buf, "%.1f", speed_w * r.c->cost.tokens_per_s / speed_scale);
      svg += "<rect x=\"" + std::to_string(label_w + bar_w + 30) + "\" y=\"" +
             std::to_string(y + 3) + "\" width=\"" + buf + "\" height=\"18\" fill=\"" + colour +
             "\"/><text class=\"small\" x=\"" + std::to_string(label_w + bar_w + 36 + speed_w) +
             "\" y=\"" + std::to_string(y + 16) + "\">" + rate(r.c->cost.tokens_per_s) + "</text>";
    }
    svg += "</g>\n";
  }
  for (const auto& [bytes, name] :
       {std::pair{p.device.budget_bytes, "budget"}, std::pair{s.limit_bytes, "limit"}}) {
    char x[32];
    std::snprintf(x, sizeof x, "%.1f", bx(bytes));
    svg += "<line class=\"" + std::string(name) + "\" x1=\"" + x + "\" x2=\"" + x +
           "\" y1=\"20\" y2=\"" + std::to_string(height) + "\" stroke=\"#b03a00\" " +
           (std::string(name) == "limit" ? "stroke-dasharray=\"5 3\"" : "stroke-width=\"2\"") +
           "><title>" + name + " " + format_bytes(bytes) + "</title></line>\n";
  }
  body += "<h2>Candidates</h2>\n" + svg + "</svg>\n";
  if (!s.boundaries.empty()) {
    body += "<h2>What stopped a bigger choice</h2>\n<ul>\n";
    for (const std::string& b : s.boundaries) body += "<li>" + html_escape(b) + "</li>\n";
    body += "</ul>\n";
  }
  if (!s.estimate.schedule.events.empty()) {
    const Timeline t = predicted_timeline(s.estimate.schedule, 1200);
    const int64_t overhead = s.estimate.context_bytes + s.estimate.fragmentation_bytes();
    body += "<h2>The chosen plan over the step</h2>\n" +
            timeline_svg(t, s.limit_bytes - overhead,
                         "limit less CUDA context and allocator (" +
                             format_bytes(s.limit_bytes - overhead) + ")",
                         1200, 400);
  }
  return html_page(title, body, command);
}

std::string no_plan_text(const planner::PlanInputs& p) {
  std::string out = header(p) + "\n  NO PLAN FITS.";
  const PlanCandidate* frugal = nullptr;
  for (const PlanCandidate& r : p.search.rejected) {
    if (r.simulated && (!frugal || r.peak_bytes < frugal->peak_bytes)) frugal = &r;
  }
  if (frugal) {
    out += " The most frugal candidate, " + planner::plan_label(frugal->config) + ", " +
           frugal->reason + ".";
  }
  return out +
         "\n  Try a shorter --seq-len, --allow-weights nf4, a smaller --lora-rank, or a larger "
         "GPU.\n";
}

namespace {

std::vector<std::string> sweep_cells(const SweepRow& r) {
  const planner::PlanSearch& s = r.search;
  std::vector<std::string> cells = {r.gpu, format_bytes(r.memory_bytes), std::to_string(r.seq_len)};
  if (!s.found) {
    cells.insert(cells.end(), {"no", "", "", "", "", ""});
    return cells;
  }
  const planner::TrainConfig& c = s.chosen.config;
  cells.insert(cells.end(),
               {"yes", std::to_string(c.micro_batch) + " x " + std::to_string(c.grad_accum),
                checkpoint_text(c), offload_text(c), format_bytes(s.chosen.peak_bytes),
                rate(s.chosen.cost.tokens_per_s)});
  return cells;
}

Table sweep_table(const std::vector<SweepRow>& rows) {
  Table t({{"gpu"},
           {"memory", Align::kRight},
           {"seq", Align::kRight},
           {"fits"},
           {"batch", Align::kRight},
           {"checkpoint"},
           {"offload"},
           {"peak", Align::kRight},
           {"tokens/s", Align::kRight}});
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i > 0 && rows[i].gpu != rows[i - 1].gpu) t.add_rule();
    t.add_row(sweep_cells(rows[i]));
  }
  return t;
}

}  // namespace

std::string sweep_text(const std::string& model, const std::vector<SweepRow>& rows) {
  return model + ": the fastest plan that fits each GPU (target batch and LoRA as given)\n\n" +
         sweep_table(rows).text();
}

std::string sweep_markdown(const std::string& model, const std::vector<SweepRow>& rows) {
  return "# " + model + ": fastest plan per GPU and sequence length\n\n" +
         sweep_table(rows).markdown();
}

nlohmann::json sweep_json(const std::string& model, const std::vector<SweepRow>& rows) {
  nlohmann::json j = {{"model", model}, {"rows", nlohmann::json::array()}};
  for (const SweepRow& r : rows) {
    nlohmann::json row = {{"gpu", r.gpu},
                          {"memory_bytes", r.memory_bytes},
                          {"seq_len", r.seq_len},
                          {"fits", r.search.found}};
    if (r.search.found) {
      const planner::TrainConfig& c = r.search.chosen.config;
      row["micro_batch"] = c.micro_batch;
      row["grad_accum"] = c.grad_accum;
      row["checkpointed_layers"] = count(c.checkpointed);
      row["offloaded_layers"] = count(c.offloaded);
      row["attention"] = planner::attention_name(c.attention);
      row["loss_chunk"] = c.loss_chunk;
      row["peak_bytes"] = r.search.chosen.peak_bytes;
      row["tokens_per_s"] = std::round(r.search.chosen.cost.tokens_per_s * 10) / 10;
    }
    j["rows"].push_back(row);
  }
  return j;
}

std::string sweep_html(const std::string& model, const std::vector<SweepRow>& rows,
                       const std::string& command) {
  // The grid: GPUs in the order swept (by memory), sequence lengths ascending.
  std::vector<std::string> gpus;
  std::vector<int64_t> lens;
  for (const SweepRow& r : rows) {
    if (std::find(gpus.begin(), gpus.end(), r.gpu) == gpus.end()) gpus.push_back(r.gpu);
    if (std::find(lens.begin(), lens.end(), r.seq_len) == lens.end()) lens.push_back(r.seq_len);
  }
  std::sort(lens.begin(), lens.end());
  // The colour follows log tokens/s between the slowest and the fastest plan.
  double fastest = 1, slowest = 0;
  for (const SweepRow& r : rows) {
    if (!r.search.found) continue;
    const double t = r.search.chosen.cost.tokens_per_s;
    fastest = std::max(fastest, t);
    slowest = slowest == 0 ? t : std::min(slowest, t);
  }
  const double span = std::log(fastest / std::max(slowest, 1e-9));
  const int label_w = 230,
            cell_w = std::min(170, 960 / std::max<int>(1, static_cast<int>(lens.size()))),
            cell_h = 46, top = 30;
  const int width = label_w + cell_w * static_cast<int>(lens.size()) + 10;
  const int height = top + cell_h * static_cast<int>(gpus.size()) + 10;
  std::string svg = "<svg class=\"sweep\" role=\"img\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                    std::to_string(width) + " " + std::to_string(height) +
                    "\"><title>GPU by sequence length: the best plan's tokens/s</title>\n";
  for (size_t j = 0; j < lens.size(); ++j) {
    svg += "<text x=\"" + std::to_string(label_w + cell_w * static_cast<int>(j) + cell_w / 2) +
           "\" y=\"18\" text-anchor=\"middle\">T " + std::to_string(lens[j]) + "</text>\n";
  }
  for (const SweepRow& r : rows) {
    const int i = static_cast<int>(std::find(gpus.begin(), gpus.end(), r.gpu) - gpus.begin());
    const int j = static_cast<int>(std::find(lens.begin(), lens.end(), r.seq_len) - lens.begin());
    const int x = label_w + cell_w * j, y = top + cell_h * i;
    if (j == 0) {
      svg += "<text x=\"0\" y=\"" + std::to_string(y + cell_h / 2 + 4) + "\">" +
             html_escape(r.gpu) + " (" + format_bytes(r.memory_bytes) + ")</text>\n";
    }
    std::string fill = "#eeeeee", ink = "#555", line1 = "does not fit", line2, tip;
    if (r.search.found) {
      const PlanCandidate& c = r.search.chosen;
      // A blue ramp (light = slow, dark = fast), readable in grey as well.
      const double f =
          span > 0 ? std::log(c.cost.tokens_per_s / std::max(slowest, 1e-9)) / span : 1.0;
      const int red = static_cast<int>(222 - f * (222 - 8));
      const int green = static_cast<int>(235 - f * (235 - 81));
      const int blue = static_cast<int>(247 - f * (247 - 156));
      char colour[16];
      std::snprintf(colour, sizeof colour, "#%02X%02X%02X", red, green, blue);
      fill = colour;
      ink = f > 0.55 ? "#fff" : "#000";
      line1 = rate(c.cost.tokens_per_s) + " tokens/s";
      line2 = "B " + std::to_string(c.config.micro_batch) + " x " +
              std::to_string(c.config.grad_accum) + ", " + format_bytes(c.peak_bytes);
      tip = planner::plan_label(c.config);
    }
    svg += "<g class=\"cell\" data-fits=\"" + std::string(r.search.found ? "yes" : "no") +
           "\"><title>" +
           html_escape(r.gpu + ", T " + std::to_string(r.seq_len) + ": " +
                       (tip.empty() ? line1 : tip)) +
           "</title><rect x=\"" + std::to_string(x + 1) + "\" y=\"" + std::to_string(y + 1) +
           "\" width=\"" + std::to_string(cell_w - 2) + "\" height=\"" +
           std::to_string(cell_h - 2) + "\" fill=\"" + fill + "\"/><text x=\"" +
           std::to_string(x + cell_w / 2) + "\" y=\"" +
           std::to_string(y + (line2.empty() ? cell_h / 2 + 4 : 19)) +
           "\" text-anchor=\"middle\" fill=\"" + ink + "\">" + line1 + "</text>";
    if (!line2.empty()) {
      svg += "<text class=\"small\" x=\"" + std::to_string(x + cell_w / 2) + "\" y=\"" +
             std::to_string(y + 35) + "\" text-anchor=\"middle\" fill=\"" + ink + "\">" + line2 +
             "</text>";
    }
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  std::string table = "<table class=\"sweep\"><tr>";
  for (const char* h :
       {"gpu", "memory", "seq", "fits", "batch", "checkpoint", "offload", "peak", "tokens/s"})
    table += "<th>" + std::string(h) + "</th>";
  table += "</tr>\n";
  for (const SweepRow& r : rows) {
    table += "<tr>";
    for (const std::string& c : sweep_cells(r)) table += "<td>" + html_escape(c) + "</td>";
    table += "</tr>\n";
  }
  table += "</table>\n";
  const std::string title = "loraplan sweep: " + model;
  return html_page(title,
                   "<h1>" + html_escape(title) +
                       "</h1>\n<p>Each cell: the fastest plan that fits that GPU at that sequence "
                       "length (darker is faster, on a log scale of tokens/s), its micro-batch x "
                       "accumulation and peak.</p>\n" +
                       svg + "<h2>Table</h2>\n" + table,
                   command);
}

}  // namespace loraplan::reports
