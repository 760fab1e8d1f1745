// read_onnx_tensors for a build without libonnx (LORAPLAN_WITH_ONNX=OFF).
#include "loraplan/planner/errors.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {

std::vector<TensorRecord> read_onnx_tensors(const std::string& path) {
  throw InputError(located(path, 0,
                           "this loraplan was built without ONNX support (LORAPLAN_WITH_ONNX=OFF); "
                           "rebuild with libonnx-dev, or give the config.json or .safetensors"));
}

}  // namespace loraplan::planner
