#pragma once

#include <string>

namespace loraplan::executor {

// What the executor was built against, for --version and run reports.
struct BackendInfo {
  bool available = false;        // false when the LibTorch module is not built or not found
  std::string libtorch_version;  // "1.13.0"; empty when unavailable
  bool cuda_compiled = false;    // LibTorch built with CUDA
  std::string module_path;       // the module that was loaded
};

// The executor behind an interface: the LibTorch implementation lives in a module
// (libloraplan_torch.so) loaded on first use, so planner commands never pay LibTorch's start-up
// (~0.7 s and ~160 MB here); tests can provide a fake.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendInfo info() const = 0;
};

// The LibTorch backend, loaded on first call; nullptr when the module is absent. The module is
// looked for in $LORAPLAN_EXECUTOR_MODULE, beside the loraplan binary, then in
// <prefix>/lib/loraplan/.
Backend* torch_backend();

BackendInfo backend_info();

// Throws std::runtime_error("<what>: built without LibTorch ...") when the backend is absent.
Backend& require_backend(const std::string& what);

}  // namespace loraplan::executor

// The module's one exported symbol.
extern "C" loraplan::executor::Backend* loraplan_create_torch_backend();
