// The LibTorch executor module (libloraplan_torch.so), loaded by the CLI on first use.
#include <torch/version.h>

#include "loraplan/executor/backend.h"

namespace loraplan::executor {
namespace {

class TorchBackend final : public Backend {
 public:
  BackendInfo info() const override {
    BackendInfo info;
    info.available = true;
    info.libtorch_version = TORCH_VERSION;
#ifdef LORAPLAN_TORCH_CUDA
    info.cuda_compiled = true;
#endif
    return info;
  }
};

}  // namespace
}  // namespace loraplan::executor

extern "C" __attribute__((visibility("default"))) loraplan::executor::Backend*
loraplan_create_torch_backend() {
  return new loraplan::executor::TorchBackend();
}
