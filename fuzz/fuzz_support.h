#pragma once
// What the harnesses share: a scratch directory per fuzzing process, the fuzz input written as a
// file for the readers that take a path, and the tiny model whose files the seeds and the
// harnesses' fixed companion files (shards, external ONNX data) are made of.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/tensor_layout.h"

namespace loraplan::fuzz {

// Runs `parse`; an InputError is the reader rejecting bad input, a correct outcome. Anything else
// (another exception, a crash, a sanitizer report) escapes to libFuzzer and is a finding.
template <class Parse>
void expect_input_errors_only(Parse&& parse) {
  try {
    parse();
  } catch (const InputError&) {
  }
}

// This process's scratch directory (mkdtemp under /tmp), removed at exit.
const std::string& scratch_dir();

// Writes bytes to scratch_dir()/name, replacing the file; returns its path.
std::string write_scratch(const std::string& name, const uint8_t* data, size_t size);
void write_file(const std::string& path, const std::string& bytes);

// Points the profile lookup (LORAPLAN_PROFILES) at the source tree's profiles/.
void use_source_profiles();

// A small model of the given profile (tiny-llama, tiny-gemma2, ...): the profile's config.json
// with every dimension shrunk so that its weight files are a few KiB, as tensor records.
std::vector<planner::TensorRecord> tiny_tensors(const std::string& profile, planner::DType dtype);

// A valid safetensors file (header and zeroed data) holding `tensors`, as bytes.
std::string safetensors_bytes(const std::vector<planner::TensorRecord>& tensors);

// Writes `tensors` as two shards model-0000i-of-00002.safetensors in `dir`; returns the text of
// the model.safetensors.index.json that names them.
std::string write_shards(const std::string& dir, const std::vector<planner::TensorRecord>& tensors);

}  // namespace loraplan::fuzz
