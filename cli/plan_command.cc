// loraplan plan: the fastest configuration that fits, written as plan.json.
#include <CLI/CLI.hpp>
#include <cmath>
#include <memory>
#include <ostream>

#include "app.h"
#include "config_flags.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/reports/plan_report.h"
#include "search_flags.h"

namespace loraplan::cli {

namespace {

struct PlanFlags {
  ConfigFlags config;
  SearchFlags search;
  std::string format = "table";
  std::string out;
};

}  // namespace

Handler define_plan(CLI::App& sub) {
  auto f = std::make_shared<PlanFlags>();
  add_config_flags(sub, f->config, /*searched_knobs=*/false);
  add_search_flags(sub, f->search);
  add_format_flag(sub, f->format);
  sub.add_option(
      "-o,--out", f->out,
      "Write the plan here (plan.json) for loraplan train --plan; - writes it to standard output");
  return [f, &sub](Io& io) {
    if (sub.get_option("--out")->count() > 0 && f->out.empty())
      throw InputError("--out: empty; give a file name");
    const planner::ModelDesc model = planner::load_model(f->config.model);
    const planner::TrainConfig base = resolve_config(f->config, model);
    const planner::DeviceModel device = resolve_device(f->config);
    if (device.budget_bytes <= 0)
      throw InputError("--budget: plan needs a memory budget with --device cpu");
    const planner::SearchSpace space = resolve_search(f->search, f->config, device.budget_bytes);
    const planner::Rates rates = device_rates(f->config, base);
    const planner::PlanSearch search = planner::search_plan(model, base, device, rates, space);
    const planner::PlanInputs view{f->config.model, model, device, rates, space, search};
    if (!search.found) {
      if (f->format == "json") {
        io.out << nlohmann::json{{"found", false}, {"limit_bytes", search.limit_bytes}}.dump(2)
               << "\n";
      } else {
        io.out << reports::no_plan_text(view);
      }
      return kExitCheckFailed;
    }
    const std::string json = planner::plan_json(view).dump(2) + "\n";
    if (!f->out.empty() && f->out != "-") write_file_atomic(f->out, json);
    if (f->out == "-" || f->format == "json")
      io.out << json;  // the plan itself is the output
    else if (f->format == "md")
      io.out << reports::plan_markdown(view);
    else
      io.out << reports::plan_text(view) << (f->out.empty() ? "" : "  wrote " + f->out + "\n");
    return kExitOk;
  };
}

}  // namespace loraplan::cli
