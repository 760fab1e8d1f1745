#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loraplan/planner/dtype.h"
#include "loraplan/planner/model.h"

namespace loraplan::planner {

// A tensor as a weight file declares it: name, shape, element type. Readers of safetensors and
// ONNX produce these without touching the weight bytes.
struct TensorRecord {
  std::string name;            // as stored: "model.layers.0.mlp.down_proj.weight"
  std::vector<int64_t> shape;  // elements per dimension
  DType dtype = DType::kF32;
  std::string file;     // file that holds the bytes (shard, ONNX file or external data)
  uint64_t offset = 0;  // safetensors: byte offset of the data in `file`; 0 elsewhere
};

// Infers the model description from Hugging Face tensor names and shapes alone. Everything
// but the head split is determined by the shapes; where H and D cannot be told apart a note in
// the result says what was assumed. `where` names the source in error messages.
ModelDesc describe_from_tensors(const std::vector<TensorRecord>& tensors, const std::string& where);

// Checks that the tensors of a file match the description's inventory by name and shape
// (a config.json next to the weights must describe those weights). Returns the dtype most of
// the weights are stored in. Throws InputError naming the first mismatching tensor.
DType check_tensors_match(const ModelDesc& m, const std::vector<TensorRecord>& tensors,
                          const std::string& where);

}  // namespace loraplan::planner
