// A .safetensors file: 8-byte header length, JSON header, data. The reader takes a path, so the
// input is written to a scratch file first.
#include "fuzz_support.h"
#include "loraplan/planner/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loraplan::fuzz::write_scratch("model.safetensors", data, size);
  loraplan::fuzz::expect_input_errors_only(
      [&] { loraplan::planner::read_safetensors_tensors(path); });
  return 0;
}
