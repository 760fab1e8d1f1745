// Pre-tokenized training data (`train --data`): one {"input_ids": [...]} per line, for a model
// of tiny-llama's 256-token vocabulary.
#include <string>

#include "fuzz_support.h"
#include "loraplan/planner/token_lines.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kVocab = 256;
  const std::string text(reinterpret_cast<const char*>(data), size);
  loraplan::fuzz::expect_input_errors_only(
      [&] { loraplan::planner::parse_token_lines(text, "data.jsonl", kVocab); });
  return 0;
}
