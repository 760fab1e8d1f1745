// The LibTorch executor module (libloraplan_torch.so), loaded by the CLI on first use.
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <stdexcept>

#include "loraplan/executor/backend.h"
#include "trainer.h"

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

  RunReport train(const TrainRequest& request) override {
    try {
      return run_training(request);
    } catch (const c10::Error& e) {
      // One line, without LibTorch's C++ backtrace.
      const std::string what = e.what_without_backtrace();
      throw std::runtime_error("training failed: " + what.substr(0, what.find('\n')));
    }
  }
};

}  // namespace
}  // namespace loraplan::executor

extern "C" __attribute__((visibility("default"))) loraplan::executor::Backend*
loraplan_create_torch_backend() {
  return new loraplan::executor::TorchBackend();
}
