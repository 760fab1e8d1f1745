// Executor stub, built when LibTorch is not found.
#include <stdexcept>

#include "loraplan/executor/backend.h"

namespace loraplan::executor {

BackendInfo backend_info() { return {}; }

void require_backend(const std::string& what) {
  throw std::runtime_error(what +
                           ": built without LibTorch; install libtorch-dev "
                           "(scripts/install-deps.sh) and rebuild");
}

}  // namespace loraplan::executor
