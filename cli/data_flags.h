#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loraplan/data/batching.h"
#include "loraplan/data/dataset.h"
#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/batch_shapes.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace loraplan::cli {

// The flags of commands that read a dataset (data; estimate, plan and train with --data).
struct DataFlags {
  std::string data;       // --data FILE
  std::string tokenizer;  // --tokenizer PATH|DIR; empty: the --model folder's tokenizer.json
  std::string field = "text";
  bool field_given = false;  // --field was given: every row is read as text from it
  std::string batching;      // empty: the command's default
  int64_t pad_multiple = 8;
  bool skip_bad_rows = false;
  bool longest_first = false;
  uint64_t seed = 0;            // the epoch's order (estimate, plan; train --plan: the plan's)
  bool seed_from_plan = false;  // train: order by `seed`, not train's own --seed
  std::string eval_data;        // --eval-data FILE
  int64_t eval_batch = 0;       // --eval-batch; 0: the micro-batch
  std::string cache_dir;        // --cache-dir; empty: data::default_cache_dir()
  bool no_cache = false;

  // Where the token cache is, or "" for none.
  std::string cache() const;
};

// Which command declares the flags: `data` requires --data and takes --batching and --seed
// itself; estimate and plan get --batching and --seed (the epoch's order decides its shapes);
// train gets --batching (its own --seed orders the data).
enum class DataFlagsFor { kDataCommand, kPlanning, kTraining };
// Returns the --data option.
CLI::Option* add_data_flags(CLI::App& sub, DataFlags& f, DataFlagsFor command);

// The tokenizer --tokenizer names, else the --model folder's (a model directory, or the folder of
// a config.json / safetensors file) when it holds tokenizer.json, else none (pre-tokenized rows
// need none).
std::optional<std::string> tokenizer_path(const DataFlags& f, const std::string& model_spec);

// Reads --data through the token cache, loading the tokenizer only when the cache lacks the
// dataset; pre-tokenized ids must be below `vocab`, and the tokenizer must have no more tokens.
data::DatasetSummary read_samples(const DataFlags& f, const std::string& model_spec, int64_t vocab,
                                  int64_t seq_len,
                                  const std::function<void(data::Sample&&)>& sample,
                                  bool* cache_hit);

// A dataset's sequence lengths, as trained (cut to T) and as written.
struct DatasetLengths {
  bool cache_hit = false;  // the rows came from the token cache
  std::vector<int64_t> trained;
  std::vector<int64_t> full;
  data::DatasetSummary summary;
  int64_t tokens = 0;  // trained tokens
};

// Reads --data (read_samples); ids of pre-tokenized rows must be below
// `vocab` (0: the tokenizer's). InputError when no row is left.
DatasetLengths read_dataset_lengths(const DataFlags& f, const std::string& model_spec,
                                    int64_t vocab, int64_t seq_len);

// The epoch's micro-batches of --batching (or `fallback` when it is not given).
struct DatasetBatches {
  data::BatchingOptions options;
  std::vector<data::MicroBatch> batches;
};
DatasetBatches batch_dataset(const DataFlags& f, const DatasetLengths& lengths, int64_t seq_len,
                             int64_t micro_batch, uint64_t seed, const std::string& fallback);

// The shapes of an epoch's micro-batches: every shape with its count, and the frontier (no other
// shape has both B and T at least as large), the candidates for the peak.
struct DatasetShapes {
  std::vector<planner::ShapeCount> epoch;
  std::vector<planner::ShapeCount> frontier;
  std::vector<size_t> frontier_batch;  // of each frontier shape, its micro-batch of most tokens
};
DatasetShapes shapes_of(const std::vector<data::MicroBatch>& batches);

// The eval set (--eval-data) as train evaluates it: its rows longest first, --eval-batch at a
// time, each padded to its longest (a multiple of --pad-multiple), so the first micro-batch is
// the largest in both B and T; sets c's eval step to that shape. Every sample read is passed to
// `sample` (may be empty). Nothing when --eval-data is not given.
std::vector<data::MicroBatch> apply_eval_data(const DataFlags& f, const std::string& model_spec,
                                              int64_t vocab, planner::TrainConfig& c,
                                              const std::function<void(data::Sample&&)>& sample);

// "rows 81, 1,683, 1,517, 1,650" (up to four, then the count).
std::string rows_text(const std::vector<int64_t>& rows);

}  // namespace loraplan::cli
