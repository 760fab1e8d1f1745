#pragma once

#include "loraplan/executor/backend.h"

namespace loraplan::executor {

// Builds the model on the configured device, trains it as the request says, measures memory per
// phase (memory_meter.h: the tracking allocator on the CPU, the caching allocator's counters on
// CUDA) and writes the adapter. Reads micro-batches of the configured size and length.
RunReport run_training(const TrainRequest& request);

}  // namespace loraplan::executor
