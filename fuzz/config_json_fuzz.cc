// config.json: the text is parsed as transformers would read it.
#include <string>

#include "fuzz_support.h"
#include "loraplan/planner/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  loraplan::fuzz::expect_input_errors_only(
      [&] { loraplan::planner::parse_config_json(text, "config.json"); });
  return 0;
}
