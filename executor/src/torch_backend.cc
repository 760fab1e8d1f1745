// Executor backend facts. Only the version header is included here: the heavy LibTorch headers
// stay in the few translation units that train.
#include <torch/version.h>

#include "loraplan/executor/backend.h"

namespace loraplan::executor {

BackendInfo backend_info() {
  BackendInfo info;
  info.available = true;
  info.libtorch_version = TORCH_VERSION;
#ifdef LORAPLAN_TORCH_CUDA
  info.cuda_compiled = true;
#endif
  return info;
}

void require_backend(const std::string&) {}

}  // namespace loraplan::executor
