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
#include "loraplan/reports/verify_report.h"

namespace loraplan::cli {

namespace {

struct VerifyFlags {
  ConfigFlags config;
  std::string plan;
  std::string run;
  std::string tolerance = "2%";
  std::string format = "table";
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
    const RunSpec spec = resolve_run(sub, f->config, f->plan);
    const planner::ModelDesc& model = spec.model;
    const planner::TrainConfig& config = spec.config;
    const planner::DeviceModel& device = spec.device;
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
    std::vector<std::pair<std::string, int64_t>> phases;
    for (const nlohmann::json& p : report["measured"].value("phases", nlohmann::json::array())) {
      phases.emplace_back(p.value("name", ""), p.value("peak_bytes", int64_t{0}));
    }
    const reports::Verification v =
        reports::verify(e, measured.integer("peak_bytes", 1, "must be a positive integer"), phases, tolerance);
    if (f->format == "json") io.out << reports::verification_json(v).dump(2) << "\n";
    else if (f->format == "md") io.out << reports::verification_markdown(v);
    else io.out << model.name << ": predicted vs measured (" << f->run << ")\n" << reports::verification_text(v);
    return v.pass ? kExitOk : kExitCheckFailed;
  };
}

}  // namespace loraplan::cli
