#pragma once
// Where the model's frozen tensors come from: seeded random numbers, or a safetensors model read
// one tensor at a time (each tensor's byte range only, with pread), so that host memory while
// loading holds one tensor beyond what the model keeps.

#include <ATen/ATen.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "loraplan/planner/tensor_layout.h"

namespace loraplan::executor {

// What seeded random weights hold for a tensor: N(0, 0.02) for projections and embeddings,
// ones or zeros for norms (zeros where the norm applies 1 + w, as Gemma-2's do).
enum class Init { kNormal, kOnes, kZeros };

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The tensor with this Hugging Face name and shape, in the dtype it is stored in. Throws
  // std::invalid_argument naming the tensor and the file when it is missing or has another shape.
  virtual at::Tensor get(const std::string& name, at::IntArrayRef shape, Init init) const = 0;
  // "random (seeded)" or the path the weights were read from, for run reports.
  virtual std::string description() const = 0;
};

// Draws from LibTorch's global generator (seed it first) in the order tensors are asked for.
class RandomWeights final : public WeightSource {
 public:
  at::Tensor get(const std::string& name, at::IntArrayRef shape, Init init) const override;
  std::string description() const override { return "random (seeded)"; }
};

// Tensors as planner::read_safetensors_tensors describes them (file, dtype, shape, byte offset).
class SafetensorsWeights final : public WeightSource {
 public:
  SafetensorsWeights(std::string source, const std::vector<planner::TensorRecord>& tensors);
  at::Tensor get(const std::string& name, at::IntArrayRef shape, Init init) const override;
  std::string description() const override { return source_; }

 private:
  std::string source_;
  std::unordered_map<std::string, planner::TensorRecord> tensors_;  // by name
};

}  // namespace loraplan::executor
