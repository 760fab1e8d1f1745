// loraplan verify: a run's measured memory against the planner's prediction, phase by phase.
#include <CLI/CLI.hpp>
#include <cmath>
#include <memory>
#include <ostream>

#include "app.h"
#include "config_flags.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/table.h"

namespace loraplan::cli {

namespace {

struct VerifyFlags {
  ConfigFlags config;
  std::string plan;
  std::string run;
  std::string tolerance = "2%";
  std::string format = "table";
};

struct Row {
  std::string name;
  int64_t predicted = 0, measured = 0;
  double error = 0;  // (predicted - measured) / measured
  bool pass = true;
};

double parse_tolerance(const std::string& text) {
  std::string t = text;
  const bool percent = !t.empty() && t.back() == '%';
  if (percent) t.pop_back();
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !(v >= 0)) {
    throw InputError("--tolerance: \"" + text + "\" is not a tolerance (examples: 2%, 0.02)");
  }
  return percent ? v / 100 : v;
}

}  // namespace

Handler define_verify(CLI::App& sub) {
  auto f = std::make_shared<VerifyFlags>();
  f->config = executor_flags();
  add_config_flags(sub, f->config);
  sub.add_option("--plan", f->plan, "plan.json the run applied (instead of configuration flags)");
  sub.add_option("--run", f->run, "report.json written by loraplan train with the same configuration flags")
      ->required();
  sub.add_option("--tolerance", f->tolerance, "Largest relative error that passes, e.g. 2% or 0.02")
      ->default_str(f->tolerance);
  add_format_flag(sub, f->format);
  return [f, &sub](Io& io) {
    const double tolerance = parse_tolerance(f->tolerance);
    planner::ModelDesc model;
    planner::TrainConfig config;
    planner::DeviceModel device;
    if (!f->plan.empty()) {
      refuse_config_flags_with_plan(sub);
      planner::PlanFile plan = planner::read_plan(f->plan);
      model = std::move(plan.model);
      config = plan.config;
      device = plan.device == planner::Device::kCpu ? planner::cpu_device(plan.budget_bytes)
                                                    : planner::cuda_device(planner::resolve_gpu(plan.gpu), plan.budget_bytes);
    } else {
      model = planner::load_model(f->config.model);
      config = resolve_config(f->config, model);
      device = resolve_device(f->config);
    }
    const std::string text = planner::read_text_file(f->run);
    const nlohmann::json report = planner::parse_json(text, f->run);
    if (!report.is_object() || !report.contains("measured") || !report.contains("config")) {
      throw InputError(f->run + ": not a loraplan run report (no \"measured\" or \"config\")");
    }
    // The flags must describe the run: compare every knob.
    const nlohmann::json expected = reports::config_json(config);
    for (const auto& [key, value] : expected.items()) {
      if (!report["config"].contains(key) || report["config"][key] != value) {
        throw InputError(f->run + ": the run's \"" + key + "\" is " +
                         (report["config"].contains(key) ? report["config"][key].dump() : std::string("missing")) +
                         ", " + (f->plan.empty() ? "the flags say " : "the plan says ") + value.dump());
      }
    }
    if (report.value("out_of_memory", false)) {
      throw InputError(f->run + ": the run stopped out of memory; there is no complete step to compare");
    }
    const planner::Estimate e = planner::estimate(model, config, device);
    const planner::JsonFields measured(report["measured"], text, f->run);
    std::vector<Row> rows;
    auto add = [&](const std::string& name, int64_t predicted, int64_t m) {
      Row r{name, predicted, m};
      r.error = m > 0 ? static_cast<double>(predicted - m) / static_cast<double>(m) : 0.0;
      r.pass = std::abs(r.error) <= tolerance;
      rows.push_back(r);
    };
    add("peak", e.peak_bytes, measured.integer("peak_bytes", 1, "must be a positive integer"));
    std::map<std::string, int64_t> phase_measured;
    for (const nlohmann::json& p : report["measured"].value("phases", nlohmann::json::array())) {
      phase_measured[p.value("name", "")] = p.value("peak_bytes", int64_t{0});
    }
    for (const planner::PhasePeak& p : e.phases) {
      if (p.name != "setup" && phase_measured.count(p.name)) add(p.name, p.peak_bytes, phase_measured[p.name]);
    }
    double worst = 0;
    bool pass = true;
    for (const Row& r : rows) {
      worst = std::max(worst, std::abs(r.error));
      pass = pass && r.pass;
    }
    if (f->format == "json") {
      nlohmann::json j;
      j["pass"] = pass;
      j["max_rel_error"] = worst;
      j["tolerance"] = tolerance;
      j["rows"] = nlohmann::json::array();
      for (const Row& r : rows) {
        j["rows"].push_back({{"name", r.name}, {"predicted_bytes", r.predicted}, {"measured_bytes", r.measured},
                             {"rel_error", r.error}, {"pass", r.pass}});
      }
      io.out << j.dump(2) << "\n";
    } else {
      reports::Table t({{"phase"}, {"predicted", reports::Align::kRight}, {"measured", reports::Align::kRight},
                        {"error", reports::Align::kRight}, {"verdict"}});
      for (const Row& r : rows) {
        char err[32];
        std::snprintf(err, sizeof err, "%+.2f%%", 100 * r.error);
        t.add_row({r.name, reports::with_commas(r.predicted), reports::with_commas(r.measured), err, r.pass ? "ok" : "OUT"});
      }
      char summary[160];
      std::snprintf(summary, sizeof summary, "%s: max |error| %.2f%%, tolerance %.2f%%\n", pass ? "PASS" : "FAIL",
                    100 * worst, 100 * tolerance);
      if (f->format == "md") io.out << t.markdown() << "\n**" << summary << "**";
      else io.out << model.name << ": predicted vs measured (" << f->run << ")\n" << t.text() << "\n  " << summary;
    }
    return pass ? kExitOk : kExitCheckFailed;
  };
}

}  // namespace loraplan::cli
