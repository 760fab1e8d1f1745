// A tokenizer.json (`--tokenizer`): read, then encode and decode texts with it. Anything the
// reader accepts must tokenize any text without crashing; a bad file is an InputError.
#include <string>

#include "fuzz_support.h"
#include "loraplan/data/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  loraplan::fuzz::expect_input_errors_only([&] {
    const auto tok = loraplan::data::Tokenizer::parse(text, "tokenizer.json");
    // The input's own bytes as a text too: invalid UTF-8, added tokens' contents, patterns.
    for (const std::string& sample :
         {std::string("Hello world <s> x\n\n  1234 \xC3\xA9 \xF0\x9F\x98\x80 \xFF"),
          text.substr(0, 512)}) {
      const auto ids = tok.encode(sample);
      (void)tok.decode(ids, false);
      (void)tok.decode(ids, true);
    }
    (void)tok.vocab_size();
  });
  return 0;
}
