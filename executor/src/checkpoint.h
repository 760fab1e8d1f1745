#pragma once
// What train writes to disk: the PEFT adapter, and checkpoints that let a run continue after a
// kill as if it had never stopped (docs/training.md).
//
// A checkpoint is a folder CHECKPOINT_DIR/step-NNNNNN, written whole under a temporary name and
// renamed into place:
//   adapter_model.safetensors, adapter_config.json   the adapter at that step (PEFT loads it)
//   training_state.safetensors                       optimizer state (fp32 or 8-bit codes and
//                                                    absmax), the random generators' states
//   trainer_state.json                               steps done, data cursor, the run's identity,
//                                                    the steps measured so far, and each file's
//                                                    size and XXH3-128 (written last)

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "loraplan/executor/backend.h"
#include "model.h"
#include "optimizer.h"

namespace loraplan::executor {

// Writes the adapter in PEFT's format into `dir` (created): adapter_model.safetensors (fp32, names
// without the adapter name) and adapter_config.json, each under a temporary name then renamed.
// Returns the files written.
std::vector<std::string> save_adapter(const Model& model, const TrainRequest& r,
                                      const std::string& dir);

// Where a run stands between optimizer steps.
struct TrainerState {
  int64_t step = 0;                // optimizer steps done
  uint64_t cursor = 0;             // micro-batches (a dataset's) or sequences (synthetic) consumed
  std::vector<StepMeasure> steps;  // measured so far, by this process and the ones before
  int64_t split_to = 0;            // micro-batches split after an out-of-memory (0: whole)
};

// Writes checkpoint `state.step` into r.checkpoint_dir and removes the oldest beyond r.keep.
// Allocates no tracked memory (the tensors are written from where they are on the CPU). Returns
// the folder.
std::string write_checkpoint(const Model& model, const Optimizer& optimizer,
                             const TrainerState& state, const TrainRequest& r, c10::Device device);

// Loads r.resume_from (a folder write_checkpoint made; the CLI has checked its files and
// identity) into the model's adapters, the optimizer and the random generators.
TrainerState read_checkpoint(const Model& model, Optimizer& optimizer, const TrainRequest& r,
                             c10::Device device);

// The default generators' states (CPU, and the device's when it is a GPU) as bytes, without
// allocating tensors on the CPU; and back.
std::vector<uint8_t> generator_state(c10::Device device);
void set_generator_state(const std::vector<uint8_t>& state, c10::Device device);

}  // namespace loraplan::executor
