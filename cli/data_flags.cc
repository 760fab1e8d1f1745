#include "data_flags.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <map>
#include <numeric>

#include "app.h"
#include "loraplan/data/token_cache.h"
#include "loraplan/planner/errors.h"
#include "loraplan/reports/table.h"

namespace loraplan::cli {

namespace fs = std::filesystem;

std::string DataFlags::cache() const {
  if (no_cache) return "";
  return cache_dir.empty() ? data::default_cache_dir() : cache_dir;
}

CLI::Option* add_data_flags(CLI::App& sub, DataFlags& f, DataFlagsFor command) {
  const bool required_data = command == DataFlagsFor::kDataCommand;
  auto* data = sub.add_option("--data", f.data,
                              "Dataset: JSONL or a JSON array of {\"text\"}, {\"prompt\", "
                              "\"completion\"} or {\"input_ids\"[, \"labels\"]} rows");
  data->check(CLI::ExistingFile);
  if (required_data) data->required();
  if (!required_data) {
    sub.add_option("--batching", f.batching,
                   "With --data: fixed, longest (the default), tokens:N or packed (docs/data.md)");
  }
  if (command == DataFlagsFor::kPlanning) {
    sub.add_option("--seed", f.seed, "With --data: the seed of the epoch's order")
        ->default_str("0");
  }
  sub.add_option("--tokenizer", f.tokenizer,
                 "tokenizer.json, or a folder holding it (default: the --model folder's)");
  sub.add_option("--field", f.field, "The text field of text rows")
      ->default_str(f.field)
      ->each([&f](const std::string&) { f.field_given = true; });
  sub.add_option("--pad-multiple", f.pad_multiple,
                 "Padded lengths are rounded up to a multiple of this")
      ->check(positive_integer())
      ->default_str("8");
  sub.add_flag("--skip-bad-rows", f.skip_bad_rows,
               "Skip rows that cannot be read (counted) instead of stopping at the first");
  if (!required_data) {
    sub.add_option("--eval-data", f.eval_data,
                   "Evaluation rows (the --data formats): the eval step's forward is part of the "
                   "peak")
        ->check(CLI::ExistingFile);
    sub.add_option("--eval-batch", f.eval_batch,
                   "Sequences per eval micro-batch (default: --micro-batch)")
        ->check(positive_integer());
  }
  sub.add_option("--cache-dir", f.cache_dir,
                 "Where tokenized datasets are kept (default: $LORAPLAN_CACHE, else "
                 "$XDG_CACHE_HOME/loraplan or ~/.cache/loraplan)");
  sub.add_flag("--no-cache", f.no_cache, "Tokenize --data again and keep nothing");
  sub.add_flag("--longest-first", f.longest_first,
               "Put the largest micro-batch first, so an out-of-memory comes at step 1");
  return data;
}

std::optional<std::string> tokenizer_path(const DataFlags& f, const std::string& model_spec) {
  if (!f.tokenizer.empty()) return f.tokenizer;
  if (model_spec.empty()) return std::nullopt;
  std::error_code ec;
  fs::path dir(model_spec);
  if (!fs::is_directory(dir, ec)) dir = dir.parent_path();
  if (fs::exists(dir / "tokenizer.json", ec) && fs::exists(model_spec, ec)) return dir.string();
  return std::nullopt;
}

data::DatasetSummary read_samples(const DataFlags& f, const std::string& model_spec, int64_t vocab,
                                  int64_t seq_len,
                                  const std::function<void(data::Sample&&)>& sample,
                                  bool* cache_hit) {
  const std::optional<std::string> path = tokenizer_path(f, model_spec);
  std::optional<data::Tokenizer> tok;
  const auto load = [&]() -> const data::Tokenizer* {
    if (!path) return nullptr;
    tok = data::Tokenizer::load(*path);
    if (vocab > 0 && tok->vocab_size() > vocab) {
      throw InputError("--tokenizer: " + tok->source() + " has " +
                       reports::with_commas(tok->vocab_size()) + " tokens, more than the model's " +
                       reports::with_commas(vocab) + " embedding rows");
    }
    return &*tok;
  };
  data::DatasetOptions o;
  o.field = f.field;
  o.field_given = f.field_given;
  o.seq_len = seq_len;
  o.vocab = vocab;
  o.skip_bad_rows = f.skip_bad_rows;
  return data::for_each_cached_sample(f.data, path ? data::tokenizer_fingerprint(*path) : "", load,
                                      o, f.cache(), sample, cache_hit);
}

DatasetLengths read_dataset_lengths(const DataFlags& f, const std::string& model_spec,
                                    int64_t vocab, int64_t seq_len) {
  DatasetLengths l;
  l.summary = read_samples(
      f, model_spec, vocab, seq_len,
      [&](data::Sample&& s) {
        l.trained.push_back(static_cast<int64_t>(s.ids.size()));
        l.full.push_back(s.full_length);
        l.tokens += static_cast<int64_t>(s.ids.size());
      },
      &l.cache_hit);
  if (l.trained.empty()) throw InputError(f.data + ": no rows");
  return l;
}

DatasetBatches batch_dataset(const DataFlags& f, const DatasetLengths& lengths, int64_t seq_len,
                             int64_t micro_batch, uint64_t seed, const std::string& fallback) {
  DatasetBatches b;
  b.options.batching = data::Batching::parse(f.batching.empty() ? fallback : f.batching);
  b.options.seq_len = seq_len;
  b.options.micro_batch = micro_batch;
  b.options.pad_multiple = f.pad_multiple;
  b.options.seed = seed;
  b.options.longest_first = f.longest_first;
  b.batches = data::make_batches(lengths.trained, b.options);
  return b;
}

DatasetShapes shapes_of(const std::vector<data::MicroBatch>& batches) {
  struct Group {
    planner::ShapeCount shape;
    size_t batch = 0;  // the one with most tokens
  };
  std::map<std::pair<int64_t, int64_t>, Group> groups;  // by (T, B)
  for (size_t i = 0; i < batches.size(); ++i) {
    const data::MicroBatch& b = batches[i];
    Group& g = groups[{b.seq_len, b.sequences}];
    if (g.shape.count == 0 || b.tokens > batches[g.batch].tokens) g.batch = i;
    g.shape.micro_batch = b.sequences;
    g.shape.seq_len = b.seq_len;
    ++g.shape.count;
    g.shape.tokens += b.tokens;
  }
  DatasetShapes out;
  for (const auto& [key, g] : groups) out.epoch.push_back(g.shape);
  for (const data::BatchShape& s : data::shape_frontier(batches)) {
    const Group& g = groups.at({s.seq_len, s.sequences});
    out.frontier.push_back(g.shape);
    out.frontier_batch.push_back(g.batch);
  }
  return out;
}

std::vector<data::MicroBatch> apply_eval_data(const DataFlags& f, const std::string& model_spec,
                                              int64_t vocab, planner::TrainConfig& c,
                                              const std::function<void(data::Sample&&)>& sample) {
  if (f.eval_data.empty()) return {};
  DataFlags eval = f;
  eval.data = f.eval_data;
  std::vector<int64_t> lengths;
  read_samples(
      eval, model_spec, vocab, c.seq_len,
      [&](data::Sample&& s) {
        lengths.push_back(static_cast<int64_t>(s.ids.size()));
        if (sample) sample(std::move(s));
      },
      nullptr);
  if (lengths.empty()) throw InputError("--eval-data: " + f.eval_data + ": no rows");
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  const int64_t B = f.eval_batch > 0 ? f.eval_batch : c.micro_batch;
  const int64_t K = f.pad_multiple;
  std::vector<data::MicroBatch> batches;
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(B)) {
    data::MicroBatch b;
    b.rows.assign(order.begin() + static_cast<std::ptrdiff_t>(i),
                  order.begin() + static_cast<std::ptrdiff_t>(
                                      std::min(order.size(), i + static_cast<size_t>(B))));
    for (const int64_t r : b.rows) b.tokens += lengths[r];
    b.sequences = static_cast<int64_t>(b.rows.size());
    b.seq_len =
        std::min((lengths[b.rows[0]] + K - 1) / K * K, std::max(c.seq_len, lengths[b.rows[0]]));
    batches.push_back(std::move(b));
  }
  c.eval_micro_batch = batches[0].sequences;
  c.eval_seq_len = batches[0].seq_len;
  return batches;
}

std::string rows_text(const std::vector<int64_t>& rows) {
  std::string s;
  const size_t shown = std::min<size_t>(rows.size(), 4);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + reports::with_commas(rows[i]);
  if (rows.size() > shown) s += ", ... (" + std::to_string(rows.size()) + " rows)";
  return s;
}

}  // namespace loraplan::cli
