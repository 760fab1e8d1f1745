// An .onnx model. The input is written as model.onnx; beside it lies model.onnx.data, the
// external data of the seed written with external weights, so external locations, offsets and
// lengths are checked against a real file.
#include "fixtures/onnx_writer.h"
#include "fuzz_support.h"
#include "loraplan/planner/readers.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string model = loraplan::fuzz::scratch_dir() + "/model.onnx";
  loraplan::testing::write_onnx_model(
      model, loraplan::fuzz::tiny_tensors("tiny-llama", loraplan::planner::DType::kBF16),
      {.external_data = true});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loraplan::fuzz::write_scratch("model.onnx", data, size);
  loraplan::fuzz::expect_input_errors_only([&] { loraplan::planner::read_onnx_tensors(path); });
  return 0;
}
