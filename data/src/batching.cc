#include "loraplan/data/batching.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <tuple>

#include "loraplan/planner/errors.h"

namespace loraplan::data {

namespace {

int64_t round_up(int64_t n, int64_t k) { return k <= 1 ? n : (n + k - 1) / k * k; }

// The padded length of a micro-batch whose longest sequence is `longest`: a multiple of K, but
// never past T (a T that is not a multiple of K is itself the cap).
int64_t padded_length(int64_t longest, const BatchingOptions& o) {
  return std::min(round_up(longest, o.pad_multiple), std::max(o.seq_len, longest));
}

std::vector<int64_t> shuffled_rows(size_t n, uint64_t seed) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

MicroBatch batch_of(std::vector<int64_t> rows, std::span<const int64_t> lengths,
                    const BatchingOptions& o, bool pad_to_seq_len) {
  MicroBatch b;
  int64_t longest = 0;
  for (const int64_t r : rows) {
    b.tokens += lengths[r];
    longest = std::max(longest, lengths[r]);
  }
  b.sequences = static_cast<int64_t>(rows.size());
  b.seq_len = pad_to_seq_len ? o.seq_len : padded_length(longest, o);
  b.rows = std::move(rows);
  return b;
}

// B rows at a time, in `order`.
std::vector<MicroBatch> in_groups(const std::vector<int64_t>& order,
                                  std::span<const int64_t> lengths, const BatchingOptions& o,
                                  bool pad_to_seq_len) {
  std::vector<MicroBatch> out;
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(o.micro_batch)) {
    const size_t end = std::min(order.size(), i + static_cast<size_t>(o.micro_batch));
    out.push_back(batch_of({order.begin() + static_cast<std::ptrdiff_t>(i),
                            order.begin() + static_cast<std::ptrdiff_t>(end)},
                           lengths, o, pad_to_seq_len));
  }
  return out;
}

// Sorted by length, cut where one more sequence would pass N padded tokens; then the batches'
// order is shuffled so the epoch does not run short to long.
std::vector<MicroBatch> by_token_budget(const std::vector<int64_t>& order,
                                        std::span<const int64_t> lengths,
                                        const BatchingOptions& o) {
  std::vector<int64_t> sorted = order;  // the shuffle breaks ties between equal lengths
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
  std::vector<MicroBatch> out;
  std::vector<int64_t> rows;
  int64_t longest = 0;
  for (const int64_t r : sorted) {
    const int64_t t = padded_length(std::max(longest, lengths[r]), o);
    if (!rows.empty() && t * static_cast<int64_t>(rows.size() + 1) > o.batching.token_budget) {
      out.push_back(batch_of(std::move(rows), lengths, o, false));
      rows.clear();
      longest = 0;
    }
    rows.push_back(r);
    longest = std::max(longest, lengths[r]);
  }
  if (!rows.empty()) out.push_back(batch_of(std::move(rows), lengths, o, false));
  std::mt19937_64 rng(o.seed ^ 0x9E3779B97F4A7C15ull);
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

// Documents in `order` laid into rows of T; one that does not fit what is left starts a new row.
std::vector<MicroBatch> packed(const std::vector<int64_t>& order, std::span<const int64_t> lengths,
                               const BatchingOptions& o) {
  struct Row {
    std::vector<int64_t> docs;
    int64_t tokens = 0;
  };
  std::vector<Row> rows;
  for (const int64_t d : order) {
    if (rows.empty() || rows.back().tokens + lengths[d] > o.seq_len) rows.emplace_back();
    rows.back().docs.push_back(d);
    rows.back().tokens += lengths[d];
  }
  std::vector<MicroBatch> out;
  for (size_t i = 0; i < rows.size(); i += static_cast<size_t>(o.micro_batch)) {
    MicroBatch b;
    const size_t end = std::min(rows.size(), i + static_cast<size_t>(o.micro_batch));
    for (size_t k = i; k < end; ++k) {
      b.rows.insert(b.rows.end(), rows[k].docs.begin(), rows[k].docs.end());
      b.documents.push_back(static_cast<int64_t>(rows[k].docs.size()));
      b.tokens += rows[k].tokens;
    }
    b.sequences = static_cast<int64_t>(end - i);
    b.seq_len = o.seq_len;
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace

Batching Batching::parse(const std::string& text, const std::string& flag) {
  if (text == "fixed") return {BatchingKind::kFixed, 0};
  if (text == "longest") return {BatchingKind::kLongest, 0};
  if (text == "packed") return {BatchingKind::kPacked, 0};
  if (text.rfind("tokens:", 0) == 0) {
    const std::string n = text.substr(7);
    int64_t v = 0;
    bool digits = !n.empty() && n.size() <= 12;
    for (const char c : n) digits = digits && c >= '0' && c <= '9';
    if (digits) v = std::stoll(n);
    if (!digits || v <= 0) {
      throw InputError(flag + ": tokens:N needs a positive number of tokens, got \"" + text + "\"");
    }
    return {BatchingKind::kTokens, v};
  }
  throw InputError(flag + ": must be fixed, longest, tokens:N or packed, got \"" + text + "\"");
}

std::string Batching::name() const {
  switch (kind) {
    case BatchingKind::kFixed:
      return "fixed";
    case BatchingKind::kLongest:
      return "longest";
    case BatchingKind::kTokens:
      return "tokens:" + std::to_string(token_budget);
    case BatchingKind::kPacked:
      return "packed";
  }
  return "?";
}

std::vector<MicroBatch> make_batches(std::span<const int64_t> lengths, const BatchingOptions& o) {
  if (o.seq_len <= 0 || o.micro_batch <= 0 || o.pad_multiple <= 0) {
    throw std::invalid_argument(
        "make_batches: seq_len, micro_batch and pad_multiple must be positive");
  }
  const std::vector<int64_t> order = shuffled_rows(lengths.size(), o.seed);
  std::vector<MicroBatch> out;
  switch (o.batching.kind) {
    case BatchingKind::kFixed:
      out = in_groups(order, lengths, o, true);
      break;
    case BatchingKind::kLongest:
      out = in_groups(order, lengths, o, false);
      break;
    case BatchingKind::kTokens: {
      if (padded_length(1, o) > o.batching.token_budget) {
        throw InputError("--batching " + o.batching.name() +
                         ": a budget under one padded sequence (" +
                         std::to_string(padded_length(1, o)) + " tokens)");
      }
      out = by_token_budget(order, lengths, o);
      break;
    }
    case BatchingKind::kPacked:
      out = packed(order, lengths, o);
      break;
  }
  if (o.longest_first && !out.empty()) {
    std::rotate(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(largest_batch(out)),
                out.begin() + static_cast<std::ptrdiff_t>(largest_batch(out)) + 1);
  }
  return out;
}

size_t largest_batch(const std::vector<MicroBatch>& batches) {
  size_t best = 0;
  for (size_t i = 1; i < batches.size(); ++i) {
    const MicroBatch& a = batches[i];
    const MicroBatch& b = batches[best];
    if (std::tuple(a.padded(), a.seq_len, a.tokens) > std::tuple(b.padded(), b.seq_len, b.tokens)) {
      best = i;
    }
  }
  return best;
}

std::vector<BatchShape> shape_frontier(const std::vector<MicroBatch>& batches) {
  // The widest B at each T, then keep a shape only when no longer T has at least its B.
  std::map<int64_t, BatchShape> widest;  // by T
  for (size_t i = 0; i < batches.size(); ++i) {
    const MicroBatch& b = batches[i];
    auto [it, inserted] = widest.try_emplace(b.seq_len, BatchShape{b.sequences, b.seq_len, i});
    if (!inserted && b.sequences > it->second.sequences) it->second = {b.sequences, b.seq_len, i};
  }
  std::vector<BatchShape> out;
  int64_t best_b = 0;
  for (auto it = widest.rbegin(); it != widest.rend(); ++it) {
    if (it->second.sequences > best_b) {
      out.push_back(it->second);
      best_b = it->second.sequences;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace loraplan::data
