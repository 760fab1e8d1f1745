// The loraplan command line in-process, with the executor module the loraplan binary loads.
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include "../cli/run_cli.h"

namespace loraplan::cli::testing {

inline void use_executor_module() {
  setenv("LORAPLAN_EXECUTOR_MODULE", LORAPLAN_BINARY_DIR "/cli/libloraplan_torch.so", 1);
}

inline Result run_with_executor(const std::vector<std::string>& args) {
  use_executor_module();
  return run_cli(args);
}

}  // namespace loraplan::cli::testing
