// --gpu by the names people type, and budgets and margins that mean what they say.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loraplan/planner/model_loader.h"
#include "run_cli.h"

namespace loraplan::cli {
namespace {

using nlohmann::json;
using testing::Result;
using testing::run_cli;

// The GPU `estimate --gpu SPEC` resolves to, or "error: <message>" with exit 2.
std::string gpu_of(const std::string& spec) {
  const Result r =
      run_cli({"estimate", "--model", "tiny-llama", "--gpu", spec, "--format", "json"});
  if (r.code == 2) return "error: " + r.err;
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out)["gpu"].get<std::string>();
}

std::string error(const std::string& message) {
  return "error: loraplan: error: " + message + "\n";
}

TEST(GpuNames, SpelledAsPeopleTypeThem) {
  EXPECT_EQ(gpu_of("rtx-4090"), "rtx-4090");
  EXPECT_EQ(gpu_of("RTX 4090"), "rtx-4090");
  EXPECT_EQ(gpu_of("rtx_4090"), "rtx-4090");
  EXPECT_EQ(gpu_of(" GeForce RTX 4090 "), "rtx-4090");
  EXPECT_EQ(gpu_of("H200"), "h200");
  EXPECT_EQ(gpu_of("rtx-4060-ti"), "rtx-4060-ti-16gb");  // the start of one name
  EXPECT_EQ(gpu_of("4060 Ti"), "rtx-4060-ti-16gb");      // its words
  EXPECT_EQ(gpu_of("3060 laptop"), "rtx-3060-laptop-6gb");
  EXPECT_EQ(gpu_of("Tesla T4"), "t4");
  EXPECT_EQ(gpu_of("16GB"), "16GB");  // a size, not rtx-4060-ti-16gb
}

TEST(GpuNames, SeveralMatchesAreListed) {
  EXPECT_EQ(gpu_of("a100"), error("--gpu: \"a100\" matches a100-40gb, a100-80gb"));
  EXPECT_EQ(gpu_of("H100"), error("--gpu: \"H100\" matches h100-pcie, h100-sxm"));
  EXPECT_EQ(gpu_of("rtx 3060"),
            error("--gpu: \"rtx 3060\" matches rtx-3060-12gb, rtx-3060-laptop-6gb"));
}

TEST(GpuNames, ABareNumberIsNeitherCardNorSize) {
  EXPECT_EQ(gpu_of("4090"),
            error("--gpu: \"4090\" is not a GPU profile or a size; did you mean rtx-4090?"));
  EXPECT_EQ(gpu_of("3060"), error("--gpu: \"3060\" is not a GPU profile or a size; did you mean "
                                  "rtx-3060-12gb or rtx-3060-laptop-6gb?"));
  EXPECT_EQ(gpu_of("24"), error("--gpu: \"24\" is not a size (did you mean 24GB?)"));
  EXPECT_EQ(gpu_of("1.5"), error("--gpu: \"1.5\" is not a size (did you mean 1.5GB?)"));
  EXPECT_EQ(gpu_of("rtx-9999"), error("--gpu: unknown GPU \"rtx-9999\"; known: rtx-3090, rtx-4090, "
                                      "rtx-5090, ... (see loraplan profiles)"));
}

TEST(GpuNames, ProfilesListsEveryName) {
  const Result r = run_cli({"profiles", "--kind", "gpus"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("GPUs (--gpu NAME in any case, or the start of one name: --gpu "
                        "rtx-4060-ti; or a size with "
                        "its unit:\n--gpu 6GB means a 6 GB card as sold, 6144 MiB)\n",
                        0),
            0u)
      << r.out;
  const std::vector<std::string> names = planner::profile_names("gpus");
  ASSERT_EQ(names.size(), 24u);
  for (const std::string& name : names)
    EXPECT_NE(r.out.find("\n  " + name + " "), std::string::npos) << name;
}

TEST(Budgets, ABudgetAboveTheGpuIsRefused) {
  Result r =
      run_cli({"estimate", "--model", "tiny-llama", "--gpu", "rtx-4090", "--budget", "80GiB"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "loraplan: error: --budget: 80GiB is more than the rtx-4090's 23.99 GiB; give at most "
            "the GPU's "
            "memory or a larger --gpu\n");
  r = run_cli({"plan", "--model", "tiny-llama", "--budget", "8GB"});  // the default --gpu 6GB
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(
      r.err,
      "loraplan: error: --budget: 8GB is more than the 6GB GPU's 6.00 GiB; give at most the GPU's "
      "memory or a larger --gpu\n");
  // Up to the card's memory is fine, and the CPU has no card.
  r = run_cli({"estimate", "--model", "tiny-llama", "--gpu", "rtx-4090", "--budget", "20GiB",
               "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["budget_bytes"], int64_t{20} << 30);
  r = run_cli({"estimate", "--model", "tiny-llama", "--device", "cpu", "--compute-dtype", "fp32",
               "--budget", "80GiB"});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(Margins, ZeroMeansNoMargin) {
  for (const char* zero : {"0", "0%", "0MiB", "0.0"}) {
    const Result r =
        run_cli({"plan", "--model", "tiny-llama", "--device", "cpu", "--compute-dtype", "fp32",
                 "--budget", "3MiB", "--seq-len", "64", "--margin", zero, "--format", "json"});
    ASSERT_EQ(r.code, 0) << zero << ": " << r.err;
    const json hw = json::parse(r.out)["hardware"];
    EXPECT_EQ(hw["margin_bytes"], 0) << zero;
    EXPECT_EQ(hw["limit_bytes"], 3 << 20) << zero;
  }
  const Result bad = run_cli({"plan", "--model", "tiny-llama", "--margin", "0XB"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(
      bad.err,
      "loraplan: error: --margin: \"0XB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)\n");
}

}  // namespace
}  // namespace loraplan::cli
