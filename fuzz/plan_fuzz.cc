// plan.json, read back and checked field by field; its model reference resolves against the
// source tree's profiles (the seeds name tiny-llama).
#include "fuzz_support.h"
#include "loraplan/planner/plan_file.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  loraplan::fuzz::use_source_profiles();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loraplan::fuzz::write_scratch("plan.json", data, size);
  loraplan::fuzz::expect_input_errors_only([&] { loraplan::planner::read_plan(path); });
  return 0;
}
