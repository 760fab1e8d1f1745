// Tokens per second of loraplan's tokenizer on one thread, over the rows of a JSONL file
// ({"text": ...}); the load is not timed. bench/tokenizer_speed.sh runs it beside Hugging Face's
// tokenizers under node on the same rows.
// Usage: tokenizer_speed TOKENIZER DATA.jsonl [REPEATS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "loraplan/data/text_rows.h"
#include "loraplan/data/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER DATA.jsonl [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  const loraplan::data::Tokenizer tok = loraplan::data::Tokenizer::load(argv[1]);
  std::vector<std::string> rows;
  size_t bytes = 0;
  loraplan::data::for_each_text_row(argv[2], "text", [&](const loraplan::data::TextRow& r) {
    rows.emplace_back(r.text);
    bytes += r.text.size();
  });
  double best = 1e30;
  size_t tokens = 0;
  for (int k = 0; k < repeats; ++k) {
    tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& r : rows) tokens += tok.encode(r).size();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::printf("loraplan: %zu rows, %zu bytes, %zu tokens, best of %d: %.3f s, %.0f tokens/s\n",
              rows.size(), bytes, tokens, repeats, best, tokens / best);
  return 0;
}
