// loraplan export: a plan as another trainer's configuration (hf, trl, axolotl, torchtune,
// unsloth), each knob the trainer cannot express said on stderr with its predicted cost.
#include <CLI/CLI.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "app.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/reports/export.h"

namespace loraplan::cli {
namespace {

struct ExportFlags {
  std::string plan;
  std::string to;
  std::string out;
};

// Whether plan.json's data section (plan --data) chose packed batching.
bool packed(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_object()) return false;
  const nlohmann::json& b = j["data"].value("batching", nlohmann::json());
  return b.is_string() && b.get<std::string>() == "packed";
}

}  // namespace

Handler define_export(CLI::App& sub) {
  auto f = std::make_shared<ExportFlags>();
  sub.add_option("--plan", f->plan, "plan.json, as loraplan plan writes it")->required();
  sub.add_option("--to", f->to, "The trainer: " + reports::export_target_choices("|"))
      ->required()
      ->check(CLI::IsMember({"hf", "trl", "axolotl", "torchtune", "unsloth"}));
  sub.add_option("-o,--out", f->out, "Write the configuration here (default: standard output)");
  return [f](Io& io) {
    const planner::PlanFile plan = planner::read_plan(f->plan);
    const reports::Exported e =
        reports::export_plan(plan, *reports::parse_export_target(f->to), packed(f->plan));
    for (const reports::ExportChange& c : e.changes)
      io.err << "loraplan: " << reports::change_text(c) << "\n";
    if (f->out.empty() || f->out == "-") {
      io.out << e.text;
    } else {
      write_file_atomic(f->out, e.text);
      io.out << "wrote " << f->out << " (" << f->to << ")\n";
    }
    return 0;
  };
}

}  // namespace loraplan::cli
