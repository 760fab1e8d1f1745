#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace loraplan::data {

class Tokenizer;

// What a dataset's rows hold; each row is read by its own fields.
//   {"text": ...}                      (or --field NAME): loss on every token
//   {"prompt": ..., "completion": ...}  loss on the completion only, as TRL's SFTTrainer does
//   {"input_ids": [...], "labels": [...]}  pre-tokenized; labels optional, -100 masks a token
//   {"messages": [{"role": ..., "content": ...}, ...]}  rendered by the tokenizer's chat template
//                                      (add_generation_prompt false), tokenized without the
//                                      post-processor's special tokens; loss on every token
// (The values are stored in the token cache: add new kinds at the end.)
enum class RowKind { kText, kPromptCompletion, kTokens, kMessages };

struct DatasetOptions {
  std::string field = "text";  // the text field of text rows
  bool field_given = false;    // --field was given: rows must hold it
  int64_t seq_len = 0;         // T: longer sequences are cut to their first T tokens (0: never)
  int64_t vocab = 0;           // pre-tokenized ids must be below this (0: the tokenizer's size)
  bool skip_bad_rows = false;  // skip (and count) rows that cannot be read instead of stopping
};

// One training sequence made from one row.
struct Sample {
  int64_t row = 0;   // 0-based index among the file's rows (blank lines not counted)
  int64_t line = 0;  // 1-based line of a JSONL file; 0 in a JSON array
  RowKind kind = RowKind::kText;
  std::vector<int32_t> ids;     // BOS/EOS as the tokenizer adds them, EOS appended per document
                                // (messages: exactly the rendered template's tokens)
  std::vector<int32_t> labels;  // same length; -100 where no loss is taken
  int64_t full_length = 0;      // tokens before truncation
  bool truncated() const { return full_length > static_cast<int64_t>(ids.size()); }
};

struct DatasetSummary {
  int64_t rows = 0;              // samples made
  int64_t skipped = 0;           // bad rows skipped (skip_bad_rows)
  std::string first_skipped;     // the first skipped row's error
  int64_t truncated = 0;         // samples cut to seq_len
  int64_t truncated_tokens = 0;  // tokens cut off
};

// Reads a JSONL file (or JSON array) and calls `sample` for each row, in order. `tokenizer` may be
// null when every row is pre-tokenized. Text rows get the tokenizer's special tokens and then EOS
// (when the tokenizer names one and the text does not already end with it). Throws InputError
// "path:line: ..." for a bad row unless options.skip_bad_rows.
DatasetSummary for_each_sample(const std::string& path, const Tokenizer* tokenizer,
                               const DatasetOptions& options,
                               const std::function<void(Sample&&)>& sample);

}  // namespace loraplan::data
