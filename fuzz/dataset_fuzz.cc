// Dataset rows (`--data`): JSONL or a JSON array of {"input_ids"[, "labels"]} rows for a model of
// 256 tokens, with no tokenizer (text rows are refused by name), with and without skipping bad
// rows.
#include <string>

#include "fuzz_support.h"
#include "loraplan/data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loraplan::fuzz::write_scratch("data.jsonl", data, size);
  for (const bool skip : {false, true}) {
    loraplan::data::DatasetOptions o;
    o.vocab = 256;
    o.seq_len = 64;
    o.skip_bad_rows = skip;
    loraplan::fuzz::expect_input_errors_only([&] {
      loraplan::data::for_each_sample(path, nullptr, o, [](loraplan::data::Sample&& s) {
        if (s.ids.size() != s.labels.size() || s.ids.size() > 64) __builtin_trap();
      });
    });
  }
  return 0;
}
