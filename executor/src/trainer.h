#pragma once

#include "loraplan/executor/backend.h"

namespace loraplan::executor {

// Builds the model, trains it as the request says, measures memory per phase with the tracking
// allocator and writes the adapter. Reads micro-batches of the configured size and length.
RunReport run_training(const TrainRequest& request);

}  // namespace loraplan::executor
