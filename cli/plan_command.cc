// loraplan plan: the fastest configuration that fits, written as plan.json.
#include <CLI/CLI.hpp>
#include <cmath>
#include <memory>
#include <ostream>

#include "app.h"
#include "config_flags.h"
#include "data_flags.h"
#include "loraplan/data/token_cache.h"
#include "loraplan/planner/content_hash.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/reports/plan_report.h"
#include "loraplan/reports/table.h"
#include "search_flags.h"

namespace loraplan::cli {

namespace {

struct PlanFlags {
  ConfigFlags config;
  SearchFlags search;
  DataFlags data;
  std::string format = "table";
  std::string out;
  std::string from;
};

// What --data adds to the plan: the data, its batching and the chosen plan's worst micro-batch.
// train does not read it back yet; give train the same --data and --batching.
// The batching a search tries at micro-batch B: --batching, or "tokens:B*T" for a token budget
// of the micro-batch's own size.
std::string batching_at(const std::string& policy, int64_t micro_batch, int64_t seq_len) {
  return policy == "tokens:BT" ? "tokens:" + std::to_string(micro_batch * seq_len) : policy;
}

nlohmann::json data_section(const PlanFlags& f, const DatasetLengths& lengths,
                            const planner::PlanSearch& search, const std::string& policy) {
  const planner::TrainConfig& c = search.chosen.config;
  DataFlags data = f.data;
  data.batching = batching_at(policy, c.micro_batch, c.seq_len);
  const DatasetBatches b =
      batch_dataset(data, lengths, c.seq_len, c.micro_batch, f.data.seed, "longest");
  const DatasetShapes shapes = shapes_of(b.batches);
  const planner::ShapeCount& w = search.worst_shape;
  std::vector<int64_t> rows;
  for (size_t i = 0; i < shapes.frontier.size(); ++i) {
    if (shapes.frontier[i].micro_batch == w.micro_batch && shapes.frontier[i].seq_len == w.seq_len)
      rows = b.batches[shapes.frontier_batch[i]].rows;
  }
  return {{"path", f.data.data},
          {"hash", planner::file_hash(f.data.data)},
          {"rows", lengths.summary.rows},
          {"tokens", lengths.tokens},
          {"truncated", lengths.summary.truncated},
          {"batching", b.options.batching.name()},
          {"pad_multiple", b.options.pad_multiple},
          {"seed", b.options.seed},
          {"micro_batches", b.batches.size()},
          {"shapes", shapes.epoch.size()},
          {"worst_batch",
           {{"micro_batch", w.micro_batch},
            {"seq_len", w.seq_len},
            {"rows", rows},
            {"peak_bytes", search.estimate.peak_bytes}}},
          {"tokens_per_s", search.chosen.cost.tokens_per_s}};
}

std::string data_text(const nlohmann::json& d) {
  const nlohmann::json& w = d["worst_batch"];
  char speed[64];
  std::snprintf(speed, sizeof speed, "%.0f", d["tokens_per_s"].get<double>());
  return "\n  data: " + d["path"].get<std::string>() + ", " +
         reports::with_commas(d["rows"].get<int64_t>()) + " rows, batching " +
         d["batching"].get<std::string>() + ": " +
         reports::with_commas(d["micro_batches"].get<int64_t>()) + " micro-batches of " +
         std::to_string(d["shapes"].get<int64_t>()) + " shapes per epoch, " +
         reports::with_commas(std::atoll(speed)) + " real tokens/s over the epoch\n" +
         "  worst micro-batch of the chosen plan: " +
         std::to_string(w["micro_batch"].get<int64_t>()) + " x " +
         std::to_string(w["seq_len"].get<int64_t>()) + " (rows " +
         rows_text(w["rows"].get<std::vector<int64_t>>()) + "), peak " +
         planner::format_bytes(w["peak_bytes"].get<int64_t>()) + "\n";
}

}  // namespace

Handler define_plan(CLI::App& sub) {
  auto f = std::make_shared<PlanFlags>();
  add_config_flags(sub, f->config, /*searched_knobs=*/false);
  add_search_flags(sub, f->search);
  add_data_flags(sub, f->data, DataFlagsFor::kPlanning);
  add_format_flag(sub, f->format, /*markdown=*/true, /*html=*/true);
  add_from_flag(sub, f->from);
  sub.add_option(
      "-o,--out", f->out,
      "Write the plan here (plan.json) for loraplan train --plan; - writes it to standard output");
  return [f, &sub](Io& io) {
    if (sub.get_option("--out")->count() > 0 && f->out.empty())
      throw InputError("--out: empty; give a file name");
    if (!f->from.empty()) {
      const FromApplied from =
          apply_from(sub, f->from, f->config, &f->data.batching, !f->data.data.empty());
      io.err << from_text(from);
    }
    const planner::ModelDesc model = planner::load_model(f->config.model);
    planner::TrainConfig base = resolve_config(f->config, model);
    apply_eval_data(f->data, f->config.model, model.vocab, base, {});
    const planner::DeviceModel device = resolve_device(f->config);
    if (device.budget_bytes <= 0)
      throw InputError("--budget: plan needs a memory budget with --device cpu");
    planner::SearchSpace space = resolve_search(f->search, f->config, device.budget_bytes);
    const planner::Rates rates = device_rates(f->config, base);
    std::shared_ptr<const DatasetLengths> lengths;
    std::string policy;  // the batching of the chosen plan (with --data)
    planner::PlanSearch search;
    if (f->data.data.empty()) {
      search = planner::search_plan(model, base, device, rates, space);
    } else {
      lengths = std::make_shared<const DatasetLengths>(
          read_dataset_lengths(f->data, f->config.model, model.vocab, base.seq_len));
      // Without --batching: padding to the longest and a token budget of B x T, the faster wins.
      const std::vector<std::string> policies =
          f->data.batching.empty() ? std::vector<std::string>{"longest", "tokens:BT"}
                                   : std::vector<std::string>{f->data.batching};
      for (const std::string& p : policies) {
        space.data_shapes = [f, lengths, p, T = base.seq_len](int64_t micro_batch) {
          DataFlags data = f->data;
          data.batching = batching_at(p, micro_batch, T);
          const DatasetShapes s = shapes_of(
              batch_dataset(data, *lengths, T, micro_batch, f->data.seed, "longest").batches);
          return planner::DataShapes{s.epoch, s.frontier};
        };
        planner::PlanSearch candidate = planner::search_plan(model, base, device, rates, space);
        const bool better =
            candidate.found &&
            (!search.found || candidate.chosen.cost.tokens_per_s > search.chosen.cost.tokens_per_s);
        if (better || policy.empty()) {
          search = std::move(candidate);
          policy = p;
        }
      }
    }
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
    nlohmann::json plan = planner::plan_json(view);
    std::string data_lines;
    if (lengths) {
      const nlohmann::json d = data_section(*f, *lengths, search, policy);
      plan["data"] = d;
      data_lines = data_text(d);
    }
    const std::string json = plan.dump(2) + "\n";
    if (!f->out.empty() && f->out != "-") write_file_atomic(f->out, json);
    if (f->out == "-" || f->format == "json")
      io.out << json;  // the plan itself is the output
    else if (f->format == "md")
      io.out << reports::plan_markdown(view) << data_lines;
    else if (f->format == "html")
      io.out << reports::plan_html(view, io.command);
    else
      io.out << reports::plan_text(view) << data_lines
             << (f->out.empty() ? "" : "  wrote " + f->out + "\n");
    return kExitOk;
  };
}

}  // namespace loraplan::cli
