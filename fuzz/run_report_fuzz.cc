// report.json, the run report `loraplan verify` reads.
#include <string>

#include "fuzz_support.h"
#include "loraplan/reports/run_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  loraplan::fuzz::expect_input_errors_only(
      [&] { loraplan::reports::parse_run_report(text, "report.json"); });
  return 0;
}
