#pragma once

#include <string>
#include <vector>

#include "loraplan/planner/model.h"
#include "loraplan/planner/tensor_layout.h"

namespace loraplan::planner {

// Hugging Face config.json -> description. Defaults follow each family's transformers config
// class. Throws InputError "path:line: field ..." on malformed JSON or a missing/mistyped field.
ModelDesc read_config_json(const std::string& path);
ModelDesc parse_config_json(const std::string& text, const std::string& where);

// safetensors: reads only the 8-byte header length and the JSON header of each file. Checks
// that every byte range lies inside the file, that ranges do not overlap and that
// dtype x shape equals the range length. `path` is a .safetensors file or a
// model.safetensors.index.json (every shard it names is read).
std::vector<TensorRecord> read_safetensors_tensors(const std::string& path);

// ONNX: initializer names, shapes and element types, including initializers whose data is
// external. Streams the protobuf: weight bytes are skipped, never loaded.
std::vector<TensorRecord> read_onnx_tensors(const std::string& path);

}  // namespace loraplan::planner
