#include "batches.h"

#include <algorithm>
#include <random>
#include <stdexcept>

namespace loraplan::executor {

using torch::Tensor;

namespace {

Example make_example(const std::vector<int64_t>& tokens, int64_t T) {
  Example e{std::vector<int64_t>(T, 0), std::vector<int64_t>(T, -100)};
  const int64_t n = std::min<int64_t>(T, static_cast<int64_t>(tokens.size()));
  for (int64_t t = 0; t < n; ++t) e.ids[t] = tokens[t];
  for (int64_t t = 0; t + 1 < n; ++t) e.labels[t] = tokens[t + 1];
  return e;
}

// A dataset's sequence at its own length: labels shifted to the next token's.
Example data_example(const DataSequence& s) {
  const size_t n = s.ids.size();
  Example e{std::vector<int64_t>(s.ids.begin(), s.ids.end()), std::vector<int64_t>(n, -100)};
  for (size_t t = 0; t + 1 < n; ++t) e.labels[t] = s.labels[t + 1];
  return e;
}

// A micro-batch's sequences as lists of its rows: one row each, or a packed sequence's documents.
std::vector<std::vector<int64_t>> sequences_of(const DataBatch& batch) {
  std::vector<std::vector<int64_t>> out;
  if (batch.documents.empty()) {
    for (const int64_t row : batch.rows) out.push_back({row});
    return out;
  }
  auto at = batch.rows.begin();
  for (const int64_t n : batch.documents) {
    out.emplace_back(at, at + n);
    at += n;
  }
  return out;
}

}  // namespace

// The examples of a dataset's sequences, once its micro-batches are checked: each at most
// `max_rows` rows (0: any) of at most `max_len` tokens, naming rows that exist, of ids below the
// vocabulary. `what` names them in errors ("an eval micro-batch").
std::vector<Example> data_examples(const std::vector<DataSequence>& sequences,
                                   const std::vector<DataBatch>& batches, int64_t max_rows,
                                   int64_t max_len, int64_t vocab, const std::string& what) {
  std::vector<Example> out;
  for (const DataSequence& s : sequences) out.push_back(data_example(s));
  for (const DataBatch& b : batches) {
    const int64_t rows = b.sequences();
    if (rows == 0 || (max_rows > 0 && rows > max_rows) || b.seq_len <= 0 || b.seq_len > max_len) {
      throw std::invalid_argument(what + " of " + std::to_string(rows) + " x " +
                                  std::to_string(b.seq_len) + " is beyond " +
                                  (max_rows > 0 ? std::to_string(max_rows) : std::string("B")) +
                                  " x " + std::to_string(max_len));
    }
    for (const int64_t row : b.rows) {
      if (row < 0 || static_cast<size_t>(row) >= out.size())
        throw std::invalid_argument(what + " names row " + std::to_string(row));
      for (const int64_t id : out[row].ids) {
        if (id < 0 || id >= vocab)
          throw std::invalid_argument("row " + std::to_string(row) + " holds token id " +
                                      std::to_string(id) + ", beyond the model's vocabulary");
      }
    }
    size_t at = 0;  // a packed sequence's documents fill at most its T
    for (const int64_t n : b.documents) {
      int64_t used = 0;
      for (int64_t k = 0; k < n && at < b.rows.size(); ++k) {
        used += static_cast<int64_t>(out[b.rows[at++]].ids.size());
      }
      if (n <= 0 || used > b.seq_len) {
        throw std::invalid_argument(what + " packs " + std::to_string(used) + " tokens of " +
                                    std::to_string(n) + " documents into " +
                                    std::to_string(b.seq_len));
      }
    }
    if (!b.documents.empty() && at != b.rows.size())
      throw std::invalid_argument(what + " packs a number of documents other than its rows");
  }
  return out;
}

// Where each document of a packed micro-batch starts in its sequence; empty when not packed.
Documents documents_of(const std::vector<Example>& data, const DataBatch& batch) {
  Documents d;
  if (batch.documents.empty()) return d;
  for (const std::vector<int64_t>& docs : sequences_of(batch)) {
    std::vector<int64_t>& starts = d.starts.emplace_back();
    int64_t t = 0;
    for (const int64_t row : docs) {
      starts.push_back(t);
      t += static_cast<int64_t>(data[row].ids.size());
    }
  }
  return d;
}

// The tokens of a micro-batch that take loss (a label other than -100 within its T).
int64_t label_count(const std::vector<Example>& data, const DataBatch& batch) {
  int64_t n = 0;
  for (const int64_t row : batch.rows) {
    const std::vector<int64_t>& l = data[row].labels;
    n += std::count_if(l.begin(), l.begin() + std::min<int64_t>(batch.seq_len, l.size()),
                       [](int64_t v) { return v != -100; });
  }
  return n;
}

// A micro-batch cut into pieces of at most `most` sequences, in order, each at the batch's T (a
// packed sequence keeps its documents).
std::vector<DataBatch> split(const DataBatch& batch, int64_t most) {
  const std::vector<std::vector<int64_t>> sequences = sequences_of(batch);
  std::vector<DataBatch> out;
  for (size_t i = 0; i < sequences.size(); i += static_cast<size_t>(most)) {
    DataBatch piece;
    piece.seq_len = batch.seq_len;
    for (size_t k = i; k < std::min(sequences.size(), i + static_cast<size_t>(most)); ++k) {
      piece.rows.insert(piece.rows.end(), sequences[k].begin(), sequences[k].end());
      if (!batch.documents.empty())
        piece.documents.push_back(static_cast<int64_t>(sequences[k].size()));
    }
    out.push_back(std::move(piece));
  }
  return out;
}

// A micro-batch of dataset rows: [B, T] ids (0 past each row's end) or labels (-100 there). A
// packed sequence lays its documents end to end, each with its own shifted labels, so the last
// token of one document does not learn the first of the next.
Tensor data_batch_tensor(const std::vector<Example>& data, const DataBatch& batch, bool labels,
                         c10::Device device) {
  const int64_t B = batch.sequences(), T = batch.seq_len;
  Tensor t = torch::full({B, T}, labels ? -100 : 0, torch::kLong);
  int64_t* p = t.data_ptr<int64_t>();
  const std::vector<std::vector<int64_t>> sequences = sequences_of(batch);
  for (int64_t b = 0; b < B; ++b) {
    int64_t at = 0;
    for (const int64_t row : sequences[b]) {
      const std::vector<int64_t>& v = labels ? data[row].labels : data[row].ids;
      const int64_t n = std::min<int64_t>(T - at, static_cast<int64_t>(v.size()));
      std::copy_n(v.begin(), n, p + b * T + at);
      at += n;
    }
  }
  return t.to(device);  // the same tensor on the CPU
}

// A small fixed set of random sequences, repeated: a model can learn it, so the loss falls.
std::vector<Example> synthetic(int64_t vocab, int64_t T, uint64_t seed) {
  std::mt19937_64 rng(seed + 1);
  std::uniform_int_distribution<int64_t> token(0, vocab - 1);
  std::vector<Example> out;
  for (int i = 0; i < 16; ++i) {
    std::vector<int64_t> tokens(T + 1);
    for (int64_t& t : tokens) t = token(rng);
    out.push_back(make_example(tokens, T));
  }
  return out;
}

}  // namespace loraplan::executor
