#pragma once
// The executor's view of training data: each dataset row as ids and next-token labels, and the
// micro-batches the planner shapes (DataBatch) turned into [B, T] tensors, document layouts and
// the pieces an out-of-memory split runs.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "loraplan/executor/backend.h"
#include "model.h"

namespace loraplan::executor {

// One sequence: T input ids and T labels (the next token; -100 where there is none).
struct Example {
  std::vector<int64_t> ids, labels;
};

// The examples of a dataset's sequences, once its micro-batches are checked: each at most
// `max_rows` rows (0: any) of at most `max_len` tokens, naming rows that exist, of ids below the
// vocabulary. `what` names them in errors ("an eval micro-batch").
std::vector<Example> data_examples(const std::vector<DataSequence>& sequences,
                                   const std::vector<DataBatch>& batches, int64_t max_rows,
                                   int64_t max_len, int64_t vocab, const std::string& what);

// Where each document of a packed micro-batch starts in its sequence; empty when not packed.
Documents documents_of(const std::vector<Example>& data, const DataBatch& batch);

// The tokens of a micro-batch that take loss (a label other than -100 within its T).
int64_t label_count(const std::vector<Example>& data, const DataBatch& batch);

// A micro-batch cut into pieces of at most `most` sequences, in order, each at the batch's T (a
// packed sequence keeps its documents).
std::vector<DataBatch> split(const DataBatch& batch, int64_t most);

// A micro-batch of dataset rows: [B, T] ids (0 past each row's end) or labels (-100 there). A
// packed sequence lays its documents end to end, each with its own shifted labels, so the last
// token of one document does not learn the first of the next.
torch::Tensor data_batch_tensor(const std::vector<Example>& data, const DataBatch& batch,
                                bool labels, c10::Device device);

// A small fixed set of random sequences, repeated: a model can learn it, so the loss falls.
std::vector<Example> synthetic(int64_t vocab, int64_t T, uint64_t seed);

}  // namespace loraplan::executor
