// Runs the loraplan command line in-process and keeps what it printed.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "app.h"

namespace loraplan::cli::testing {

struct Result {
  int code;
  std::string out, err;
};

inline Result run_cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = run(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace loraplan::cli::testing
