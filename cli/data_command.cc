// loraplan data: a dataset's lengths and, for each batching policy, its micro-batches, padding
// and largest micro-batch (docs/data.md).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>

#include "app.h"
#include "data_flags.h"
#include "loraplan/data/dataset.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/table.h"

namespace loraplan::cli {

namespace {

struct DataCommandFlags {
  DataFlags data;
  std::string model;
  int64_t seq_len = 1024;
  int64_t micro_batch = 1;
  int64_t grad_accum = 8;
  uint64_t seed = 0;
  std::vector<std::string> batchings;
  std::string format = "table";
};

using Lengths = DatasetLengths;

int64_t percentile(const std::vector<int64_t>& sorted, double p) {  // nearest rank
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

struct PolicyReport {
  data::Batching batching;
  std::vector<data::MicroBatch> batches;
  size_t largest = 0;
  int64_t padded = 0;
};

nlohmann::json policy_json(const PolicyReport& p, const Lengths& l, int64_t grad_accum) {
  const data::MicroBatch& w = p.batches[p.largest];
  const int64_t steps = (static_cast<int64_t>(p.batches.size()) + grad_accum - 1) / grad_accum;
  return {{"batching", p.batching.name()},
          {"micro_batches", p.batches.size()},
          {"optimizer_steps", steps},
          {"padded_tokens", p.padded},
          {"padding_share", p.padded ? double(p.padded - l.tokens) / double(p.padded) : 0.0},
          {"tokens_per_step", steps ? double(l.tokens) / double(steps) : 0.0},
          {"worst_batch", {{"micro_batch", w.sequences}, {"seq_len", w.seq_len}, {"rows", w.rows}}},
          {"shapes", p.batches.size()}};
}

// Counts by length: <= 16, <= 32, ... up to the longest.
std::vector<std::pair<int64_t, int64_t>> histogram(const std::vector<int64_t>& sorted) {
  std::vector<std::pair<int64_t, int64_t>> bins;
  if (sorted.empty()) return bins;
  int64_t edge = 16;
  size_t i = 0;
  while (i < sorted.size()) {
    int64_t n = 0;
    while (i < sorted.size() && sorted[i] <= edge) ++i, ++n;
    bins.emplace_back(edge, n);
    edge *= 2;
  }
  return bins;
}

void print_table(Io& io, const DataCommandFlags& f, const Lengths& l,
                 const std::vector<PolicyReport>& policies, const std::vector<int64_t>& sorted) {
  const bool md = f.format == "md";
  const auto render = [md](const reports::Table& t) { return md ? t.markdown() : t.text(); };
  const data::DatasetSummary& s = l.summary;
  io.out << f.data.data << ": " << reports::with_commas(s.rows) << " rows, "
         << reports::with_commas(l.tokens) << " tokens at T " << f.seq_len;
  if (s.truncated) {
    io.out << " (" << reports::with_commas(s.truncated) << " rows truncated, "
           << reports::with_commas(s.truncated_tokens) << " tokens cut)";
  }
  io.out << (l.cache_hit ? "  (tokens from the cache: " + f.data.cache() + ")\n" : "\n");
  if (s.skipped) {
    io.out << "  skipped " << reports::with_commas(s.skipped)
           << " bad rows; the first: " << s.first_skipped << "\n";
  }
  io.out << "  lengths: p50 " << reports::with_commas(percentile(sorted, 0.5)) << ", p90 "
         << reports::with_commas(percentile(sorted, 0.9)) << ", p99 "
         << reports::with_commas(percentile(sorted, 0.99)) << ", max "
         << reports::with_commas(sorted.empty() ? 0 : sorted.back()) << " tokens\n\n";

  reports::Table h({{"tokens", reports::Align::kRight}, {"rows", reports::Align::kRight}, {""}});
  const auto bins = histogram(sorted);
  int64_t most = 1;
  for (const auto& [edge, n] : bins) most = std::max(most, n);
  for (const auto& [edge, n] : bins) {
    h.add_row({"<= " + reports::with_commas(edge), reports::with_commas(n),
               md ? "" : std::string(static_cast<size_t>((n * 40 + most - 1) / most), '#')});
  }
  io.out << render(h) << "\n";

  reports::Table t({{"batching"},
                    {"micro-batches", reports::Align::kRight},
                    {"steps", reports::Align::kRight},
                    {"padding", reports::Align::kRight},
                    {"tokens/step", reports::Align::kRight},
                    {"largest micro-batch"}});
  for (const PolicyReport& p : policies) {
    const nlohmann::json j = policy_json(p, l, f.grad_accum);
    const data::MicroBatch& w = p.batches[p.largest];
    t.add_row({p.batching.name(), reports::with_commas(static_cast<int64_t>(p.batches.size())),
               reports::with_commas(j["optimizer_steps"].get<int64_t>()),
               reports::percent(double(p.padded - l.tokens), double(p.padded)),
               reports::with_commas(std::llround(j["tokens_per_step"].get<double>())),
               std::to_string(w.sequences) + " x " + std::to_string(w.seq_len) + ": rows " +
                   rows_text(w.rows)});
  }
  io.out << "  micro-batch " << f.micro_batch << ", accumulation " << f.grad_accum
         << ", padded to multiples of " << f.data.pad_multiple << ", seed " << f.seed
         << " (rows are 0-based)\n"
         << (md ? "\n" : "") << render(t);
}

}  // namespace

Handler define_data(CLI::App& sub) {
  auto f = std::make_shared<DataCommandFlags>();
  sub.add_option("--model", f->model,
                 "The model (its folder's tokenizer.json is used; ids must be below its vocab)");
  add_data_flags(sub, f->data, DataFlagsFor::kDataCommand);
  sub.add_option("--seq-len", f->seq_len, "Tokens per sequence (T): longer rows are cut")
      ->check(positive_integer())
      ->default_str("1024");
  sub.add_option("--micro-batch", f->micro_batch, "Sequences per micro-batch (B)")
      ->check(positive_integer())
      ->default_str("1");
  sub.add_option("--grad-accum", f->grad_accum, "Micro-batches per optimizer step")
      ->check(positive_integer())
      ->default_str("8");
  sub.add_option("--batching", f->batchings,
                 "fixed, longest, tokens:N or packed (repeatable; default: all four, N = B x T)");
  sub.add_option("--seed", f->seed, "Seed of the epoch's order")->default_str("0");
  add_format_flag(sub, f->format);
  return [f](Io& io) {
    const int64_t vocab = f->model.empty() ? 0 : planner::load_model(f->model).vocab;
    const Lengths l = read_dataset_lengths(f->data, f->model, vocab, f->seq_len);
    std::vector<std::string> names = f->batchings;
    if (names.empty()) {
      names = {"fixed", "longest", "tokens:" + std::to_string(f->micro_batch * f->seq_len),
               "packed"};
    }
    std::vector<PolicyReport> policies;
    for (const std::string& name : names) {
      data::BatchingOptions o;
      o.batching = data::Batching::parse(name);
      o.seq_len = f->seq_len;
      o.micro_batch = f->micro_batch;
      o.pad_multiple = f->data.pad_multiple;
      o.seed = f->seed;
      PolicyReport p{o.batching, data::make_batches(l.trained, o), 0, 0};
      p.largest = data::largest_batch(p.batches);
      for (const data::MicroBatch& b : p.batches) p.padded += b.padded();
      policies.push_back(std::move(p));
    }
    std::vector<int64_t> sorted = l.full;
    std::sort(sorted.begin(), sorted.end());
    if (f->format == "json") {
      nlohmann::json j = {{"rows", l.summary.rows},
                          {"tokens", l.tokens},
                          {"truncated", l.summary.truncated},
                          {"truncated_tokens", l.summary.truncated_tokens},
                          {"skipped", l.summary.skipped},
                          {"seq_len", f->seq_len},
                          {"lengths",
                           {{"p50", percentile(sorted, 0.5)},
                            {"p90", percentile(sorted, 0.9)},
                            {"p99", percentile(sorted, 0.99)},
                            {"max", sorted.back()}}},
                          {"histogram", nlohmann::json::array()},
                          {"policies", nlohmann::json::array()}};
      for (const auto& [edge, n] : histogram(sorted)) {
        j["histogram"].push_back({{"up_to", edge}, {"rows", n}});
      }
      for (const PolicyReport& p : policies)
        j["policies"].push_back(policy_json(p, l, f->grad_accum));
      io.out << j.dump(2) << "\n";
    } else {
      print_table(io, *f, l, policies, sorted);
    }
    return kExitOk;
  };
}

}  // namespace loraplan::cli
