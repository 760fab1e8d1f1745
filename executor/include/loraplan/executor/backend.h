#pragma once

#include <string>

namespace loraplan::executor {

// What the executor was built against, for --version and run reports.
struct BackendInfo {
  bool available = false;  // false when built without LibTorch
  std::string libtorch_version;  // "1.13.1"; empty when unavailable
  bool cuda_compiled = false;    // LibTorch built with CUDA
};

BackendInfo backend_info();

// Throws std::runtime_error("<what>: built without LibTorch ...") when unavailable.
void require_backend(const std::string& what);

}  // namespace loraplan::executor
