// loraplan profiles: the model and GPU profiles that --model and --gpu accept by name.
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>

#include "app.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/table.h"

namespace loraplan::cli {

namespace {

struct ProfilesFlags {
  std::string kind = "all";
  std::string format = "table";
};

void list_models(Io& io, nlohmann::json& json, bool as_json) {
  reports::Table t({{"model"},
                    {"hf_id"},
                    {"family"},
                    {"layers", reports::Align::kRight},
                    {"parameters", reports::Align::kRight}});
  for (const std::string& name : planner::profile_names("models")) {
    const planner::ModelDesc m = planner::load_model(name);
    const int64_t params = planner::total_params(planner::inventory(m));
    t.add_row({name, m.hf_id.empty() ? "-" : m.hf_id, std::string(planner::family_name(m.family)),
               std::to_string(m.layers), reports::short_count(params)});
    json["models"].push_back({{"name", name},
                              {"hf_id", m.hf_id},
                              {"family", planner::family_name(m.family)},
                              {"total_params", params}});
  }
  if (!as_json) io.out << "Models (--model NAME)\n" << t.text() << "\n";
}

void list_gpus(Io& io, nlohmann::json& json, bool as_json) {
  reports::Table t({{"gpu"},
                    {"name"},
                    {"memory", reports::Align::kRight},
                    {"tensor TFLOPS", reports::Align::kRight},
                    {"bf16"}});
  for (const std::string& name : planner::profile_names("gpus")) {
    const planner::GpuProfile g = planner::resolve_gpu(name);
    char tflops[32];
    std::snprintf(tflops, sizeof tflops, "%.1f", g.tensor_tflops);
    t.add_row({name, g.display_name, planner::format_bytes(g.memory_bytes), tflops,
               g.bf16_native ? "yes" : "no"});
    json["gpus"].push_back({{"name", name},
                            {"display_name", g.display_name},
                            {"memory_bytes", g.memory_bytes},
                            {"tensor_tflops", g.tensor_tflops},
                            {"bf16_native", g.bf16_native}});
  }
  if (!as_json) {
    io.out << "GPUs (--gpu NAME in any case, or the start of one name: --gpu rtx-4060-ti; or a "
              "size with its unit:\n"
              "--gpu 6GB means a 6 GB card as sold, 6144 MiB)\n"
           << t.text();
  }
}

}  // namespace

Handler define_profiles(CLI::App& sub) {
  auto f = std::make_shared<ProfilesFlags>();
  sub.add_option("--kind", f->kind, "Which profiles to list")
      ->check(CLI::IsMember({"all", "models", "gpus"}))
      ->default_str(f->kind);
  add_format_flag(sub, f->format, false);
  return [f](Io& io) {
    nlohmann::json json = nlohmann::json::object();
    const bool as_json = f->format == "json";
    if (f->kind != "gpus") list_models(io, json, as_json);
    if (f->kind != "models") list_gpus(io, json, as_json);
    if (as_json) io.out << json.dump(2) << "\n";
    return kExitOk;
  };
}

}  // namespace loraplan::cli
