#pragma once

#include <string>
#include <vector>

#include "loraplan/planner/model.h"
#include "loraplan/planner/tensor_layout.h"

namespace loraplan::planner {

// Where model and GPU profiles live: $LORAPLAN_PROFILES if set, else the source tree's profiles/.
std::string profile_dir();

// Names of the profiles in profile_dir()/<kind> ("models" or "gpus"), sorted.
std::vector<std::string> profile_names(const std::string& kind);

// The (up to) three candidates closest to `name` by edit distance, for "did you mean" lists.
std::vector<std::string> closest_names(const std::string& name,
                                       std::vector<std::string> candidates);

// Resolves what a user passes to --model: a profile name ("phi-4-mini-instruct"), a
// config.json, a model directory (config.json and/or *.safetensors), a .safetensors file, a
// model.safetensors.index.json or an .onnx file. Throws InputError for anything else.
ModelDesc load_model(const std::string& spec);

// The safetensors weights behind a --model spec (a model directory, a .safetensors file or a
// model.safetensors.index.json), with each tensor's file and byte offset: what the executor loads.
// `source` is the path as given; both fields are empty for profiles and a bare config.json. An
// ONNX model is refused (InputError): the executor does not read ONNX weights.
struct WeightFiles {
  std::string source;
  std::vector<TensorRecord> tensors;
};
WeightFiles safetensors_weights(const std::string& spec);

}  // namespace loraplan::planner
