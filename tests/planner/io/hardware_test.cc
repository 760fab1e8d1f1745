#include "loraplan/planner/hardware.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"

namespace loraplan::planner {
namespace {

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kTiB = int64_t{1} << 40;

// The message of the InputError that `fn` throws, or "<no error>".
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no error>";
}

std::string size_error(const std::string& text) {
  return error_of([&] { parse_size(text, "--gpu"); });
}

// A scratch directory under the test temp dir, removed with the fixture.
class ScratchDir : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("hardware_test_") + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST(ParseSize, EveryUnitSpellingIsBinary) {
  struct Case {
    std::string unit;
    int64_t bytes;  // bytes per unit
  };
  const std::vector<Case> cases = {
      {"", 1},      {"B", 1},      {"b", 1},      {"K", kKiB},   {"k", kKiB}, {"KB", kKiB},
      {"kb", kKiB}, {"KiB", kKiB}, {"KIB", kKiB}, {"kib", kKiB}, {"M", kMiB}, {"m", kMiB},
      {"MB", kMiB}, {"Mb", kMiB},  {"MiB", kMiB}, {"mib", kMiB}, {"G", kGiB}, {"g", kGiB},
      {"GB", kGiB}, {"gB", kGiB},  {"GiB", kGiB}, {"GIB", kGiB}, {"T", kTiB}, {"t", kTiB},
      {"TB", kTiB}, {"tb", kTiB},  {"TiB", kTiB}, {"tIb", kTiB},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse_size("3" + c.unit, "--gpu"), 3 * c.bytes) << "unit \"" << c.unit << "\"";
  }
}

TEST(ParseSize, GpuSizesAsSold) {
  EXPECT_EQ(parse_size("6GB", "--gpu"), 6442450944);  // = 6144 MiB, what nvidia-smi shows
  EXPECT_EQ(parse_size("6144MiB", "--gpu"), 6442450944);
  EXPECT_EQ(parse_size("12G", "--gpu"), 12884901888);
  EXPECT_EQ(parse_size("1073741824", "--gpu"), kGiB);  // bare bytes
  EXPECT_EQ(parse_size("96", "--gpu"), 96);
  EXPECT_EQ(parse_size("  24GB\t", "--gpu"), 24 * kGiB);  // outer whitespace is trimmed
}

TEST(ParseSize, DecimalsRoundDownToWholeBytes) {
  EXPECT_EQ(parse_size("1.5GB", "--gpu"), 1610612736);
  EXPECT_EQ(parse_size("0.5KiB", "--gpu"), 512);
  EXPECT_EQ(parse_size("2.75MiB", "--gpu"), 2883584);
  EXPECT_EQ(parse_size("1.0001K", "--gpu"), 1024);  // 1024.1024 -> 1024
  EXPECT_EQ(parse_size("1.999B", "--gpu"), 1);
  EXPECT_EQ(parse_size("0.1G", "--gpu"), 107374182);  // 107374182.4
  EXPECT_EQ(parse_size("1.25TB", "--gpu"), 1374389534720);
}

TEST(ParseSize, RejectsWhatIsNotASize) {
  EXPECT_EQ(size_error("6XB"), "--gpu: \"6XB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
  EXPECT_EQ(size_error(""), "--gpu: \"\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
  EXPECT_EQ(size_error("GB"), "--gpu: \"GB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
  EXPECT_EQ(size_error("6 GB"),
            "--gpu: \"6 GB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
  EXPECT_EQ(size_error("1.GB"),
            "--gpu: \"1.GB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
  EXPECT_EQ(size_error("1e9"), "--gpu: \"1e9\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
  EXPECT_EQ(error_of([] { parse_size("6PB", "--memory"); }),
            "--memory: \"6PB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
}

TEST(ParseSize, RejectsZeroNegativeAndOverflow) {
  EXPECT_EQ(size_error("-1GB"), "--gpu: size must be positive, got \"-1GB\"");
  EXPECT_EQ(size_error("0"), "--gpu: size must be positive, got \"0\"");
  EXPECT_EQ(size_error("0GB"), "--gpu: size must be positive, got \"0GB\"");
  EXPECT_EQ(size_error("0.5B"), "--gpu: size must be positive, got \"0.5B\"");  // rounds to 0
  EXPECT_EQ(size_error("99999999TB"), "--gpu: size \"99999999TB\" is too large");
  EXPECT_EQ(size_error("99999999999999999999"),
            "--gpu: size \"99999999999999999999\" is too large");
}

TEST(FormatBytes, PicksTheLargestUnitAtLeastOne) {
  struct Case {
    int64_t bytes;
    std::string text;
  };
  const std::vector<Case> cases = {
      {0, "0 B"},
      {96, "96 B"},
      {1023, "1023 B"},
      {1024, "1.0 KiB"},
      {1536, "1.5 KiB"},
      {812 * kMiB, "812.0 MiB"},
      {kGiB - kMiB, "1023.0 MiB"},
      {kGiB, "1.00 GiB"},
      {6152589558, "5.73 GiB"},
      {25757220864, "23.99 GiB"},    // RTX 4090 as nvidia-smi reports it
      {150754820096, "140.40 GiB"},  // H200
      {-1536, "-1.5 KiB"},           // a difference between two sizes
  };
  for (const Case& c : cases) EXPECT_EQ(format_bytes(c.bytes), c.text) << c.bytes << " bytes";
}

TEST(GpuProfiles, ReadsAGeForceCard) {
  const GpuProfile gpu = read_gpu_profile(profile_dir() + "/gpus/rtx-4090.json");
  EXPECT_EQ(gpu.name, "rtx-4090");
  EXPECT_EQ(gpu.display_name, "GeForce RTX 4090 24GB");
  EXPECT_EQ(gpu.compute_capability, "8.9");
  EXPECT_EQ(gpu.memory_bytes, 25757220864);  // 24564 MiB
  EXPECT_DOUBLE_EQ(gpu.memory_bandwidth_gbps, 1008.0);
  EXPECT_DOUBLE_EQ(gpu.tensor_tflops, 165.2);  // fp32 accumulate: half the fp16-acc rate
  EXPECT_DOUBLE_EQ(gpu.fp32_tflops, 82.58);
  EXPECT_DOUBLE_EQ(gpu.pcie_host_gbps, 31.5);
  EXPECT_TRUE(gpu.bf16_native);
  EXPECT_EQ(gpu.cuda_context_bytes, 314572800);    // 300 MiB
  EXPECT_EQ(gpu.cublas_workspace_bytes, 8519680);  // 8.125 MiB before Hopper
  EXPECT_FALSE(gpu.from_size_only);
}

TEST(GpuProfiles, CardsWithoutTensorCoresOrBf16) {
  const GpuProfile gpu = resolve_gpu("gtx-1060-6gb");
  EXPECT_EQ(gpu.memory_bytes, 6 * kGiB);
  EXPECT_EQ(gpu.tensor_tflops, 0.0);
  EXPECT_DOUBLE_EQ(gpu.fp32_tflops, 4.375);
  EXPECT_FALSE(gpu.bf16_native);
}

TEST(GpuProfiles, HopperHasTheLargerCublasWorkspace) {
  const GpuProfile gpu = resolve_gpu("h100-sxm");
  EXPECT_EQ(gpu.compute_capability, "9.0");
  EXPECT_EQ(gpu.memory_bytes, 85520809984);         // 81559 MiB
  EXPECT_EQ(gpu.cublas_workspace_bytes, 33554432);  // 32 MiB
}

// Measured with scripts/cuda_overheads.py (PyTorch 2.11, CUDA 13): memory outside the caching
// allocator once the forward and backward threads have run products; other cards keep the bare
// context's 300 MiB.
TEST(GpuProfiles, HopperContextIsTheMeasuredOne) {
  EXPECT_EQ(resolve_gpu("h200").cuda_context_bytes, 852295680);
  EXPECT_EQ(resolve_gpu("h100-sxm").cuda_context_bytes, 852295680);
  EXPECT_EQ(resolve_gpu("rtx-4090").cuda_context_bytes, 314572800);
}

TEST(GpuProfiles, EveryProfileReads) {
  const std::vector<std::string> names = profile_names("gpus");
  EXPECT_EQ(names.size(), 24u);
  for (const std::string& name : names) {
    const GpuProfile gpu = resolve_gpu(name);
    EXPECT_EQ(gpu.name, name);
    EXPECT_GT(gpu.memory_bytes, 4 * kGiB) << name;
    EXPECT_GT(gpu.fp32_tflops, 0.0) << name;
    EXPECT_GT(gpu.memory_bandwidth_gbps, 0.0) << name;
    EXPECT_GT(gpu.pcie_host_gbps, 0.0) << name;
  }
}

TEST(ResolveGpu, BareSizeUsesDefaultOverheads) {
  const GpuProfile gpu = resolve_gpu("6GB");
  EXPECT_EQ(gpu.name, "6GB");
  EXPECT_EQ(gpu.display_name, "6GB GPU");
  EXPECT_EQ(gpu.memory_bytes, 6442450944);
  EXPECT_TRUE(gpu.from_size_only);
  EXPECT_EQ(gpu.cuda_context_bytes, 314572800);  // profiles/cuda-overheads.json
  EXPECT_EQ(gpu.cublas_workspace_bytes, 8519680);
  EXPECT_EQ(gpu.compute_capability, "");
  EXPECT_EQ(gpu.tensor_tflops, 0.0);
}

TEST(ResolveGpu, BadSizeNamesTheFlag) {
  EXPECT_EQ(error_of([] { resolve_gpu("6XB"); }),
            "--gpu: \"6XB\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
}

TEST(ResolveGpu, UnknownNameSuggestsTheClosest) {
  EXPECT_EQ(error_of([] { resolve_gpu("rtx-9999"); }),
            "--gpu: unknown GPU \"rtx-9999\"; known: rtx-3090, rtx-4090, rtx-5090, ... "
            "(see loraplan profiles)");
  EXPECT_EQ(error_of([] { resolve_gpu("RTX-4O90"); }),
            "--gpu: unknown GPU \"RTX-4O90\"; known: rtx-4090, rtx-3090, rtx-4060, ... "
            "(see loraplan profiles)");
}

TEST(ResolveGpu, NamesAreCaseInsensitive) {
  EXPECT_EQ(resolve_gpu("RTX-4090").name, "rtx-4090");
  EXPECT_EQ(resolve_gpu("A100-80GB").memory_bytes, 85899345920);  // 81920 MiB
}

using ReadGpuProfile = ScratchDir;

// A profile whose line 3 is `line3` and whose line 12 holds cuda_context_bytes.
std::string profile_text(const std::string& line3, const std::string& context_bytes = "1000") {
  return "{\n"
         "  \"name\": \"test-gpu\",\n" +
         line3 +
         "\n"
         "  \"display_name\": \"Test GPU\",\n"
         "  \"compute_capability\": \"8.6\",\n"
         "  \"memory_bandwidth_gbps\": 100.0,\n"
         "  \"tensor_tflops\": 10.0,\n"
         "  \"fp32_tflops\": 5.0,\n"
         "  \"pcie_host_gbps\": 15.75,\n"
         "  \"bf16_native\": true,\n"
         "  \"overheads\": {\n"
         "    \"cuda_context_bytes\": " +
         context_bytes +
         ",\n"
         "    \"cublas_workspace_bytes\": 2000\n"
         "  }\n"
         "}\n";
}

TEST_F(ReadGpuProfile, ReadsEveryField) {
  const GpuProfile gpu =
      read_gpu_profile(write("ok.json", profile_text("  \"memory_bytes\": 4096,")));
  EXPECT_EQ(gpu.name, "test-gpu");
  EXPECT_EQ(gpu.memory_bytes, 4096);
  EXPECT_DOUBLE_EQ(gpu.pcie_host_gbps, 15.75);
  EXPECT_EQ(gpu.cuda_context_bytes, 1000);
  EXPECT_EQ(gpu.cublas_workspace_bytes, 2000);
}

TEST_F(ReadGpuProfile, BadFieldIsReportedAtItsLine) {
  const std::string path = write("bad.json", profile_text("  \"memory_bytes\": -5,"));
  EXPECT_EQ(error_of([&] { read_gpu_profile(path); }),
            path + ":3: \"memory_bytes\" must be a positive integer, got -5");

  const std::string text = write("text.json", profile_text("  \"memory_bytes\": \"24GB\","));
  EXPECT_EQ(error_of([&] { read_gpu_profile(text); }),
            text + ":3: \"memory_bytes\" must be a positive integer, got \"24GB\"");

  const std::string nested = write("nested.json", profile_text("  \"memory_bytes\": 4096,", "1.5"));
  EXPECT_EQ(
      error_of([&] { read_gpu_profile(nested); }),
      nested + ":12: \"overheads.cuda_context_bytes\" must be a non-negative integer, got 1.5");
}

TEST_F(ReadGpuProfile, MissingFieldNamesTheFile) {
  const std::string path = write("missing.json", profile_text(""));
  EXPECT_EQ(error_of([&] { read_gpu_profile(path); }),
            path + ": \"memory_bytes\" is missing (must be a positive integer)");
}

TEST_F(ReadGpuProfile, MalformedJson) {
  const std::string path = write("broken.json", "{\n  \"name\": \"x\",\n  \"memory_bytes\": }\n");
  EXPECT_EQ(error_of([&] { read_gpu_profile(path); }),
            path +
                ": malformed JSON: parse error at line 3, "
                "column 19: syntax error while parsing value - unexpected '}'; expected '[', "
                "'{', or a literal");
}

TEST_F(ReadGpuProfile, MissingFile) {
  const std::string path = (dir_ / "absent.json").string();
  EXPECT_EQ(error_of([&] { read_gpu_profile(path); }),
            path + ": cannot open: No such file or directory");
}

}  // namespace
}  // namespace loraplan::planner
