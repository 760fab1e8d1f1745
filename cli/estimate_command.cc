// loraplan estimate: simulate one training step and say whether it fits; with --data, the step of
// the dataset's worst micro-batch.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <ostream>

#include "app.h"
#include "config_flags.h"
#include "data_flags.h"
#include "loraplan/planner/batch_shapes.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/html.h"
#include "loraplan/reports/table.h"
#include "loraplan/reports/timeline.h"
#include "search_flags.h"

namespace loraplan::cli {

namespace {

struct EstimateFlags {
  ConfigFlags config;
  DataFlags data;
  std::string format = "table";
  std::string from;
  std::string trace;
};

// What --data adds: the epoch's shapes, each frontier shape's estimate and the worst.
struct DataPart {
  DatasetLengths lengths;
  DatasetBatches batches;
  DatasetShapes shapes;
  planner::ShapeEstimates estimates;
  planner::EpochCost epoch;  // every shape's micro-batches, timed by the cost model
  const data::MicroBatch& worst() const {
    return batches.batches[shapes.frontier_batch[estimates.worst]];
  }
};

nlohmann::json data_json(const DataPart& d, const std::string& path) {
  const data::MicroBatch& w = d.worst();
  nlohmann::json shapes = nlohmann::json::array();
  for (size_t i = 0; i < d.shapes.frontier.size(); ++i) {
    const planner::ShapeCount& s = d.shapes.frontier[i];
    shapes.push_back({{"micro_batch", s.micro_batch},
                      {"seq_len", s.seq_len},
                      {"micro_batches", s.count},
                      {"peak_bytes", d.estimates.estimates[i].peak_bytes}});
  }
  return {{"worst_batch", {{"micro_batch", w.sequences}, {"seq_len", w.seq_len}, {"rows", w.rows}}},
          {"data",
           {{"path", path},
            {"rows", d.lengths.summary.rows},
            {"tokens", d.lengths.tokens},
            {"truncated", d.lengths.summary.truncated},
            {"batching", d.batches.options.batching.name()},
            {"pad_multiple", d.batches.options.pad_multiple},
            {"seed", d.batches.options.seed},
            {"micro_batches", d.batches.batches.size()},
            {"shapes", d.shapes.epoch.size()},
            {"frontier", shapes},
            {"epoch_seconds", d.epoch.epoch_s},
            {"tokens_per_s", d.epoch.tokens_per_s}}}};
}

// "takes 12.3 s, 4,036 real tokens/s".
std::string epoch_text(const planner::EpochCost& e) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", e.epoch_s);
  return "takes " + std::string(seconds) + " s, " +
         reports::with_commas(std::llround(e.tokens_per_s)) + " real tokens/s (cost model)";
}

std::string data_text(const DataPart& d, const std::string& path, bool markdown) {
  const data::MicroBatch& w = d.worst();
  const planner::Estimate& e = d.estimates.estimates[d.estimates.worst];
  std::string out = "\n  data: " + path + ", " + reports::with_commas(d.lengths.summary.rows) +
                    " rows, batching " + d.batches.options.batching.name() + ": " +
                    reports::with_commas(static_cast<int64_t>(d.batches.batches.size())) +
                    " micro-batches of " + std::to_string(d.shapes.epoch.size()) + " shapes; " +
                    "an epoch " + epoch_text(d.epoch) + "\n" +
                    "  worst micro-batch: " + std::to_string(w.sequences) + " x " +
                    std::to_string(w.seq_len) + " (rows " + rows_text(w.rows) + "), peak " +
                    planner::format_bytes(e.peak_bytes) + "; the estimate above is its step\n\n";
  reports::Table t({{"shape (B x T)"},
                    {"micro-batches", reports::Align::kRight},
                    {"peak", reports::Align::kRight}});
  for (size_t i = 0; i < d.shapes.frontier.size(); ++i) {
    const planner::ShapeCount& s = d.shapes.frontier[i];
    t.add_row({std::to_string(s.micro_batch) + " x " + std::to_string(s.seq_len) +
                   (i == d.estimates.worst ? "  (worst)" : ""),
               reports::with_commas(s.count),
               planner::format_bytes(d.estimates.estimates[i].peak_bytes)});
  }
  return out + (markdown ? t.markdown() : t.text());
}

}  // namespace

Handler define_estimate(CLI::App& sub) {
  auto f = std::make_shared<EstimateFlags>();
  add_config_flags(sub, f->config);
  add_data_flags(sub, f->data, DataFlagsFor::kPlanning);
  add_format_flag(sub, f->format, /*markdown=*/true, /*html=*/true);
  add_from_flag(sub, f->from);
  sub.add_option("--trace", f->trace,
                 "Also write the predicted timeline here as a Chrome trace (JSON; open it in "
                 "Perfetto or chrome://tracing)");
  sub.footer(
      "With --data the dataset's micro-batches are made as --batching says, every shape that "
      "could be the worst is simulated, and the estimate is the worst one's (docs/data.md).");
  return [f, &sub](Io& io) {
    std::optional<FromApplied> from;
    if (!f->from.empty()) {
      from = apply_from(sub, f->from, f->config, &f->data.batching, !f->data.data.empty());
      io.err << from_text(*from);
    }
    const planner::ModelDesc model = planner::load_model(f->config.model);
    planner::TrainConfig config = resolve_config(f->config, model);
    apply_eval_data(f->data, f->config.model, model.vocab, config, {});
    const planner::DeviceModel device = resolve_device(f->config);
    std::optional<DataPart> data;
    planner::Estimate e;
    if (!f->data.data.empty()) {
      data = DataPart{read_dataset_lengths(f->data, f->config.model, model.vocab, config.seq_len),
                      {},
                      {},
                      {},
                      {}};
      data->batches = batch_dataset(f->data, data->lengths, config.seq_len, config.micro_batch,
                                    f->data.seed, "longest");
      data->shapes = shapes_of(data->batches.batches);
      data->estimates = planner::estimate_shapes(model, config, device, data->shapes.frontier);
      data->epoch =
          planner::epoch_cost(model, config, device_rates(f->config, config), data->shapes.epoch);
      config = planner::with_shape(config, data->shapes.frontier[data->estimates.worst]);
      e = data->estimates.estimates[data->estimates.worst];
    } else {
      e = planner::estimate(model, config, device);
    }
    const std::vector<planner::Suggestion> fixes =
        e.fits ? std::vector<planner::Suggestion>{} : planner::suggest_fixes(model, config, device);
    const reports::EstimateView view{model, config, device, e, fixes};
    if (!f->trace.empty()) {
      write_file_atomic(f->trace,
                        reports::chrome_trace_json(reports::predicted_timeline(e.schedule),
                                                   "loraplan estimate: " + model.name),
                        "--trace");
    }
    if (f->format == "html") {
      std::string extra;
      if (data) {
        const data::MicroBatch& w = data->worst();
        extra = "<h2>The data</h2>\n<p>" + reports::html_escape(f->data.data) + ": " +
                reports::with_commas(data->lengths.summary.rows) + " rows, batching " +
                reports::html_escape(data->batches.options.batching.name()) + "; the worst " +
                "micro-batch (" + std::to_string(w.sequences) + " x " + std::to_string(w.seq_len) +
                ", rows " + reports::html_escape(rows_text(w.rows)) + ") is the step above.</p>\n" +
                reports::length_histogram_svg(data->lengths.trained, w.rows, f->config.seq_len, 48,
                                              1200, 260);
      }
      io.out << reports::estimate_html(view, io.command, extra);
    } else if (f->format == "json") {
      nlohmann::json j = reports::estimate_json(view);
      if (data) j.update(data_json(*data, f->data.data));
      if (from) j["from"] = from_json(*from);
      io.out << j.dump(2) << "\n";
    } else {
      const bool md = f->format == "md";
      io.out << (md ? reports::estimate_markdown(view) : reports::estimate_text(view));
      if (data) io.out << data_text(*data, f->data.data, md);
    }
    return e.fits ? kExitOk : kExitCheckFailed;
  };
}

}  // namespace loraplan::cli
