// loraplan estimate: simulate one training step and say whether it fits.
#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>

#include "app.h"
#include "config_flags.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/estimate_report.h"

namespace loraplan::cli {

namespace {

struct EstimateFlags {
  ConfigFlags config;
  std::string format = "table";
};

}  // namespace

Handler define_estimate(CLI::App& sub) {
  auto f = std::make_shared<EstimateFlags>();
  add_config_flags(sub, f->config);
  add_format_flag(sub, f->format);
  return [f](Io& io) {
    const planner::ModelDesc model = planner::load_model(f->config.model);
    const planner::TrainConfig config = resolve_config(f->config, model);
    const planner::DeviceModel device = resolve_device(f->config);
    const planner::Estimate e = planner::estimate(model, config, device);
    const std::vector<planner::Suggestion> fixes =
        e.fits ? std::vector<planner::Suggestion>{} : planner::suggest_fixes(model, config, device);
    const reports::EstimateView view{model, config, device, e, fixes};
    if (f->format == "json")
      io.out << reports::estimate_json(view).dump(2) << "\n";
    else if (f->format == "md")
      io.out << reports::estimate_markdown(view);
    else
      io.out << reports::estimate_text(view);
    return e.fits ? kExitOk : kExitCheckFailed;
  };
}

}  // namespace loraplan::cli
