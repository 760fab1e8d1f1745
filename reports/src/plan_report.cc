#include "loraplan/reports/plan_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "loraplan/planner/hardware.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/table.h"

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

}  // namespace loraplan::reports
