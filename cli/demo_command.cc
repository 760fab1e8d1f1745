// loraplan demo: the whole loop on a tiny model on the CPU: estimate, train, verify.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <ostream>

#include "app.h"
#include "config_flags.h"
#include "loraplan/executor/backend.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/table.h"
#include "loraplan/reports/verify_report.h"

namespace loraplan::cli {

namespace {

struct DemoFlags {
  ConfigFlags config;
  int64_t steps = 5;
  std::string out;
};

}  // namespace

Handler define_demo(CLI::App& sub) {
  auto f = std::make_shared<DemoFlags>();
  f->config = executor_flags();
  f->config.seq_len = 64;
  f->config.micro_batch = 4;
  f->config.grad_accum = 2;
  f->config.checkpoint = "none";
  f->config.lora_dropout = 0;
  add_model_flag(sub, f->config.model);
  sub.add_option("--steps", f->steps, "Optimizer steps to train")
      ->check(positive_integer())
      ->default_str("5");
  sub.add_option("--out", f->out,
                 "Keep the run here (report.json, adapter); default: a temporary directory");
  return [f](Io& io) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    executor::Backend& backend = executor::require_backend("demo");
    executor::TrainRequest q;
    q.model = planner::load_model(f->config.model);
    q.config = resolve_config(f->config, q.model);
    q.steps = f->steps;
    q.lr = 1e-2;  // visible progress in a few steps
    const bool keep = !f->out.empty();
    q.out_dir = keep ? f->out
                     : (std::filesystem::temp_directory_path() /
                        ("loraplan-demo-" + std::to_string(::getpid())))
                           .string();
    std::filesystem::create_directories(q.out_dir);

    const planner::Estimate e = planner::estimate(q.model, q.config, planner::cpu_device(0));
    io.out << "1. estimate  " << q.model.name
           << " on the CPU executor: " << reports::config_line(q.config) << "\n"
           << "   predicted peak " << planner::format_bytes(e.peak_bytes) << " ("
           << reports::with_commas(e.peak_bytes) << " bytes) in " << e.peak_phase << "\n\n";
    io.out << "2. train     " << f->steps
           << " steps with the LibTorch executor (tracking allocator on)\n";
    const executor::RunReport r = backend.train(q);
    if (!r.error.empty()) {
      if (!keep) std::filesystem::remove_all(q.out_dir);
      throw std::runtime_error("demo: training failed: " + r.error);
    }
    for (const executor::StepMeasure& s : r.steps) {
      char line[128];
      std::snprintf(line, sizeof line, "   step %lld  loss %.4f  %8.0f tokens/s\n",
                    static_cast<long long>(s.step), s.loss, s.tokens_per_s);
      io.out << line;
    }
    std::vector<std::pair<std::string, int64_t>> phases;
    for (const executor::PhaseMeasure& p : r.phases) phases.emplace_back(p.name, p.peak_bytes);
    const reports::Verification v = reports::verify(e, r.peak_bytes, phases, 0.03);
    io.out << "\n3. verify    predicted vs measured, phase by phase\n"
           << reports::verification_text(v);
    const double seconds = std::chrono::duration<double>(clock::now() - start).count();
    char tail[200];
    std::snprintf(tail, sizeof tail,
                  "\n  %.1f s in all. Next: loraplan estimate --gpu 6GB, loraplan plan --gpu 6GB "
                  "-o plan.json\n",
                  seconds);
    io.out << tail;
    if (keep)
      io.out << "  the run is in " << f->out << " (report.json, adapter_model.safetensors)\n";
    else
      std::filesystem::remove_all(q.out_dir);
    return v.pass ? kExitOk : kExitCheckFailed;
  };
}

}  // namespace loraplan::cli
