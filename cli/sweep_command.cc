// loraplan sweep: for each GPU and sequence length, whether the model fits and how fast.
#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <thread>

#include "app.h"
#include "config_flags.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/plan_report.h"
#include "search_flags.h"

namespace loraplan::cli {

namespace {

struct SweepFlags {
  ConfigFlags config;
  SearchFlags search;
  std::string gpus = "all";
  std::string seq_lens = "512,1024,2048,4096";
  std::string format = "table";
};

std::vector<int64_t> parse_seq_lens(const std::string& text) {
  std::vector<int64_t> out;
  for (const std::string& s : split_list(text)) {
    const std::optional<int64_t> v = parse_positive_integer(s);
    if (!v) throw InputError("--seq-lens: \"" + s + "\" is not a positive number of tokens");
    if (*v > planner::ConfigLimits::kSeqLen) {
      throw InputError("--seq-lens: " + s + " is beyond loraplan's limit of " +
                       std::to_string(planner::ConfigLimits::kSeqLen) + " tokens");
    }
    out.push_back(*v);
  }
  if (out.empty()) throw InputError("--seq-lens: give at least one length, e.g. 512,1024");
  return out;
}

}  // namespace

Handler define_sweep(CLI::App& sub) {
  auto f = std::make_shared<SweepFlags>();
  add_config_flags(sub, f->config, /*searched_knobs=*/false, /*device_flags=*/false);
  add_search_flags(sub, f->search);
  sub.add_option("--gpus", f->gpus, "all, or GPU profiles and sizes: rtx-4090,t4,6GB")
      ->default_str(f->gpus);
  sub.add_option("--seq-lens", f->seq_lens, "Sequence lengths, tokens")->default_str(f->seq_lens);
  add_format_flag(sub, f->format, /*markdown=*/true, /*html=*/true);
  return [f](Io& io) {
    const planner::ModelDesc model = planner::load_model(f->config.model);
    const std::vector<int64_t> seq_lens = parse_seq_lens(f->seq_lens);
    std::vector<planner::GpuProfile> gpus;
    for (const std::string& name :
         f->gpus == "all" ? planner::profile_names("gpus") : split_list(f->gpus)) {
      gpus.push_back(planner::resolve_gpu(name));
    }
    if (gpus.empty()) throw InputError("--gpus: name at least one GPU profile or size");
    std::stable_sort(gpus.begin(), gpus.end(),
                     [](const planner::GpuProfile& a, const planner::GpuProfile& b) {
                       return a.memory_bytes < b.memory_bytes;
                     });
    const planner::TrainConfig base = resolve_config(f->config, model);
    const planner::SearchSpace space = resolve_search(f->search, f->config, 0);
    const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    std::vector<reports::SweepRow> rows;
    for (planner::SweepCell& cell : planner::sweep(model, base, gpus, seq_lens, space, threads)) {
      rows.push_back({cell.gpu.name, cell.gpu.memory_bytes, cell.seq_len, std::move(cell.search)});
    }
    if (f->format == "html")
      io.out << reports::sweep_html(model.name, rows, io.command);
    else if (f->format == "json")
      io.out << reports::sweep_json(model.name, rows).dump(2) << "\n";
    else if (f->format == "md")
      io.out << reports::sweep_markdown(model.name, rows);
    else
      io.out << reports::sweep_text(model.name, rows);
    return kExitOk;
  };
}

}  // namespace loraplan::cli
