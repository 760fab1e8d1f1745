// model.safetensors.index.json. The input is the index; beside it lie the two valid shards of a
// tiny model that the seeds' indexes name, so the fuzzer reaches the checks of tensors against
// their shards as well as the JSON.
#include "fuzz_support.h"
#include "loraplan/planner/readers.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  loraplan::fuzz::write_shards(
      loraplan::fuzz::scratch_dir(),
      loraplan::fuzz::tiny_tensors("tiny-llama", loraplan::planner::DType::kBF16));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      loraplan::fuzz::write_scratch("model.safetensors.index.json", data, size);
  loraplan::fuzz::expect_input_errors_only(
      [&] { loraplan::planner::read_safetensors_tensors(path); });
  return 0;
}
