// loraplan verify: a run's measured memory against the planner's prediction, phase by phase.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>

#include "app.h"
#include "config_flags.h"
#include "loraplan/planner/batch_shapes.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/run_report.h"
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

// A run that stopped early measured no complete step: there is nothing to hold the prediction to.
void require_complete(const reports::RunReport& run, const std::string& where) {
  if (run.oom_splits > 0 && !run.out_of_memory) {
    throw InputError(where + ": the run split its micro-batches after an out-of-memory (" +
                     run.first_split +
                     "): its phases mix the failed attempt and the smaller size, no measurement "
                     "of one configuration to verify");
  }
  if (!run.out_of_memory && run.diverged_step == 0 && run.error.empty()) return;
  std::string why = run.error.size() > 160 ? run.error.substr(0, 160) + "..." : run.error;
  why = (run.out_of_memory       ? std::string("out of memory")
         : run.diverged_step > 0 ? "when it diverged at step " + std::to_string(run.diverged_step)
                                 : std::string("with an error")) +
        (why.empty() ? "" : " (" + why + ")");
  throw InputError(where + ": the run stopped " + why +
                   "; an incomplete run is not a measurement to verify");
}

// With --run alone the run says what it was: each configuration flag not given takes the run's
// value (the comparison after resolving checks the ones given).
ConfigFlags flags_from_run(const CLI::App& sub, ConfigFlags f, const reports::RunReport& run) {
  const reports::RunConfig& c = run.config;
  struct Knob {
    const char* flag;
    std::function<void()> take;
  };
  const Knob knobs[] = {
      {"--model", [&] { f.model = run.model.reference; }},
      {"--seq-len", [&] { f.seq_len = c.seq_len; }},
      {"--micro-batch", [&] { f.micro_batch = c.micro_batch; }},
      {"--grad-accum", [&] { f.grad_accum = c.grad_accum; }},
      {"--weights", [&] { f.weights = c.weights; }},
      {"--double-quant", [&] { f.double_quant = c.double_quant ? "on" : "off"; }},
      {"--compute-dtype", [&] { f.compute_dtype = c.compute_dtype; }},
      {"--lora-rank", [&] { f.lora_rank = c.lora_rank; }},
      {"--lora-alpha", [&] { f.lora_alpha = c.lora_alpha; }},
      {"--lora-dropout", [&] { f.lora_dropout = c.lora_dropout; }},
      {"--lora-targets", [&] { f.lora_targets = c.lora_targets; }},
      {"--optimizer", [&] { f.optimizer = c.optimizer; }},
      {"--checkpoint", [&] { f.checkpoint = c.checkpoint; }},
      // --offload takes a count where the report says "all"
      {"--offload",
       [&] {
         f.offload = c.offload == "all" ? std::to_string(run.model.shape.layers) : c.offload;
       }},
      {"--attention", [&] { f.attention = c.attention; }},
      {"--loss", [&] { f.loss = c.loss; }},
      {"--device", [&] { f.device = c.device; }},
      {"--gpu", [&] { f.gpu = f.device == "cuda" ? run.gpu : ""; }},  // after --device
  };
  for (const Knob& k : knobs) {
    const CLI::Option* o = sub.get_option_no_throw(k.flag);
    if (!o || o->count() == 0) k.take();
  }
  return f;
}

RunSpec resolve_from_run(const CLI::App& sub, const VerifyFlags& f, const reports::RunReport& run) {
  try {
    return resolve_run(sub, flags_from_run(sub, f.config, run), "");
  } catch (const InputError& e) {
    throw InputError(f.run + ": taking the configuration from the run: " + e.what());
  }
}

void take_eval_from_run(const reports::RunReport& run, planner::TrainConfig& c) {
  const nlohmann::json& written = run.config_as_written;
  if (!written.contains("eval") || !written["eval"].is_object()) return;
  const nlohmann::json& e = written["eval"];
  if (!e.contains("micro_batch") || !e["micro_batch"].is_number_integer() ||
      !e.contains("seq_len") || !e["seq_len"].is_number_integer() ||
      e["micro_batch"].get<int64_t>() <= 0 || e["seq_len"].get<int64_t>() <= 0) {
    throw InputError("\"config.eval\" must be {\"micro_batch\", \"seq_len\"} of positive integers");
  }
  c.eval_micro_batch = e["micro_batch"].get<int64_t>();
  c.eval_seq_len = e["seq_len"].get<int64_t>();
}

// The run must be of the model the flags (or the plan) name: the same family and dimensions.
void require_same_model(const reports::RunReport& run, const RunSpec& spec, const VerifyFlags& f) {
  const reports::RunModel expected = reports::run_model(spec.model_spec, spec.model);
  if (expected.shape == run.model.shape) return;
  throw InputError(
      f.run + ": not the same run: the run trained " + reports::model_summary(run.model) + ", " +
      (f.plan.empty() ? "the flags say " : "the plan says ") + reports::model_summary(expected));
}

// The flags (or the plan) must describe the run: every knob as report.json spells it.
void require_same_config(const reports::RunReport& run, const planner::TrainConfig& config,
                         const VerifyFlags& f) {
  const nlohmann::json& written = run.config_as_written;
  const nlohmann::json expected = reports::config_json(config);
  for (const auto& [key, value] : expected.items()) {
    if (written.contains(key) && written.at(key) == value) continue;
    throw InputError(
        f.run + ": the run's \"" + key + "\" is " +
        (written.contains(key) ? planner::json_excerpt(written.at(key)) : std::string("missing")) +
        ", " + (f.plan.empty() ? "the flags say " : "the plan says ") + value.dump());
  }
}

// Every phase of the prediction (setup aside) must be measured, and every measured phase predicted.
void require_same_phases(const planner::Estimate& e, const reports::RunReport& run,
                         const std::string& where) {
  std::vector<std::string> predicted;
  for (const planner::PhasePeak& p : e.phases) {
    if (p.name != "setup") predicted.push_back(p.name);
  }
  const std::string expected =
      "; a run measures exactly the prediction's " + std::to_string(predicted.size()) +
      " phases (" + (predicted.empty() ? "" : predicted.front() + " ... " + predicted.back()) + ")";
  for (size_t i = 0; i < run.phases.size(); ++i) {
    const std::string& name = run.phases[i].name;
    if (name != "setup" && std::find(predicted.begin(), predicted.end(), name) == predicted.end()) {
      throw InputError(where + ": \"measured.phases[" + std::to_string(i) + "].name\" is \"" +
                       name + "\", not a phase of the prediction" + expected);
    }
  }
  for (const std::string& name : predicted) {
    const bool measured = std::any_of(run.phases.begin(), run.phases.end(),
                                      [&](const reports::RunPhase& p) { return p.name == name; });
    if (!measured)
      throw InputError(where + ": \"measured.phases\" has no phase \"" + name + "\"" + expected);
  }
}

// What verify holds side by side: the run, what it was, the prediction and the verdict.
struct Verified {
  RunSpec spec;
  planner::Estimate estimate;
  reports::Verification verification;
  std::string stopped;  // why the run stopped early; empty when it completed
};

// `stopped_too`: a run that stopped early (out of memory, diverged, split, interrupted) is held to
// the prediction as far as it got, for report's page; verify refuses it.
Verified verify_run(const CLI::App& sub, const VerifyFlags& flags, bool stopped_too = false) {
  const VerifyFlags* f = &flags;
  const double tolerance = parse_tolerance(f->tolerance);
  const RunSpec planned =
      f->plan.empty() ? RunSpec{} : resolve_run(sub, f->config, f->plan);  // the plan first
  const reports::RunReport run = reports::parse_run_report(planner::read_text_file(f->run), f->run);
  std::string stopped;
  try {
    require_complete(run, f->run);
  } catch (const InputError& e) {
    if (!stopped_too) throw;
    // "run/report.json: the run stopped out of memory (...); an incomplete run is ..." as a
    // heading: what happened, without the file and verify's refusal.
    stopped = e.what();
    if (stopped.starts_with(f->run + ": ")) stopped = stopped.substr(f->run.size() + 2);
    if (const size_t cut = stopped.rfind("; an incomplete run"); cut != std::string::npos)
      stopped.resize(cut);
    if (const size_t cut = stopped.rfind(": its phases mix"); cut != std::string::npos)
      stopped.resize(cut);
  }
  RunSpec spec = f->plan.empty() ? resolve_from_run(sub, *f, run) : planned;
  // The eval step (--eval-data) is the run's, as its data is.
  if (f->plan.empty()) take_eval_from_run(run, spec.config);
  require_same_model(run, spec, *f);
  require_same_config(run, spec.config, *f);
  // A run on a dataset ran micro-batches of several shapes: each phase's prediction is its
  // highest over them, a shape seen only first in its step (before any gradient exists)
  // simulated as a step of one micro-batch.
  planner::Estimate e;
  if (run.data_shapes.empty()) {
    e = planner::estimate(spec.model, spec.config, spec.device);
  } else {
    planner::ShapeEstimates all;
    for (const reports::RunReport::Shape& s : run.data_shapes) {
      planner::TrainConfig c = planner::with_shape(spec.config, {s.micro_batch, s.seq_len, 1, 0});
      if (s.first) c.grad_accum = 1;
      all.estimates.push_back(planner::estimate(spec.model, c, spec.device));
      if (all.estimates.back().peak_bytes > all.estimates[all.worst].peak_bytes)
        all.worst = all.estimates.size() - 1;
    }
    e = planner::combined(all);
  }
  if (stopped.empty()) require_same_phases(e, run, f->run);
  std::vector<std::pair<std::string, int64_t>> phases;
  for (const reports::RunPhase& p : run.phases) phases.emplace_back(p.name, p.peak_bytes);
  reports::Verification v = reports::verify(e, run.peak_bytes, phases, tolerance);
  return {std::move(spec), std::move(e), std::move(v), std::move(stopped)};
}

// The page: the verdict, the timelines (timeline.json beside report.json, when train recorded
// one), the rows, and the run's loss and tokens/s over its steps.
std::string verify_page(const Verified& r, const std::string& run_path,
                        const std::string& command) {
  const std::filesystem::path dir = std::filesystem::path(run_path).parent_path();
  const std::filesystem::path tl = dir / "timeline.json";
  std::optional<reports::MeasuredSeries> measured;
  std::error_code ec;
  if (std::filesystem::is_regular_file(tl, ec))
    measured = reports::parse_measured_timeline(planner::read_text_file(tl.string()), tl.string());
  reports::RunCurves curves;
  curves.stopped = r.stopped;
  const nlohmann::json j = nlohmann::json::parse(planner::read_text_file(run_path), nullptr, false);
  if (j.is_object() && j.contains("steps") && j["steps"].is_array()) {
    for (const nlohmann::json& s : j["steps"]) {
      if (!s.is_object() || !s.contains("loss") || !s["loss"].is_number()) continue;
      curves.loss.push_back(s["loss"].get<double>());
      curves.tokens_per_s.push_back(s.value("tokens_per_s", 0.0));
    }
  }
  return reports::verification_html(
      r.verification, r.estimate, measured ? &*measured : nullptr, &curves,
      "loraplan verify: " + r.spec.model.name + ", " + run_path, command);
}

}  // namespace

Handler define_verify(CLI::App& sub) {
  auto f = std::make_shared<VerifyFlags>();
  f->config = executor_flags();
  add_config_flags(sub, f->config);
  sub.add_option("--plan", f->plan, "plan.json the run applied (instead of configuration flags)");
  sub.add_option("--run", f->run,
                 "report.json written by loraplan train; configuration flags not given take the "
                 "run's values, "
                 "those given must agree with it")
      ->required();
  sub.add_option("--tolerance", f->tolerance, "Largest relative error that passes, e.g. 2% or 0.02")
      ->default_str(f->tolerance);
  add_format_flag(sub, f->format, /*markdown=*/true, /*html=*/true);
  return [f, &sub](Io& io) {
    const Verified r = verify_run(sub, *f);
    const reports::Verification& v = r.verification;
    if (f->format == "html")
      io.out << verify_page(r, f->run, io.command);
    else if (f->format == "json")
      io.out << reports::verification_json(v).dump(2) << "\n";
    else if (f->format == "md")
      io.out << reports::verification_markdown(v);
    else
      io.out << r.spec.model.name << ": predicted vs measured (" << f->run << ")\n"
             << reports::verification_text(v);
    return v.pass ? kExitOk : kExitCheckFailed;
  };
}

Handler define_report(CLI::App& sub) {
  auto f = std::make_shared<VerifyFlags>();
  f->config = executor_flags();
  f->format = "html";
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  sub.add_option("RUN_DIR", *dir, "A train --out folder (report.json, and timeline.json if any)")
      ->required();
  sub.add_option("-o,--out", *out, "Write the page here (default: standard output)");
  sub.add_option("--tolerance", f->tolerance, "Largest relative error that passes, e.g. 2% or 0.02")
      ->default_str(f->tolerance);
  sub.footer("The page verify --format html writes for the run: its prediction and measurement.");
  return [f, dir, out, &sub](Io& io) {
    std::error_code ec;
    f->run = std::filesystem::is_directory(*dir, ec)
                 ? (std::filesystem::path(*dir) / "report.json").string()
                 : *dir;
    if (!std::filesystem::is_regular_file(f->run, ec))
      throw InputError("RUN_DIR: " + *dir + " holds no report.json (a train --out folder)");
    const std::string page =
        verify_page(verify_run(sub, *f, /*stopped_too=*/true), f->run, io.command);
    if (out->empty() || *out == "-") {
      io.out << page;
    } else {
      write_file_atomic(*out, page);
      io.out << "wrote " << *out << "\n";
    }
    return kExitOk;
  };
}

}  // namespace loraplan::cli
